// Package queuetest is the test suite every queue backend must pass, on
// both of its faces: the pipeline's deliver.Queue (Commit, Take, Ack,
// Retry, Dead, Mail, OpenRaw) and the deliver.Operator (Stats, List,
// ListDead, Get, Replay, ReplayAll, RetryNow, Drop). Call Run from the
// backend's tests with a constructor of empty queues (deliver.Backend).
package queuetest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mailhook/mailhook/deliver"
	"github.com/mailhook/mailhook/inbound"
	"github.com/mailhook/mailhook/route"
)

// Run runs the suite. newQueue must return an empty queue; Run closes it.
func Run(t *testing.T, newQueue func(t *testing.T) deliver.Backend) {
	tests := []struct {
		name string
		fn   func(t *testing.T, q deliver.Backend)
	}{
		{"CommitTakeAck", testCommitTakeAck},
		{"DueOrder", testDueOrder},
		{"Retry", testRetry},
		{"DeadReplay", testDeadReplay},
		{"ReplayAll", testReplayAll},
		{"Drop", testDrop},
		{"LeaseExpiry", testLeaseExpiry},
		{"ConcurrentWorkers", testConcurrentWorkers},
		{"CommitAtomic", testCommitAtomic},
		{"CommitIdempotent", testCommitIdempotent},
		{"CommitStableID", testCommitStableID},
		{"CommitRawBytes", testCommitRawBytes},
		{"CommitInvalid", testCommitInvalid},
		{"List", testList},
		{"RetryNow", testRetryNow},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			q := newQueue(t)
			t.Cleanup(func() { q.Close() })
			tc.fn(t, q)
		})
	}
}

// NewMail returns a mail whose raw file, in a temporary directory, holds raw.
func NewMail(t testing.TB, id, raw string) *inbound.Mail {
	t.Helper()
	p := filepath.Join(t.TempDir(), id+".eml")
	if err := os.WriteFile(p, []byte(raw), 0o600); err != nil {
		t.Fatal(err)
	}
	return &inbound.Mail{
		ID:         id,
		ReceivedAt: time.Now().UTC().Truncate(time.Second),
		Envelope:   inbound.Envelope{MailFrom: "a@example.org", RcptTo: []string{"support@example.test"}, ClientIP: "192.0.2.1", Helo: "mx.example.org", TLS: true},
		RawPath:    p,
		RawSize:    int64(len(raw)),
	}
}

// NewJob returns a job of kind for message msgID, due at next.
func NewJob(id, msgID string, kind deliver.Kind, next time.Time) *deliver.Job {
	return &deliver.Job{
		ID: id, MsgID: msgID, Kind: kind, Target: "t-" + id, Route: "r",
		Action: route.Action{Kind: route.ActWebhook, Webhook: "t-" + id},
		Rcpts:  []string{"a@example.test", "b@example.test"},
		NextAt: next,
	}
}

func ctx(t *testing.T) context.Context { return t.Context() }

func commit(t *testing.T, q deliver.Backend, m *inbound.Mail, jobs ...*deliver.Job) {
	t.Helper()
	if err := q.Commit(ctx(t), m, jobs); err != nil {
		t.Fatalf("Commit(%s) = %v", m.ID, err)
	}
}

func take(t *testing.T, q deliver.Backend, n int, kinds ...deliver.Kind) []*deliver.Job {
	t.Helper()
	if len(kinds) == 0 {
		kinds = deliver.Kinds
	}
	jobs, err := q.Take(ctx(t), kinds, n, time.Minute)
	if err != nil {
		t.Fatalf("Take = %v", err)
	}
	return jobs
}

func ids(jobs []*deliver.Job) []string {
	var s []string
	for _, j := range jobs {
		s = append(s, j.ID)
	}
	return s
}

func stats(t *testing.T, q deliver.Backend) deliver.Stats {
	t.Helper()
	st, err := q.Stats(ctx(t))
	if err != nil {
		t.Fatalf("Stats = %v", err)
	}
	st.OldestAge = 0
	return st
}

func wantStats(t *testing.T, q deliver.Backend, want deliver.Stats) {
	t.Helper()
	if got := stats(t, q); got != want {
		t.Fatalf("Stats = %+v, want %+v", got, want)
	}
}

