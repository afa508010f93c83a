package ingest

import (
	"bufio"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"
)

// readUntil reads replies until one starts with prefix or the connection
// ends, and returns it.
func readUntil(r *bufio.Reader, prefix string) string {
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return "EOF"
		}
		if strings.HasPrefix(line, prefix) {
			return strings.TrimRight(line, "\r\n")
		}
	}
}

// TestMaxSessionTime: a client that keeps the session busy (a NOOP at a
// time, never idle) is still closed with 421 4.4.2 at the session limit.
func TestMaxSessionTime(t *testing.T) {
	h := start(t, func(o *Options) { o.Limits.MaxSessionTime = 300 * time.Millisecond })
	c, err := net.Dial("tcp", h.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(20 * time.Second))
	r := bufio.NewReader(c)
	done := make(chan string)
	go func() { done <- readUntil(r, "421") }()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case got := <-done:
			if !strings.HasPrefix(got, "421 4.4.2 Session time limit") {
				t.Fatalf("got %q, want 421 4.4.2", got)
			}
			return
		case <-tick.C:
			fmt.Fprintf(c, "NOOP\r\n")
		}
	}
}

// TestMinDataRate: a client that trickles DATA (slowloris) is closed with
// 421 4.4.2 once its rate is below the minimum after the grace time,
// though it is never idle long enough for the idle timeout.
func TestMinDataRate(t *testing.T) {
	old := dataGrace
	dataGrace = 200 * time.Millisecond
	t.Cleanup(func() { dataGrace = old })
	h := start(t, func(o *Options) { o.Limits.MinDataRate = 1000 })
	c := dial(t, h.addr)
	c.startData()
	done := make(chan string)
	go func() { done <- readUntil(c.r, "421") }()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case got := <-done:
			if !strings.HasPrefix(got, "421 4.4.2 Data rate below the minimum") {
				t.Fatalf("got %q, want 421 4.4.2", got)
			}
			if h.rec.count() != 0 {
				t.Fatal("a message was committed")
			}
			return
		case <-tick.C:
			c.c.Write([]byte("x"))
		}
	}
}

// TestMinDataRateFastClient: a client above the rate is not cut off by the
// rate limit, however long its DATA takes past the grace time.
func TestMinDataRateFastClient(t *testing.T) {
	old := dataGrace
	dataGrace = 100 * time.Millisecond
	t.Cleanup(func() { dataGrace = old })
	h := start(t, func(o *Options) { o.Limits.MinDataRate = 100 })
	c := dial(t, h.addr)
	c.startData()
	c.send("Subject: slow but fine\r\n\r\n")
	for range 10 {
		c.send(strings.Repeat("y", 100) + "\r\n")
		time.Sleep(50 * time.Millisecond)
	}
	if got := c.cmd("."); !strings.HasPrefix(got, "250 ") {
		t.Fatalf("end of data -> %q, want 250", got)
	}
}
