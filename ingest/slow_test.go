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
	got := keepBusy(r, func() { fmt.Fprintf(c, "NOOP\r\n") })
	if !strings.HasPrefix(got, "421 4.4.2 Session time limit") {
		t.Fatalf("got %q, want 421 4.4.2", got)
	}
}

// keepBusy calls act every 20ms until a 421 reply (or the end of the
// connection) arrives on r, and returns it.
func keepBusy(r *bufio.Reader, act func()) string {
	done := make(chan string)
	go func() { done <- readUntil(r, "421") }()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case got := <-done:
			return got
		case <-tick.C:
			act()
		}
	}
}

// TestMinDataRate: a client that trickles DATA (slowloris) is closed with
// 421 4.4.2 once its rate is below the minimum after the grace time,
// though it is never idle long enough for the idle timeout.
func TestMinDataRate(t *testing.T) {
	h, c := inData(t, 200*time.Millisecond, 1000)
	got := keepBusy(c.r, func() { c.c.Write([]byte("x")) })
	if !strings.HasPrefix(got, "421 4.4.2 Data rate below the minimum") {
		t.Fatalf("got %q, want 421 4.4.2", got)
	}
	if h.rec.count() != 0 {
		t.Fatal("a message was committed")
	}
}

// TestMinDataRateFastClient: a client above the rate is not cut off by the
// rate limit, however long its DATA takes past the grace time.
func TestMinDataRateFastClient(t *testing.T) {
	_, c := inData(t, 100*time.Millisecond, 100)
	c.send("From: a@sender.test\r\nSubject: slow but fine\r\n\r\n")
	for range 10 {
		c.send(strings.Repeat("y", 100) + "\r\n")
		time.Sleep(50 * time.Millisecond)
	}
	if got := c.cmd("."); !strings.HasPrefix(got, "250 ") {
		t.Fatalf("end of data -> %q, want 250", got)
	}
}

// inData starts a listener with the DATA grace time and minimum rate
// given, and a client in DATA.
func inData(t *testing.T, grace time.Duration, rate int64) (*harness, *client) {
	old := dataGrace
	dataGrace = grace
	t.Cleanup(func() { dataGrace = old })
	h := start(t, func(o *Options) { o.Limits.MinDataRate = rate })
	c := dial(t, h.addr)
	c.startData()
	return h, c
}