// testCommitRawBytes commits messages held in memory (Raw, no file): a
// small one and one of 200 KB (past the embedded backend's inline size),
// and reads both back; a second commit of the same message is a no-op.
func testCommitRawBytes(t *testing.T, q deliver.Backend) {
	past := time.Now().Add(-time.Second)
	large := "Subject: large\r\n\r\n" + strings.Repeat(strings.Repeat("y", 98)+"\r\n", 2000)
	for i, raw := range []string{"Subject: small\r\n\r\nbody\r\n", large} {
		id := fmt.Sprintf("mem%d", i)
		m := NewMail(t, id, raw)
		os.Remove(m.RawPath)
		m.RawPath, m.Raw = "", []byte(raw)
		commit(t, q, m, NewJob(id+"-j", id, deliver.KindWebhook, past))
		commit(t, q, m, NewJob(id+"-j", id, deliver.KindWebhook, past))
		wantRaw(t, q, id, raw)
	}
	if got := stats(t, q); got.Ready != 2 {
		t.Fatalf("Stats = %+v, want 2 ready", got)
	}
	for _, j := range take(t, q, 10) {
		if err := q.Ack(ctx(t), j); err != nil {
			t.Fatalf("Ack = %v", err)
		}
	}
	wantStats(t, q, deliver.Stats{})
}

func testCommitTakeAck(t *testing.T, q deliver.Backend) {
	past := time.Now().Add(-time.Second)
	m := NewMail(t, "m1", "Subject: hi\r\n\r\nbody\r\n")
	raw := m.RawPath
	commit(t, q, m, NewJob("j1", "m1", deliver.KindWebhook, past), NewJob("j2", "m1", deliver.KindRelay, past))
	if _, err := os.Stat(raw); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("raw file still at RawPath after Commit: %v", err)
	}
	got, err := q.Mail(ctx(t), "m1")
	if err != nil {
		t.Fatalf("Mail = %v", err)
	}
	if got.ID != "m1" || got.Envelope.MailFrom != "a@example.org" || !got.ReceivedAt.Equal(m.ReceivedAt) || got.RawSize != m.RawSize {
		t.Errorf("Mail = %+v, want %+v", got, m)
	}
	wantRaw(t, q, "m1", "Subject: hi\r\n\r\nbody\r\n")
	st, err := q.Stats(ctx(t))
	if err != nil || st.Ready != 2 || st.OldestAge < 500*time.Millisecond {
		t.Errorf("Stats = %+v, %v; want 2 ready, oldest >= 1s", st, err)
	}

	jobs := take(t, q, 10, deliver.KindWebhook)
	if len(jobs) != 1 || jobs[0].ID != "j1" {
		t.Fatalf("Take(webhook) = %v, want [j1]", ids(jobs))
	}
	j := jobs[0]
	if j.Attempts != 1 || j.Lease == "" || j.LeaseUntil.Before(time.Now()) || j.MsgID != "m1" || j.Target != "t-j1" || !slices.Equal(j.Rcpts, []string{"a@example.test", "b@example.test"}) {
		t.Errorf("taken job = %+v", j)
	}
	stored, err := q.Get(ctx(t), "j1")
	if err != nil || stored.Attempts != 1 || stored.StateAt(time.Now()) != deliver.StateLeased {
		t.Errorf("Get(j1) after Take = %+v, %v; want attempts 1 saved, leased", stored, err)
	}
	wantStats(t, q, deliver.Stats{Ready: 1, Leased: 1})
	if again := take(t, q, 10, deliver.KindWebhook); len(again) != 0 {
		t.Errorf("Take while leased = %v, want none", ids(again))
	}
	if err := q.Ack(ctx(t), j); err != nil {
		t.Fatalf("Ack = %v", err)
	}
	if err := q.Ack(ctx(t), j); !errors.Is(err, deliver.ErrLeaseLost) {
		t.Errorf("second Ack = %v, want ErrLeaseLost", err)
	}
	if _, err := q.Get(ctx(t), "j1"); !errors.Is(err, deliver.ErrNotFound) {
		t.Errorf("Get(acked) = %v, want ErrNotFound", err)
	}
	// The message stays while a job remains.
	wantRaw(t, q, "m1", "Subject: hi\r\n\r\nbody\r\n")
	jobs = take(t, q, 10)
	if len(jobs) != 1 || jobs[0].ID != "j2" {
		t.Fatalf("Take = %v, want [j2]", ids(jobs))
	}
	if err := q.Ack(ctx(t), jobs[0]); err != nil {
		t.Fatalf("Ack = %v", err)
	}
	if _, err := q.Mail(ctx(t), "m1"); !errors.Is(err, deliver.ErrNotFound) {
		t.Errorf("Mail after last ack = %v, want ErrNotFound", err)
	}
	if _, err := q.OpenRaw(ctx(t), "m1"); !errors.Is(err, deliver.ErrNotFound) {
		t.Errorf("OpenRaw after last ack = %v, want ErrNotFound", err)
	}
	wantStats(t, q, deliver.Stats{})
}

