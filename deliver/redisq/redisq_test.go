package redisq_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/mailhook/mailhook/deliver"
	"github.com/mailhook/mailhook/deliver/queuetest"
	"github.com/mailhook/mailhook/deliver/redisq"
	"github.com/mailhook/mailhook/inbound"
	"github.com/mailhook/mailhook/internal/testenv"
	"github.com/mailhook/mailhook/parse"
	"github.com/mailhook/mailhook/route"
)

// server is the Redis the tests use: REDIS_ADDR, or a redis-server this
// test binary started on a free port.
var (
	addr     string
	startErr error
)

func TestMain(m *testing.M) {
	var stop func()
	addr = os.Getenv("REDIS_ADDR")
	if addr == "" {
		addr, stop, startErr = startRedis()
	}
	code := m.Run()
	if stop != nil {
		stop()
	}
	os.Exit(code)
}

// startRedis execs redis-server on a free port and waits for PING.
func startRedis(extra ...string) (string, func(), error) {
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		return "", nil, err
	}
	port, err := testenv.FreePort()
	if err != nil {
		return "", nil, err
	}
	// A working directory of its own: a replica writes the RDB of its
	// full sync there, which would otherwise land in the source tree.
	dir, err := os.MkdirTemp("", "redisq-test-")
	if err != nil {
		return "", nil, err
	}
	args := append([]string{"--port", fmt.Sprint(port), "--bind", "127.0.0.1", "--dir", dir, "--save", "", "--appendonly", "no"}, extra...)
	cmd := exec.Command(bin, args...)
	if err := cmd.Start(); err != nil {
		os.RemoveAll(dir)
		return "", nil, err
	}
	stop := func() {
		cmd.Process.Kill()
		cmd.Wait()
		os.RemoveAll(dir)
	}
	a := fmt.Sprintf("127.0.0.1:%d", port)
	c := redis.NewClient(&redis.Options{Addr: a})
	defer c.Close()
	deadline := time.Now().Add(10 * time.Second)
	for c.Ping(context.Background()).Err() != nil {
		if time.Now().After(deadline) {
			stop()
			return "", nil, fmt.Errorf("redis-server on %s did not answer", a)
		}
		time.Sleep(10 * time.Millisecond)
	}
	return a, stop, nil
}

// need skips (or, under MAILHOOK_REQUIRE_ALL, fails) without Redis.
func need(t *testing.T) {
	t.Helper()
	if startErr == nil {
		return
	}
	testenv.Missing(t, "no redis (set REDIS_ADDR or install redis-server): %v", startErr)
}

var seq atomic.Int64

// prefix returns a fresh queue prefix so tests never share keys.
func prefix() string { return fmt.Sprintf("mhtest-%d-%d", os.Getpid(), seq.Add(1)) }

func client(t *testing.T) *redis.Client {
	c := redis.NewClient(&redis.Options{Addr: addr})
	t.Cleanup(func() { c.Close() })
	return c
}

func TestSuite(t *testing.T) {
	need(t)
	queuetest.Run(t, func(t *testing.T) deliver.Backend {
		q, err := redisq.New(client(t), redisq.Options{Prefix: prefix()})
		if err != nil {
			t.Fatal(err)
		}
		return q
	})
}

func TestDedup(t *testing.T) {
	need(t)
	queuetest.RunDedup(t, func(t *testing.T, window time.Duration) deliver.Backend {
		q, err := redisq.New(client(t), redisq.Options{Prefix: prefix(), DedupWindow: window})
		if err != nil {
			t.Fatal(err)
		}
		return q
	})
}

// TestOneSlot checks that every key the queue writes carries its one hash
// tag, which is what makes every script legal on Redis Cluster.
func TestOneSlot(t *testing.T) {
	need(t)
	ctx := t.Context()
	c := client(t)
	p := prefix()
	q, err := redisq.New(c, redisq.Options{Prefix: p})
	if err != nil {
		t.Fatal(err)
	}
	jobs := []*deliver.Job{}
	for i, k := range deliver.Kinds {
		jobs = append(jobs, queuetest.NewJob(fmt.Sprint("j", i), "m1", k, time.Time{}))
	}
	jobs = append(jobs, queuetest.NewJob("later", "m1", deliver.KindWebhook, time.Now().Add(time.Hour)))
	if err := q.Commit(ctx, queuetest.NewMail(t, "m1", "x"), jobs); err != nil {
		t.Fatal(err)
	}
	taken, err := q.Take(ctx, deliver.Kinds, 2, time.Minute)
	if err != nil || len(taken) != 2 {
		t.Fatalf("Take = %v, %v", taken, err)
	}
	if err := q.Dead(ctx, taken[0], deliver.Attempt{Error: "x"}); err != nil {
		t.Fatal(err)
	}
	keys, err := c.Keys(ctx, "*"+p+"*").Result()
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) < 8 {
		t.Errorf("keys = %v, want the queue's 8+", keys)
	}
	for _, k := range keys {
		if !strings.HasPrefix(k, "{"+p+"}:") {
			t.Errorf("key %q lacks the hash tag {%s}", k, p)
		}
	}
}

