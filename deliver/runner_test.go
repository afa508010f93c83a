package deliver_test

import (
	"context"
	"errors"
	"io"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/mailhook/mailhook/deliver"
	"github.com/mailhook/mailhook/deliver/pebbleq"
	"github.com/mailhook/mailhook/deliver/queuetest"
	"github.com/mailhook/mailhook/inbound"
	"github.com/mailhook/mailhook/route"
)

// handlerFunc adapts a function to deliver.Handler.
type handlerFunc func(ctx context.Context, job *deliver.Job, mail *inbound.Mail, raw deliver.RawOpener) deliver.Outcome

func (f handlerFunc) Handle(ctx context.Context, job *deliver.Job, mail *inbound.Mail, raw deliver.RawOpener) deliver.Outcome {
	return f(ctx, job, mail, raw)
}

// seen is what a handler saw on one attempt.
type seen struct {
	attempts int
	history  int
	rcpts    []string
	raw      string
	mailID   string
}

func newQueue(t *testing.T) deliver.Backend {
	t.Helper()
	q, err := pebbleq.Open(t.TempDir(), pebbleq.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { q.Close() })
	return q
}

// start runs a Runner until the test ends.
func start(t *testing.T, opts deliver.RunnerOptions) *deliver.Runner {
	t.Helper()
	if opts.Jitter == 0 {
		opts.Jitter = -1
	}
	if opts.PollInterval == 0 {
		opts.PollInterval = 5 * time.Millisecond
	}
	r, err := deliver.NewRunner(opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run = %v", err)
		}
	})
	return r
}

func commitOne(t *testing.T, q deliver.Queue, kind deliver.Kind) {
	t.Helper()
	j := queuetest.NewJob("j1", "m1", kind, time.Time{})
	j.CreatedAt = time.Now()
	if err := q.Commit(t.Context(), queuetest.NewMail(t, "m1", "raw!"), []*deliver.Job{j}); err != nil {
		t.Fatal(err)
	}
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func empty(t *testing.T, q deliver.Operator) func() bool {
	return func() bool {
		st, err := q.Stats(context.Background())
		return err == nil && st == (deliver.Stats{})
	}
}

func deadJob(t *testing.T, q deliver.Operator) func() bool {
	return func() bool {
		st, err := q.Stats(context.Background())
		return err == nil && st.Dead == 1
	}
}

// recorder returns a handler answering by script (one outcome per attempt,
// the last repeated) and the attempts it saw.
func recorder(script ...deliver.Outcome) (deliver.Handler, func() []seen) {
	var mu sync.Mutex
	var got []seen
	h := handlerFunc(func(ctx context.Context, job *deliver.Job, mail *inbound.Mail, raw deliver.RawOpener) deliver.Outcome {
		s := seen{attempts: job.Attempts, history: len(job.History), rcpts: slices.Clone(job.Rcpts), mailID: mail.ID}
		if rc, err := raw(); err == nil {
			b, _ := io.ReadAll(rc)
			rc.Close()
			s.raw = string(b)
		}
		mu.Lock()
		defer mu.Unlock()
		got = append(got, s)
		i := min(len(got)-1, len(script)-1)
		if script[i].Attempt.Status == -1 {
			panic("boom")
		}
		return script[i]
	})
	return h, func() []seen {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(got)
	}
}

var (
	ok   = deliver.Outcome{Done: true, Attempt: deliver.Attempt{Status: 200}}
	fail = deliver.Outcome{Attempt: deliver.Attempt{Status: 500, Error: "server error"}}
)

func TestRunnerDelivers(t *testing.T) {
	q := newQueue(t)
	commitOne(t, q, deliver.KindWebhook)
	h, got := recorder(ok)
	start(t, deliver.RunnerOptions{Queue: q, Handlers: map[deliver.Kind]deliver.Handler{deliver.KindWebhook: h}})
	waitFor(t, "delivery", empty(t, q))
	s := got()
	if len(s) != 1 || s[0].attempts != 1 || s[0].raw != "raw!" || s[0].mailID != "m1" {
		t.Fatalf("attempts seen = %+v, want one of m1 with its raw bytes", s)
	}
	if _, err := q.Mail(t.Context(), "m1"); !errors.Is(err, deliver.ErrNotFound) {
		t.Errorf("Mail after delivery = %v, want ErrNotFound", err)
	}
}

func TestRunnerRetries(t *testing.T) {
	q := newQueue(t)
	commitOne(t, q, deliver.KindRelay)
	partial := fail
	partial.Rcpts = []string{"b@example.test"}
	panics := deliver.Outcome{Attempt: deliver.Attempt{Status: -1}}
	h, got := recorder(partial, panics, ok)
	start(t, deliver.RunnerOptions{Queue: q, Handlers: map[deliver.Kind]deliver.Handler{deliver.KindRelay: h},
		Schedule: []time.Duration{time.Millisecond, time.Millisecond, time.Hour}})
	waitFor(t, "delivery", empty(t, q))
	s := got()
	if len(s) != 3 {
		t.Fatalf("attempts = %d, want 3", len(s))
	}
	for i, x := range s {
		if x.attempts != i+1 || x.history != i {
			t.Errorf("attempt %d saw attempts %d, history %d; want %d, %d", i, x.attempts, x.history, i+1, i)
		}
	}
	if want := []string{"a@example.test", "b@example.test"}; !slices.Equal(s[0].rcpts, want) {
		t.Errorf("first attempt rcpts = %v, want %v", s[0].rcpts, want)
	}
	if want := []string{"b@example.test"}; !slices.Equal(s[1].rcpts, want) || !slices.Equal(s[2].rcpts, want) {
		t.Errorf("rcpts after partial success = %v, %v; want %v", s[1].rcpts, s[2].rcpts, want)
	}
}

func TestRunnerDeadLetters(t *testing.T) {
	for _, tc := range []struct {
		name     string
		outcome  deliver.Outcome
		schedule []time.Duration
		maxAge   time.Duration
		attempts int
	}{
		{"permanent", deliver.Outcome{Permanent: true, Attempt: deliver.Attempt{Status: 410, Error: "gone"}}, nil, 0, 1},
		{"schedule exhausted", fail, []time.Duration{time.Millisecond, time.Millisecond}, 0, 3},
		{"retry-after past schedule", deliver.Outcome{RetryAfter: time.Millisecond, Attempt: deliver.Attempt{Status: 429}}, []time.Duration{time.Hour}, 0, 2},
		{"max age", fail, []time.Duration{time.Hour}, time.Minute, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			q := newQueue(t)
			commitOne(t, q, deliver.KindWebhook)
			h, got := recorder(tc.outcome)
			start(t, deliver.RunnerOptions{Queue: q, Handlers: map[deliver.Kind]deliver.Handler{deliver.KindWebhook: h},
				Schedule: tc.schedule, MaxAge: tc.maxAge})
			waitFor(t, "dead letter", deadJob(t, q))
			j, err := q.Get(t.Context(), "j1")
			if err != nil || j.Attempts != tc.attempts || len(j.History) != tc.attempts || len(got()) != tc.attempts {
				t.Fatalf("dead job = %+v, %v; handler calls %d; want %d attempts recorded", j, err, len(got()), tc.attempts)
			}
			if a := j.History[len(j.History)-1]; a.Status != tc.outcome.Attempt.Status || a.At.IsZero() {
				t.Errorf("last attempt = %+v", a)
			}
		})
	}
}