func wantRaw(t *testing.T, q deliver.Backend, msgID, want string) {
	t.Helper()
	rc, err := q.OpenRaw(ctx(t), msgID)
	if err != nil {
		t.Fatalf("OpenRaw(%s) = %v", msgID, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil || string(b) != want {
		t.Errorf("raw of %s = %q, %v; want %q", msgID, b, err, want)
	}
}

func testDueOrder(t *testing.T, q deliver.Backend) {
	now := time.Now()
	commit(t, q, NewMail(t, "m1", "x"),
		NewJob("a", "m1", deliver.KindWebhook, now.Add(-1*time.Second)),
		NewJob("b", "m1", deliver.KindRelay, now.Add(-3*time.Second)),
		NewJob("c", "m1", deliver.KindMailbox, now.Add(time.Hour)),
	)
	commit(t, q, NewMail(t, "m2", "y"),
		NewJob("d", "m2", deliver.KindWebhook, now.Add(-2*time.Second)),
		NewJob("e", "m2", deliver.KindWebhook, now.Add(-4*time.Second)),
	)
	wantStats(t, q, deliver.Stats{Ready: 4, Scheduled: 1})
	if got := ids(take(t, q, 2)); !slices.Equal(got, []string{"e", "b"}) {
		t.Errorf("Take(2) = %v, want [e b]", got)
	}
	if got := ids(take(t, q, 10)); !slices.Equal(got, []string{"d", "a"}) {
		t.Errorf("Take(10) = %v, want [d a] (c is not due)", got)
	}
	if got := ids(take(t, q, 10)); len(got) != 0 {
		t.Errorf("Take = %v, want none", got)
	}
	if got := ids(take(t, q, 0)); len(got) != 0 {
		t.Errorf("Take(0) = %v, want none", got)
	}
}

func testRetry(t *testing.T, q deliver.Backend) {
	commit(t, q, NewMail(t, "m1", "x"), NewJob("j1", "m1", deliver.KindRelay, time.Time{}))
	j := take(t, q, 1)[0]
	j.Rcpts = []string{"b@example.test"}
	a := deliver.Attempt{At: time.Now().UTC().Truncate(time.Millisecond), Status: 451, Latency: 3 * time.Millisecond, Error: "try later", Response: "451 4.3.0 busy"}
	if err := q.Retry(ctx(t), j, time.Now().Add(time.Hour), a); err != nil {
		t.Fatalf("Retry = %v", err)
	}
	wantStats(t, q, deliver.Stats{Scheduled: 1})
	if got := take(t, q, 1); len(got) != 0 {
		t.Errorf("Take before due = %v, want none", ids(got))
	}
	got, err := q.Get(ctx(t), "j1")
	if err != nil {
		t.Fatal(err)
	}
	if len(got.History) != 1 || got.History[0].Status != 451 || got.History[0].Response != "451 4.3.0 busy" || !got.History[0].At.Equal(a.At) ||
		got.LastError != "try later" || !slices.Equal(got.Rcpts, []string{"b@example.test"}) || got.Lease != "" {
		t.Errorf("after Retry job = %+v", got)
	}
	if err := q.Retry(ctx(t), j, time.Now(), a); !errors.Is(err, deliver.ErrLeaseLost) {
		t.Errorf("Retry without lease = %v, want ErrLeaseLost", err)
	}
	// Make it due: replay is for dead jobs, so retry it again through a
	// fresh commit of the schedule: Take cannot see it, so drop and check.
	commit(t, q, NewMail(t, "m2", "y"), NewJob("j2", "m2", deliver.KindRelay, time.Time{}))
	j2 := take(t, q, 1)[0]
	if err := q.Retry(ctx(t), j2, time.Now().Add(-time.Millisecond), a); err != nil {
		t.Fatal(err)
	}
	again := take(t, q, 1)
	if len(again) != 1 || again[0].ID != "j2" || again[0].Attempts != 2 || len(again[0].History) != 1 {
		t.Fatalf("Take after due retry = %+v, want j2 with attempts 2", again)
	}
}

func testDeadReplay(t *testing.T, q deliver.Backend) {
	commit(t, q, NewMail(t, "m1", "x"), NewJob("j1", "m1", deliver.KindWebhook, time.Time{}))
	j := take(t, q, 1)[0]
	if err := q.Dead(ctx(t), j, deliver.Attempt{At: time.Now(), Status: 410, Error: "gone"}); err != nil {
		t.Fatalf("Dead = %v", err)
	}
	wantStats(t, q, deliver.Stats{Dead: 1})
	if got := take(t, q, 1); len(got) != 0 {
		t.Errorf("Take of dead = %v", ids(got))
	}
	if err := q.Ack(ctx(t), j); !errors.Is(err, deliver.ErrLeaseLost) {
		t.Errorf("Ack of dead = %v, want ErrLeaseLost", err)
	}
	dead, err := q.ListDead(ctx(t), deliver.ListOptions{})
	if err != nil || len(dead) != 1 || dead[0].ID != "j1" || dead[0].DeadAt.IsZero() || dead[0].LastError != "gone" || len(dead[0].History) != 1 {
		t.Fatalf("ListDead = %+v, %v", dead, err)
	}
	if _, err := q.Mail(ctx(t), "m1"); err != nil {
		t.Errorf("Mail of dead job's message = %v; dead letters keep their message", err)
	}
	if err := q.Replay(ctx(t), "j1"); err != nil {
		t.Fatalf("Replay = %v", err)
	}
	if err := q.Replay(ctx(t), "j1"); !errors.Is(err, deliver.ErrNotDead) {
		t.Errorf("Replay of ready job = %v, want ErrNotDead", err)
	}
	if err := q.Replay(ctx(t), "nope"); !errors.Is(err, deliver.ErrNotFound) {
		t.Errorf("Replay(unknown) = %v, want ErrNotFound", err)
	}
	wantStats(t, q, deliver.Stats{Ready: 1})
	got := take(t, q, 1)
	if len(got) != 1 || got[0].Attempts != 2 || got[0].ReplayedAttempts != 1 || got[0].ReplayedAt.IsZero() || len(got[0].History) != 1 || !got[0].DeadAt.IsZero() {
		t.Fatalf("Take after Replay = %+v", got)
	}
	if err := q.Ack(ctx(t), got[0]); err != nil {
		t.Fatal(err)
	}
	wantStats(t, q, deliver.Stats{})
}

func testReplayAll(t *testing.T, q deliver.Backend) {
	var jobs []*deliver.Job
	for i := range 5 {
		jobs = append(jobs, NewJob(fmt.Sprint("j", i), "m1", deliver.KindWebhook, time.Time{}))
	}
	commit(t, q, NewMail(t, "m1", "x"), jobs...)
	for _, j := range take(t, q, 2) {
		if err := q.Dead(ctx(t), j, deliver.Attempt{Error: "early"}); err != nil {
			t.Fatal(err)
		}
	}
	// Backends keep times to the millisecond: keep the two groups apart.
	time.Sleep(3 * time.Millisecond)
	since := time.Now()
	time.Sleep(3 * time.Millisecond)
	for _, j := range take(t, q, 3) {
		if err := q.Dead(ctx(t), j, deliver.Attempt{Error: "late"}); err != nil {
			t.Fatal(err)
		}
	}
	dead, err := q.ListDead(ctx(t), deliver.ListOptions{Limit: 2})
	if err != nil || len(dead) != 2 {
		t.Fatalf("ListDead(limit 2) = %v, %v", ids(dead), err)
	}
	more, err := q.ListDead(ctx(t), deliver.ListOptions{After: dead[1].ID})
	if err != nil || len(more) != 3 || slices.Contains(ids(more), dead[0].ID) || slices.Contains(ids(more), dead[1].ID) {
		t.Fatalf("ListDead(after %s) = %v, %v; want the 3 others", dead[1].ID, ids(more), err)
	}
	n, err := q.ReplayAll(ctx(t), since)
	if err != nil || n != 3 {
		t.Fatalf("ReplayAll(since) = %d, %v; want 3", n, err)
	}
	wantStats(t, q, deliver.Stats{Ready: 3, Dead: 2})
	n, err = q.ReplayAll(ctx(t), time.Time{})
	if err != nil || n != 2 {
		t.Fatalf("ReplayAll(all) = %d, %v; want 2", n, err)
	}
	wantStats(t, q, deliver.Stats{Ready: 5})
}

func testDrop(t *testing.T, q deliver.Backend) {
	commit(t, q, NewMail(t, "m1", "x"),
		NewJob("j1", "m1", deliver.KindWebhook, time.Time{}),
		NewJob("j2", "m1", deliver.KindWebhook, time.Now().Add(time.Hour)),
		NewJob("j3", "m1", deliver.KindWebhook, time.Now().Add(2*time.Hour)))
	if err := q.Drop(ctx(t), "nope"); !errors.Is(err, deliver.ErrNotFound) {
		t.Errorf("Drop(unknown) = %v, want ErrNotFound", err)
	}
	leased := take(t, q, 1)[0]
	if err := q.Drop(ctx(t), leased.ID); err != nil {
		t.Fatalf("Drop(leased) = %v", err)
	}
	if err := q.Ack(ctx(t), leased); !errors.Is(err, deliver.ErrLeaseLost) {
		t.Errorf("Ack after Drop = %v, want ErrLeaseLost", err)
	}
	if err := q.Drop(ctx(t), "j2"); err != nil {
		t.Fatal(err)
	}
	wantRaw(t, q, "m1", "x")
	if err := q.Drop(ctx(t), "j3"); err != nil {
		t.Fatal(err)
	}
	if _, err := q.Mail(ctx(t), "m1"); !errors.Is(err, deliver.ErrNotFound) {
		t.Errorf("Mail after dropping every job = %v, want ErrNotFound", err)
	}
	wantStats(t, q, deliver.Stats{})
}

func testLeaseExpiry(t *testing.T, q deliver.Backend) {
	commit(t, q, NewMail(t, "m1", "x"), NewJob("j1", "m1", deliver.KindWebhook, time.Time{}))
	old, err := q.Take(ctx(t), deliver.Kinds, 1, 20*time.Millisecond)
	if err != nil || len(old) != 1 {
		t.Fatalf("Take = %v, %v", ids(old), err)
	}
	var again []*deliver.Job
	deadline := time.Now().Add(10 * time.Second)
	for len(again) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("job with an expired lease was never taken again")
		}
		again = take(t, q, 1)
	}
	if again[0].ID != "j1" || again[0].Attempts != 2 || again[0].Lease == old[0].Lease {
		t.Fatalf("re-taken job = %+v", again[0])
	}
	a := deliver.Attempt{Error: "late"}
	if err := q.Ack(ctx(t), old[0]); !errors.Is(err, deliver.ErrLeaseLost) {
		t.Errorf("Ack by old holder = %v, want ErrLeaseLost", err)
	}
	if err := q.Retry(ctx(t), old[0], time.Now(), a); !errors.Is(err, deliver.ErrLeaseLost) {
		t.Errorf("Retry by old holder = %v, want ErrLeaseLost", err)
	}
	if err := q.Dead(ctx(t), old[0], a); !errors.Is(err, deliver.ErrLeaseLost) {
		t.Errorf("Dead by old holder = %v, want ErrLeaseLost", err)
	}
	if err := q.Ack(ctx(t), again[0]); err != nil {
		t.Errorf("Ack by new holder = %v", err)
	}
	wantStats(t, q, deliver.Stats{})
}