// TestWaitReplicas commits with WAIT against a real replica, and fails the
// commit when the replicas asked for are not there.
func TestWaitReplicas(t *testing.T) {
	need(t)
	if os.Getenv("REDIS_ADDR") != "" {
		t.Skip("needs a redis-server of its own to attach a replica to")
	}
	ctx := t.Context()
	_, port, _ := net.SplitHostPort(addr)
	replica, stop, err := startRedis("--replicaof", "127.0.0.1", port)
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	rc := redis.NewClient(&redis.Options{Addr: replica})
	defer rc.Close()
	deadline := time.Now().Add(10 * time.Second)
	for {
		info, _ := rc.Info(ctx, "replication").Result()
		if strings.Contains(info, "master_link_status:up") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("replica never linked")
		}
		time.Sleep(10 * time.Millisecond)
	}
	c := client(t)
	p := prefix()
	q, err := redisq.New(c, redisq.Options{Prefix: p, WaitReplicas: 1, WaitTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if err := q.Commit(ctx, queuetest.NewMail(t, "m1", "x"), []*deliver.Job{queuetest.NewJob("j1", "m1", deliver.KindWebhook, time.Time{})}); err != nil {
		t.Fatalf("Commit with WAIT 1 = %v", err)
	}
	if n, err := rc.HLen(ctx, "{"+p+"}:job").Result(); err != nil || n != 1 {
		t.Errorf("replica holds %d jobs, %v; want 1 once Commit returned", n, err)
	}
	q2, err := redisq.New(c, redisq.Options{Prefix: p, WaitReplicas: 2, WaitTimeout: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if err := q2.Commit(ctx, queuetest.NewMail(t, "m2", "x"), []*deliver.Job{queuetest.NewJob("j2", "m2", deliver.KindWebhook, time.Time{})}); err == nil {
		t.Error("Commit with WAIT 2 and one replica = nil, want an error")
	}
	// The sender's retries after the 451 (new message ids, one stable
	// id): still 451 while the replicas are missing, 250 once they are
	// there, and the message is queued once.
	queuetest.CommitAfterFailedAck(t, q, q2)
}

type countHandler struct {
	mu    sync.Mutex
	calls map[string]int
}

func (h *countHandler) Handle(ctx context.Context, job *deliver.Job, mail *inbound.Mail, raw deliver.RawOpener) deliver.Outcome {
	h.mu.Lock()
	h.calls[job.ID]++
	h.mu.Unlock()
	return deliver.Outcome{Done: true, Attempt: deliver.Attempt{Status: 200}}
}

// TestTwoNodes runs two Runners ("nodes") on one Redis queue: every message
// committed through either node is delivered once, by one of them.
func TestTwoNodes(t *testing.T) {
	need(t)
	p := prefix()
	h := &countHandler{calls: map[string]int{}}
	var committers []*deliver.Committer
	var queues []*redisq.Queue
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for range 2 {
		q, err := redisq.New(client(t), redisq.Options{Prefix: p})
		if err != nil {
			t.Fatal(err)
		}
		r, err := deliver.NewRunner(deliver.RunnerOptions{Queue: q, Handlers: map[deliver.Kind]deliver.Handler{deliver.KindWebhook: h}, PollInterval: 5 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		committers = append(committers, &deliver.Committer{Queue: q, Notify: r.Notify})
		queues = append(queues, q)
		wg.Add(1)
		go func() {
			defer wg.Done()
			r.Run(ctx)
		}()
	}
	const n = 40
	for i := range n {
		m := queuetest.NewMail(t, fmt.Sprint("m", i), "raw")
		d := []route.Decision{{Rcpt: "support@example.test", Rules: []string{"tickets"}, Actions: []route.Action{{Kind: route.ActWebhook, Webhook: "tickets"}}}}
		if err := committers[i%2].Commit(t.Context(), m, d); err != nil {
			t.Fatal(err)
		}
	}
	q := queues[0]
	deadline := time.Now().Add(10 * time.Second)
	for {
		st, err := q.Stats(t.Context())
		if err == nil && st == (deliver.Stats{}) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("not all delivered: %+v, %v", st, err)
		}
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	wg.Wait()
	if len(h.calls) != n {
		t.Errorf("delivered %d distinct jobs, want %d", len(h.calls), n)
	}
	for id, c := range h.calls {
		if c != 1 {
			t.Errorf("job %s delivered %d times", id, c)
		}
	}
}

// TestReap returns an expired lease to the queue without a Take.
func TestReap(t *testing.T) {
	need(t)
	ctx := t.Context()
	q, err := redisq.New(client(t), redisq.Options{Prefix: prefix()})
	if err != nil {
		t.Fatal(err)
	}
	if err := q.Commit(ctx, queuetest.NewMail(t, "m1", "x"), []*deliver.Job{queuetest.NewJob("j1", "m1", deliver.KindRelay, time.Time{})}); err != nil {
		t.Fatal(err)
	}
	if got, err := q.Take(ctx, []deliver.Kind{deliver.KindRelay}, 1, 5*time.Millisecond); err != nil || len(got) != 1 {
		t.Fatalf("Take = %v, %v", got, err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		if err := q.Reap(ctx); err != nil {
			t.Fatal(err)
		}
		st, err := q.Stats(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if st.Ready == 1 && st.Leased == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("Stats after the lease expired = %+v, want it ready again", st)
		}
		time.Sleep(2 * time.Millisecond)
	}
	j, err := q.Get(ctx, "j1")
	if err != nil || j.Lease != "" || j.Attempts != 1 || j.Kind != deliver.KindRelay {
		t.Errorf("reaped job = %+v, %v", j, err)
	}
}

// TestWaitAOF: WAITAOF needs Redis 7.2; on an older server Commit must fail
// (the SMTP session answers 451) rather than pretend the fsync happened.
func TestWaitAOF(t *testing.T) {
	need(t)
	ctx := t.Context()
	c := client(t)
	info, err := c.Info(ctx, "server").Result()
	if err != nil {
		t.Fatal(err)
	}
	var major, minor int
	for _, l := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(l), "redis_version:"); ok {
			fmt.Sscanf(v, "%d.%d", &major, &minor)
		}
	}
	supported := major > 7 || major == 7 && minor >= 2
	q, err := redisq.New(c, redisq.Options{Prefix: prefix(), WaitAOF: &redisq.WaitAOF{}})
	if err != nil {
		t.Fatal(err)
	}
	err = q.Commit(ctx, queuetest.NewMail(t, "m1", "x"), []*deliver.Job{queuetest.NewJob("j1", "m1", deliver.KindWebhook, time.Time{})})
	if supported && err != nil {
		t.Errorf("Commit with WAITAOF 0 0 on Redis %d.%d = %v", major, minor, err)
	}
	if !supported && err == nil {
		t.Errorf("Commit with WAITAOF on Redis %d.%d = nil, want an error", major, minor)
	}
}

// TestPacked: the raw message and the mail record go to Redis compressed
// and come back as they were; values an earlier version wrote (as they
// are) still read.
func TestPacked(t *testing.T) {
	need(t)
	c := client(t)
	p := prefix()
	q, err := redisq.New(c, redisq.Options{Prefix: p})
	if err != nil {
		t.Fatal(err)
	}
	var text strings.Builder
	for i := range 300 {
		fmt.Fprintf(&text, "Line %d of the report: the printer on floor 3 is out of toner again.\r\n", i)
	}
	raw := "Subject: toner\r\n\r\n" + text.String()
	m := queuetest.NewMail(t, "z1", raw)
	m.Message = &parse.Message{Subject: "toner", Text: text.String()}
	if err := q.Commit(t.Context(), m, []*deliver.Job{queuetest.NewJob("z1-j", "z1", deliver.KindWebhook, time.Time{})}); err != nil {
		t.Fatal(err)
	}
	for key, size := range map[string]int{"{" + p + "}:raw": len(raw), "{" + p + "}:msg": text.Len()} {
		v, err := c.HGet(t.Context(), key, "z1").Bytes()
		if err != nil || !strings.HasPrefix(string(v), "\x00mhz") || len(v) > size/2 {
			t.Errorf("%s holds %d bytes for %d (%v): want them compressed", key, len(v), size, err)
		}
	}
	check := func(when string) {
		t.Helper()
		got, err := q.Mail(t.Context(), "z1")
		if err != nil || got.Message.Text != m.Message.Text {
			t.Errorf("%s: Mail = %v, text read back differs", when, err)
		}
		rc, err := q.OpenRaw(t.Context(), "z1")
		if err != nil {
			t.Fatalf("%s: OpenRaw = %v", when, err)
		}
		b, _ := io.ReadAll(rc)
		rc.Close()
		if string(b) != raw {
			t.Errorf("%s: OpenRaw read %d bytes, want the %d committed", when, len(b), len(raw))
		}
	}
	check("compressed")
	js, _ := json.Marshal(m)
	c.HSet(t.Context(), "{"+p+"}:raw", "z1", raw)
	c.HSet(t.Context(), "{"+p+"}:msg", "z1", js)
	check("as an earlier version wrote them")
}