func TestRunnerRetryAfter(t *testing.T) {
	q := newQueue(t)
	commitOne(t, q, deliver.KindWebhook)
	h, got := recorder(deliver.Outcome{RetryAfter: time.Millisecond, Attempt: deliver.Attempt{Status: 503}}, ok)
	// The schedule alone would wait an hour.
	start(t, deliver.RunnerOptions{Queue: q, Handlers: map[deliver.Kind]deliver.Handler{deliver.KindWebhook: h},
		Schedule: []time.Duration{time.Hour, time.Hour}})
	waitFor(t, "delivery after Retry-After", empty(t, q))
	if n := len(got()); n != 2 {
		t.Errorf("attempts = %d, want 2", n)
	}
}

func TestRunnerNotify(t *testing.T) {
	q := newQueue(t)
	h, _ := recorder(ok)
	r := start(t, deliver.RunnerOptions{Queue: q, Handlers: map[deliver.Kind]deliver.Handler{deliver.KindWebhook: h},
		PollInterval: time.Hour})
	c := &deliver.Committer{Queue: q, Notify: r.Notify}
	m := queuetest.NewMail(t, "m1", "raw")
	d := []route.Decision{{Rcpt: "support@example.test", Rules: []string{"tickets"}, Actions: []route.Action{{Kind: route.ActWebhook, Webhook: "tickets"}}}}
	if err := c.Commit(t.Context(), m, d); err != nil {
		t.Fatal(err)
	}
	// With an hour between polls only Notify can get it delivered.
	waitFor(t, "delivery after Notify", empty(t, q))
}