func testConcurrentWorkers(t *testing.T, q deliver.Backend) {
	const nMsgs, perMsg, workers = 20, 3, 4
	for i := range nMsgs {
		var jobs []*deliver.Job
		for k := range perMsg {
			jobs = append(jobs, NewJob(fmt.Sprintf("m%d-j%d", i, k), fmt.Sprint("m", i), deliver.Kinds[k%len(deliver.Kinds)], time.Time{}))
		}
		commit(t, q, NewMail(t, fmt.Sprint("m", i), "x"), jobs...)
	}
	var mu sync.Mutex
	seen := map[string]int{}
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				jobs, err := q.Take(context.Background(), deliver.Kinds, 3, time.Minute)
				if err != nil {
					errs <- err
					return
				}
				if len(jobs) == 0 {
					return
				}
				for _, j := range jobs {
					mu.Lock()
					seen[j.ID]++
					mu.Unlock()
					if err := q.Ack(context.Background(), j); err != nil {
						errs <- fmt.Errorf("worker %d: Ack(%s) = %w", w, j.ID, err)
						return
					}
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if len(seen) != nMsgs*perMsg {
		t.Errorf("workers took %d distinct jobs, want %d", len(seen), nMsgs*perMsg)
	}
	for id, n := range seen {
		if n != 1 {
			t.Errorf("job %s taken %d times", id, n)
		}
	}
	wantStats(t, q, deliver.Stats{})
	for i := range nMsgs {
		if _, err := q.Mail(ctx(t), fmt.Sprint("m", i)); !errors.Is(err, deliver.ErrNotFound) {
			t.Errorf("Mail(m%d) after all acks = %v, want ErrNotFound", i, err)
		}
	}
}

func testCommitAtomic(t *testing.T, q deliver.Backend) {
	commit(t, q, NewMail(t, "m1", "x"), NewJob("x", "m1", deliver.KindWebhook, time.Time{}))
	m2 := NewMail(t, "m2", "y")
	err := q.Commit(ctx(t), m2, []*deliver.Job{
		NewJob("y", "m2", deliver.KindWebhook, time.Time{}),
		NewJob("x", "m2", deliver.KindRelay, time.Time{}),
	})
	if !errors.Is(err, deliver.ErrDuplicateJob) {
		t.Fatalf("Commit with a taken job id = %v, want ErrDuplicateJob", err)
	}
	if _, err := q.Get(ctx(t), "y"); !errors.Is(err, deliver.ErrNotFound) {
		t.Errorf("Get(y) after failed commit = %v, want ErrNotFound", err)
	}
	if _, err := q.Mail(ctx(t), "m2"); !errors.Is(err, deliver.ErrNotFound) {
		t.Errorf("Mail(m2) after failed commit = %v, want ErrNotFound", err)
	}
	if _, err := q.OpenRaw(ctx(t), "m2"); !errors.Is(err, deliver.ErrNotFound) {
		t.Errorf("OpenRaw(m2) after failed commit = %v, want ErrNotFound", err)
	}
	if _, err := os.Stat(m2.RawPath); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("raw file of a failed commit left at RawPath: %v", err)
	}
	x, err := q.Get(ctx(t), "x")
	if err != nil || x.MsgID != "m1" || x.Kind != deliver.KindWebhook {
		t.Errorf("Get(x) = %+v, %v; the committed job must be untouched", x, err)
	}
	wantStats(t, q, deliver.Stats{Ready: 1})

	// A raw file that cannot be read fails the commit, leaving nothing.
	m3 := NewMail(t, "m3", "z")
	os.Remove(m3.RawPath)
	if err := q.Commit(ctx(t), m3, []*deliver.Job{NewJob("z", "m3", deliver.KindWebhook, time.Time{})}); err == nil {
		t.Error("Commit with a missing raw file = nil, want an error")
	}
	if _, err := q.Get(ctx(t), "z"); !errors.Is(err, deliver.ErrNotFound) {
		t.Errorf("Get(z) after failed commit = %v, want ErrNotFound", err)
	}
	wantStats(t, q, deliver.Stats{Ready: 1})
}

