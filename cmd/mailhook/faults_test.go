package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mailhook/mailhook/deliver"
	"github.com/mailhook/mailhook/dns/dnstest"
	"github.com/mailhook/mailhook/internal/testenv"
)

// redisServer is a redis-server the test owns, with AOF so that a restart
// keeps what was acknowledged.
type redisServer struct {
	t    testing.TB
	addr string
	dir  string
	cmd  *exec.Cmd
}

func startRedis(t testing.TB) *redisServer {
	t.Helper()
	bin := testenv.Tool(t, "apt-get install redis-server", "redis-server")
	r := &redisServer{t: t, addr: freePort(t), dir: t.TempDir()}
	r.start(bin)
	t.Cleanup(func() { r.stop() })
	return r
}

func (r *redisServer) start(bin string) {
	_, port, _ := net.SplitHostPort(r.addr)
	r.cmd = exec.Command(bin, "--port", port, "--bind", "127.0.0.1", "--dir", r.dir,
		"--appendonly", "yes", "--appendfsync", "always", "--save", "")
	if err := r.cmd.Start(); err != nil {
		r.t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.Dial("tcp", r.addr)
		if err == nil {
			fmt.Fprintf(c, "PING\r\n")
			line, _ := bufio.NewReader(c).ReadString('\n')
			c.Close()
			if strings.HasPrefix(line, "+PONG") {
				return
			}
		}
		if time.Now().After(deadline) {
			r.t.Fatalf("redis-server did not start on %s", r.addr)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (r *redisServer) stop() {
	if r.cmd != nil && r.cmd.Process != nil {
		r.cmd.Process.Kill()
		r.cmd.Wait()
		r.cmd = nil
	}
}

// TestDeadLetterAndReplay: an endpoint that keeps failing dead-letters the
// job with every attempt; `mailhook queue dead` shows it, `queue replay`
// sends it again once the endpoint recovers.
func TestDeadLetterAndReplay(t *testing.T) {
	dns := dnstest.Start(t, "")
	var failing atomic.Bool
	failing.Store(true)
	rcv := newReceiver(t, testSecret)
	rcv.status = func() int {
		if failing.Load() {
			return 500
		}
		return 200
	}
	dir := t.TempDir()
	addr := freePort(t)
	cfg := writeConfig(t, dir, addr, dns.Addr(), rcv.srv.URL+"/hook", "")
	// two retries 200ms and 500ms apart: then dead
	os.WriteFile(cfg, []byte(strings.Replace(mustRead(t, cfg), "schedule: [200ms, 500ms, 1s]", "schedule: [200ms, 500ms]", 1)), 0o600)
	p := startServe(t, cfg, addr)
	if err := sendOne(addr, "doomed"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 20*time.Second, func() bool {
		return strings.Contains(p.out.String(), "dead-lettered") || strings.Contains(p.out.String(), "msg=dead")
	})
	p.stop()

	out := run1(t, "queue", "dead", "--json", "--config", cfg)
	var dead []*deliver.Job
	if err := json.Unmarshal([]byte(out), &dead); err != nil || len(dead) != 1 {
		t.Fatalf("queue dead: %v\n%s", err, out)
	}
	j := dead[0]
	if j.Attempts != 3 || len(j.History) != 3 || j.History[2].Status != 500 || j.Kind != deliver.KindWebhook {
		t.Errorf("dead job = attempts %d history %+v", j.Attempts, j.History)
	}
	if st := run1(t, "queue", "stats", "--config", cfg); !strings.Contains(st, "dead 1") {
		t.Errorf("queue stats:\n%s", st)
	}
	if out := run1(t, "queue", "replay", j.ID, "--config", cfg); !strings.Contains(out, "replayed "+j.ID) {
		t.Errorf("queue replay: %s", out)
	}
	failing.Store(false)
	p2 := startServe(t, cfg, addr)
	rcv.wait(t, 1, 20*time.Second)
	if got := rcv.hdrs[0].Get("webhook-id"); got != j.ID {
		t.Errorf("replayed delivery webhook-id %q, want the job id %q", got, j.ID)
	}
	p2.stop()
	if st := run1(t, "queue", "stats", "--config", cfg); !strings.Contains(st, "dead 0") || !strings.Contains(st, "ready 0") {
		t.Errorf("queue stats after replay:\n%s", st)
	}
}

func mustRead(t testing.TB, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// run1 runs the binary and returns its output, failing on a non-zero exit.
func run1(t testing.TB, args ...string) string {
	t.Helper()
	out, err := exec.Command(binary(t), args...).CombinedOutput()
	if err != nil {
		t.Fatalf("mailhook %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

func waitFor(t testing.TB, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met in time")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestFlakyEndpointRecovers: 500, then a timeout, then a reset connection,
// then 200: the message arrives, once acknowledged.
func TestFlakyEndpointRecovers(t *testing.T) {
	dns := dnstest.Start(t, "")
	var calls atomic.Int32
	rcv := newReceiver(t, testSecret)
	inner := rcv.srv.Config.Handler
	rcv.srv.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch calls.Add(1) {
		case 1:
			http.Error(w, "boom", 500)
		case 2:
			time.Sleep(1500 * time.Millisecond) // past the endpoint's 1s timeout
		case 3:
			conn, _, err := w.(http.Hijacker).Hijack()
			if err == nil {
				conn.(*net.TCPConn).SetLinger(0)
				conn.Close() // RST
			}
		default:
			inner.ServeHTTP(w, r)
		}
	})
	dir := t.TempDir()
	addr := freePort(t)
	cfg := writeConfig(t, dir, addr, dns.Addr(), rcv.srv.URL+"/hook", "")
	os.WriteFile(cfg, []byte(strings.Replace(mustRead(t, cfg), "timeout: 5s", "timeout: 1s", 1)), 0o600)
	p := startServe(t, cfg, addr)
	if err := sendOne(addr, "flaky"); err != nil {
		t.Fatal(err)
	}
	rcv.wait(t, 1, 30*time.Second)
	if n := calls.Load(); n < 4 {
		t.Errorf("endpoint called %d times, want 4", n)
	}
	p.stop()
}

// TestTwoNodesShareRedis: two `mailhook serve` processes on one Redis; mail
// sent to either is delivered once by one of them, and both deliver.
func TestTwoNodesShareRedis(t *testing.T) {
	rds := startRedis(t)
	dns := dnstest.Start(t, "")
	rcv := newReceiver(t, testSecret)
	var nodes []*proc
	var addrs []string
	for i := 0; i < 2; i++ {
		dir := t.TempDir()
		addr := freePort(t)
		cfg := writeConfig(t, dir, addr, dns.Addr(), rcv.srv.URL+"/hook", "")
		os.WriteFile(cfg, []byte(strings.Replace(mustRead(t, cfg), "queue: {", fmt.Sprintf("queue: {backend: redis, redis: {addr: %q}, ", rds.addr), 1)), 0o600)
		nodes = append(nodes, startServe(t, cfg, addr))
		addrs = append(addrs, addr)
	}
	const n = 60
	var wg sync.WaitGroup
	work := make(chan int)
	for w := 0; w < 8; w++ { // under smtp.max_connections_per_ip
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				if err := sendOne(addrs[i%2], fmt.Sprintf("shared-%02d", i)); err != nil {
					t.Errorf("send %d: %v", i, err)
				}
			}
		}()
	}
	for i := 0; i < n; i++ {
		work <- i
	}
	close(work)
	wg.Wait()
	rcv.wait(t, n, 30*time.Second)
	time.Sleep(300 * time.Millisecond) // let any duplicate show
	seen := map[string]int{}
	rcv.mu.Lock()
	for _, ev := range rcv.events {
		seen[ev["message"].(map[string]any)["subject"].(string)]++
	}
	rcv.mu.Unlock()
	if len(seen) != n {
		t.Errorf("%d distinct messages delivered, want %d", len(seen), n)
	}
	for s, c := range seen {
		if c != 1 {
			t.Errorf("%s delivered %d times", s, c)
		}
	}
	var per []int
	for _, p := range nodes {
		per = append(per, strings.Count(p.out.String(), "msg=delivered"))
		p.stop()
	}
	t.Logf("deliveries per node: %v", per)
	if per[0]+per[1] != n {
		t.Errorf("nodes logged %v deliveries, want %d in all", per, n)
	}
}

// TestRedisRestartDuringDelivery: Redis is killed and restarted while
// messages are accepted and delivered; nothing acknowledged is lost (Redis
// runs with appendfsync always, as the README asks for no loss).
func TestRedisRestartDuringDelivery(t *testing.T) {
	rds := startRedis(t)
	bin, _ := exec.LookPath("redis-server")
	dns := dnstest.Start(t, "")
	rcv := newReceiver(t, testSecret)
	dir := t.TempDir()
	addr := freePort(t)
	cfg := writeConfig(t, dir, addr, dns.Addr(), rcv.srv.URL+"/hook", "")
	// A job whose ack was lost while Redis was down comes back when its
	// lease expires: keep the lease short so the test sees it.
	os.WriteFile(cfg, []byte(strings.Replace(mustRead(t, cfg), "queue: {", fmt.Sprintf("queue: {lease: 3s, backend: redis, redis: {addr: %q}, ", rds.addr), 1)), 0o600)
	p := startServe(t, cfg, addr)
	acked := map[string]bool{}
	var refused int
	for i := 0; i < 60; i++ {
		if i == 20 {
			rds.stop()
		}
		if i == 40 {
			rds.start(bin)
		}
		subject := fmt.Sprintf("redis-%02d", i)
		if err := sendOne(addr, subject); err == nil {
			acked[subject] = true
		} else if smtpCode(err) == 451 && strings.Contains(err.Error(), "4.3.0") {
			refused++
		} else {
			t.Errorf("send %s: %v (want 250 or 451 4.3.0)", subject, err)
		}
	}
	if refused == 0 {
		t.Error("no message was deferred while Redis was down")
	}
	waitWebhooks(t, rcv, acked)
	rcv.mu.Lock()
	dups := len(rcv.events) - len(acked)
	rcv.mu.Unlock()
	t.Logf("%d acknowledged, %d deferred with 451 while Redis was down; all acknowledged delivered (%d extra deliveries: acks lost while Redis was down)", len(acked), refused, dups)
	p.stop()
}