func TestRunnerStop(t *testing.T) {
	t.Run("finishes in flight", func(t *testing.T) {
		q := newQueue(t)
		commitOne(t, q, deliver.KindWebhook)
		started, release := make(chan struct{}), make(chan struct{})
		h := handlerFunc(func(ctx context.Context, job *deliver.Job, mail *inbound.Mail, raw deliver.RawOpener) deliver.Outcome {
			close(started)
			<-release
			return ok
		})
		r, err := deliver.NewRunner(deliver.RunnerOptions{Queue: q, Handlers: map[deliver.Kind]deliver.Handler{deliver.KindWebhook: h}, StopTimeout: time.Minute})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error)
		go func() { done <- r.Run(ctx) }()
		<-started
		cancel()
		close(release)
		if err := <-done; err != nil {
			t.Fatalf("Run = %v", err)
		}
		if !empty(t, q)() {
			t.Error("the attempt in flight at stop was not acked")
		}
	})
	t.Run("releases abandoned", func(t *testing.T) {
		q := newQueue(t)
		commitOne(t, q, deliver.KindWebhook)
		started := make(chan struct{})
		h := handlerFunc(func(ctx context.Context, job *deliver.Job, mail *inbound.Mail, raw deliver.RawOpener) deliver.Outcome {
			close(started)
			<-ctx.Done()
			return deliver.Outcome{Attempt: deliver.Attempt{Error: ctx.Err().Error()}}
		})
		var settled []deliver.Settlement // written before Run returns
		r, err := deliver.NewRunner(deliver.RunnerOptions{Queue: q, Handlers: map[deliver.Kind]deliver.Handler{deliver.KindWebhook: h}, StopTimeout: time.Millisecond, Lease: time.Hour,
			OnAttempt: func(_ *deliver.Job, _ *inbound.Mail, _ deliver.Attempt, how deliver.Settlement) {
				settled = append(settled, how)
			}})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error)
		go func() { done <- r.Run(ctx) }()
		<-started
		cancel()
		if err := <-done; err != nil {
			t.Fatalf("Run = %v", err)
		}
		if !slices.Equal(settled, []deliver.Settlement{deliver.SettleReleased}) {
			t.Errorf("OnAttempt told %v, want [released]", settled)
		}
		j, err := q.Get(t.Context(), "j1")
		if err != nil || j.StateAt(time.Now()) != deliver.StateReady || j.Attempts != 1 || len(j.History) != 1 {
			t.Fatalf("abandoned job = %+v, %v; want ready again with the attempt recorded", j, err)
		}
	})
}

func TestRunnerConcurrency(t *testing.T) {
	q := newQueue(t)
	const n = 30
	var jobs []*deliver.Job
	for i := range n {
		jobs = append(jobs, queuetest.NewJob(deliver.JobID("m1", string(rune('a'+i))), "m1", deliver.KindWebhook, time.Time{}))
	}
	if err := q.Commit(t.Context(), queuetest.NewMail(t, "m1", "x"), jobs); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	cur, peak := 0, 0
	h := handlerFunc(func(ctx context.Context, job *deliver.Job, mail *inbound.Mail, raw deliver.RawOpener) deliver.Outcome {
		mu.Lock()
		cur++
		peak = max(peak, cur)
		mu.Unlock()
		time.Sleep(time.Millisecond)
		mu.Lock()
		cur--
		mu.Unlock()
		return ok
	})
	start(t, deliver.RunnerOptions{Queue: q, Handlers: map[deliver.Kind]deliver.Handler{deliver.KindWebhook: h},
		Concurrency: map[deliver.Kind]int{deliver.KindWebhook: 3}})
	waitFor(t, "all delivered", empty(t, q))
	if peak > 3 {
		t.Errorf("peak concurrency = %d, want <= 3", peak)
	}
}

func TestRunnerOnAttempt(t *testing.T) {
	q := newQueue(t)
	commitOne(t, q, deliver.KindWebhook)
	h, _ := recorder(fail, ok)
	var mu sync.Mutex
	var outcomes []deliver.Settlement
	start(t, deliver.RunnerOptions{Queue: q, Handlers: map[deliver.Kind]deliver.Handler{deliver.KindWebhook: h},
		Schedule: []time.Duration{time.Millisecond},
		OnAttempt: func(job *deliver.Job, mail *inbound.Mail, a deliver.Attempt, outcome deliver.Settlement) {
			mu.Lock()
			defer mu.Unlock()
			if mail == nil || mail.ID != "m1" || job.ID != "j1" {
				t.Errorf("OnAttempt(%v, %v)", job, mail)
			}
			outcomes = append(outcomes, outcome)
		}})
	waitFor(t, "delivery", empty(t, q))
	waitFor(t, "two hooks", func() bool { mu.Lock(); defer mu.Unlock(); return len(outcomes) == 2 })
	if outcomes[0] != deliver.SettleRetry || outcomes[1] != deliver.SettleDelivered {
		t.Errorf("outcomes = %v, want [retry delivered]", outcomes)
	}
}