func testCommitIdempotent(t *testing.T, q deliver.Backend) {
	commit(t, q, NewMail(t, "m1", "first"), NewJob("j1", "m1", deliver.KindWebhook, time.Time{}))
	again := NewMail(t, "m1", "second")
	commit(t, q, again, NewJob("j1", "m1", deliver.KindWebhook, time.Time{}))
	if _, err := os.Stat(again.RawPath); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("raw file of a duplicate commit left at RawPath: %v", err)
	}
	wantStats(t, q, deliver.Stats{Ready: 1})
	wantRaw(t, q, "m1", "first")
}

// NewRetry returns mail as the sending MTA's retry would make it: the same
// StableID, a new ID and a raw file of its own.
func NewRetry(t testing.TB, mail *inbound.Mail, id string) *inbound.Mail {
	t.Helper()
	m := NewMail(t, id, "retry of "+mail.ID)
	m.StableID = mail.StableID
	return m
}

// testCommitStableID: a message the sender retries after a lost 250 has a
// new ID and the same StableID; it commits once, even after its first
// copy was delivered, within the dedup window.
func testCommitStableID(t *testing.T, q deliver.Backend) {
	first := NewMail(t, "m1", "s1")
	first.StableID = "s1"
	commit(t, q, first, NewJob("j1", "m1", deliver.KindWebhook, time.Time{}))
	retry := NewRetry(t, first, "m2")
	commit(t, q, retry, NewJob("j1", "m2", deliver.KindWebhook, time.Time{}))
	if _, err := q.Mail(ctx(t), "m2"); !errors.Is(err, deliver.ErrNotFound) {
		t.Errorf("Mail(m2) of a retried message = %v, want ErrNotFound (committed once, as m1)", err)
	}
	if _, err := os.Stat(retry.RawPath); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("raw file of a retried commit left at RawPath: %v", err)
	}
	wantStats(t, q, deliver.Stats{Ready: 1})
	jobs := take(t, q, 10)
	if len(jobs) != 1 || jobs[0].MsgID != "m1" {
		t.Fatalf("Take = %+v, want j1 of m1", jobs)
	}
	if err := q.Ack(ctx(t), jobs[0]); err != nil {
		t.Fatal(err)
	}
	// Delivered, then retried by the sender: still a no-op.
	commit(t, q, NewRetry(t, first, "m3"), NewJob("j1", "m3", deliver.KindWebhook, time.Time{}))
	wantStats(t, q, deliver.Stats{})
	// Another message (another stable id) is not deduplicated.
	other := NewMail(t, "m4", "s2")
	other.StableID = "s2"
	commit(t, q, other, NewJob("j4", "m4", deliver.KindWebhook, time.Time{}))
	wantStats(t, q, deliver.Stats{Ready: 1})
}

// RunDedup checks the dedup window: newQueue must return an empty queue
// that remembers commit keys for window. It sleeps past windows of a few
// tens of milliseconds (waiting for time to pass, not asserting on it).
func RunDedup(t *testing.T, newQueue func(t *testing.T, window time.Duration) deliver.Backend) {
	const window = 30 * time.Millisecond
	t.Run("Expired", func(t *testing.T) {
		q := newQueue(t, window)
		t.Cleanup(func() { q.Close() })
		first := NewMail(t, "m1", "s1")
		first.StableID = "s1"
		commit(t, q, first, NewJob("j1", "m1", deliver.KindWebhook, time.Time{}))
		time.Sleep(2 * window)
		// Past the window, a message still queued is still a duplicate.
		commit(t, q, NewRetry(t, first, "m2"), NewJob("j1", "m2", deliver.KindWebhook, time.Time{}))
		wantStats(t, q, deliver.Stats{Ready: 1})
		jobs := take(t, q, 10)
		if len(jobs) != 1 {
			t.Fatalf("Take = %v, want j1", ids(jobs))
		}
		if err := q.Ack(ctx(t), jobs[0]); err != nil {
			t.Fatal(err)
		}
		time.Sleep(2 * window)
		// Delivered and past the window: a new message again.
		commit(t, q, NewRetry(t, first, "m3"), NewJob("j1", "m3", deliver.KindWebhook, time.Time{}))
		if _, err := q.Mail(ctx(t), "m3"); err != nil {
			t.Errorf("Mail(m3) committed past the window = %v", err)
		}
		wantStats(t, q, deliver.Stats{Ready: 1})
	})
	t.Run("Prune", func(t *testing.T) {
		q := newQueue(t, window)
		t.Cleanup(func() { q.Close() })
		// Many expired keys, pruned a few per commit, never block a
		// commit nor dedup a later one wrongly.
		for i := range 50 {
			m := NewMail(t, fmt.Sprint("a", i), "x")
			m.StableID = fmt.Sprint("k", i)
			commit(t, q, m, NewJob(fmt.Sprint("ja", i), m.ID, deliver.KindWebhook, time.Time{}))
		}
		for _, j := range take(t, q, 100) {
			if err := q.Ack(ctx(t), j); err != nil {
				t.Fatal(err)
			}
		}
		time.Sleep(2 * window)
		for i := range 50 {
			m := NewMail(t, fmt.Sprint("b", i), "x")
			m.StableID = fmt.Sprint("k", i)
			commit(t, q, m, NewJob(fmt.Sprint("ja", i), m.ID, deliver.KindWebhook, time.Time{}))
		}
		wantStats(t, q, deliver.Stats{Ready: 50})
	})
}

// CommitAfterFailedAck is the Redis WAIT-timeout case: failing commits to
// the same store as q but answers an error after writing (its replication
// was not confirmed), so the SMTP session said 451 and the sender retries.
// The retry through failing fails again (no 250 without the confirmation)
// and through q (confirmation back) succeeds; either way the message is
// queued once.
func CommitAfterFailedAck(t *testing.T, q deliver.Backend, failing deliver.Queue) {
	first := NewMail(t, "w1", "wait")
	first.StableID = "wait-s1"
	if err := failing.Commit(ctx(t), first, []*deliver.Job{NewJob("wj1", "w1", deliver.KindWebhook, time.Time{})}); err == nil {
		t.Fatal("Commit through the failing queue = nil, want an error")
	}
	if _, err := q.Mail(ctx(t), "w1"); err != nil {
		t.Fatalf("Mail(w1) after a commit whose ack failed = %v; the test needs it written", err)
	}
	if err := failing.Commit(ctx(t), NewRetry(t, first, "w2"), []*deliver.Job{NewJob("wj1", "w2", deliver.KindWebhook, time.Time{})}); err == nil {
		t.Error("retried Commit through the failing queue = nil, want an error (still unconfirmed)")
	}
	commit(t, q, NewRetry(t, first, "w3"), NewJob("wj1", "w3", deliver.KindWebhook, time.Time{}))
	for _, id := range []string{"w2", "w3"} {
		if _, err := q.Mail(ctx(t), id); !errors.Is(err, deliver.ErrNotFound) {
			t.Errorf("Mail(%s) = %v, want ErrNotFound: the retry must commit nothing new", id, err)
		}
	}
	j, err := q.Get(ctx(t), "wj1")
	if err != nil || j.MsgID != "w1" {
		t.Errorf("Get(wj1) = %+v, %v; want the job of w1", j, err)
	}
}

func testCommitInvalid(t *testing.T, q deliver.Backend) {
	for _, tc := range []struct {
		name string
		jobs []*deliver.Job
	}{
		{"unknown kind", []*deliver.Job{NewJob("a", "m1", "fax", time.Time{})}},
		{"no id", []*deliver.Job{NewJob("", "m1", deliver.KindWebhook, time.Time{})}},
		{"other message", []*deliver.Job{NewJob("a", "m9", deliver.KindWebhook, time.Time{})}},
		{"same id twice", []*deliver.Job{NewJob("a", "m1", deliver.KindWebhook, time.Time{}), NewJob("a", "m1", deliver.KindRelay, time.Time{})}},
	} {
		m := NewMail(t, "m1", "x")
		if err := q.Commit(ctx(t), m, tc.jobs); err == nil {
			t.Errorf("Commit(%s) = nil, want an error", tc.name)
		}
		if _, err := os.Stat(m.RawPath); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("Commit(%s) left the raw file: %v", tc.name, err)
		}
	}
	wantStats(t, q, deliver.Stats{})
	if _, err := q.Mail(ctx(t), "m1"); !errors.Is(err, deliver.ErrNotFound) {
		t.Errorf("Mail after invalid commits = %v, want ErrNotFound", err)
	}
}

func testList(t *testing.T, q deliver.Backend) {
	commit(t, q, NewMail(t, "m1", "x"),
		NewJob("a", "m1", deliver.KindWebhook, time.Time{}),
		NewJob("b", "m1", deliver.KindRelay, time.Now().Add(time.Hour)),
		NewJob("c", "m1", deliver.KindMailbox, time.Time{}))
	commit(t, q, NewMail(t, "m2", "y"), NewJob("d", "m2", deliver.KindWebhook, time.Time{}))
	for _, tc := range []struct {
		opts deliver.ListOptions
		want []string
	}{
		{deliver.ListOptions{}, []string{"a", "b", "c", "d"}},
		{deliver.ListOptions{Limit: 2}, []string{"a", "b"}},
		{deliver.ListOptions{After: "b"}, []string{"c", "d"}},
		{deliver.ListOptions{Kind: deliver.KindWebhook}, []string{"a", "d"}},
		{deliver.ListOptions{State: deliver.StateScheduled}, []string{"b"}},
		{deliver.ListOptions{MsgID: "m2"}, []string{"d"}},
	} {
		got, err := q.List(ctx(t), tc.opts)
		if err != nil || !slices.Equal(ids(got), tc.want) {
			t.Errorf("List(%+v) = %v, %v; want %v", tc.opts, ids(got), err, tc.want)
		}
	}
}

func testRetryNow(t *testing.T, q deliver.Backend) {
	var r deliver.Operator = q
	commit(t, q, NewMail(t, "m1", "x"), NewJob("j1", "m1", deliver.KindWebhook, time.Time{}), NewJob("j2", "m1", deliver.KindRelay, time.Time{}))
	j := take(t, q, 1, deliver.KindWebhook)[0]
	if err := r.RetryNow(ctx(t), "j1"); !errors.Is(err, deliver.ErrInFlight) {
		t.Errorf("RetryNow of a leased job = %v, want ErrInFlight", err)
	}
	a := deliver.Attempt{At: time.Now().UTC(), Status: 503, Error: "busy"}
	if err := q.Retry(ctx(t), j, time.Now().Add(time.Hour), a); err != nil {
		t.Fatal(err)
	}
	if got := take(t, q, 1, deliver.KindWebhook); len(got) != 0 {
		t.Fatalf("Take before due = %v", ids(got))
	}
	if err := r.RetryNow(ctx(t), "j1"); err != nil {
		t.Fatalf("RetryNow = %v", err)
	}
	if err := r.RetryNow(ctx(t), "j2"); err != nil {
		t.Errorf("RetryNow of a job already due = %v, want nil", err)
	}
	if err := r.RetryNow(ctx(t), "nope"); !errors.Is(err, deliver.ErrNotFound) {
		t.Errorf("RetryNow(unknown) = %v, want ErrNotFound", err)
	}
	got := take(t, q, 1, deliver.KindWebhook)
	if len(got) != 1 || got[0].ID != "j1" || got[0].Attempts != 2 || len(got[0].History) != 1 {
		t.Fatalf("Take after RetryNow = %+v, want j1 with attempts 2 and its history", got)
	}
	if err := q.Dead(ctx(t), got[0], a); err != nil {
		t.Fatal(err)
	}
	if err := r.RetryNow(ctx(t), "j1"); !errors.Is(err, deliver.ErrIsDead) {
		t.Errorf("RetryNow of a dead job = %v, want ErrIsDead", err)
	}
}
