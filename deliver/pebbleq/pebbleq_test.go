package pebbleq_test

import (
	"errors"
	"os"
	"testing"
	"time"

	"github.com/mailhook/mailhook/deliver"
	"github.com/mailhook/mailhook/deliver/pebbleq"
	"github.com/mailhook/mailhook/deliver/queuetest"
)

// openDir opens the store under dir for the shared embedded-backend tests.
func openDir(dir string, inline bool) (deliver.Backend, error) {
	return pebbleq.Open(dir, pebbleq.Options{InlineMax: map[bool]int64{true: 0, false: -1}[inline]})
}

func TestMain(m *testing.M) {
	queuetest.CrashChild(openDir)
	os.Exit(m.Run())
}

func TestSuite(t *testing.T) {
	for _, tc := range []struct {
		name   string
		inline bool
	}{{"inline", true}, {"files", false}} {
		t.Run(tc.name, func(t *testing.T) {
			queuetest.Run(t, func(t *testing.T) deliver.Backend {
				q, err := openDir(t.TempDir(), tc.inline)
				if err != nil {
					t.Fatal(err)
				}
				return q
			})
		})
	}
}

func TestDedup(t *testing.T) {
	queuetest.RunDedup(t, func(t *testing.T, window time.Duration) deliver.Backend {
		q, err := pebbleq.Open(t.TempDir(), pebbleq.Options{DedupWindow: window})
		if err != nil {
			t.Fatal(err)
		}
		return q
	})
}

func TestLock(t *testing.T) { queuetest.Lock(t, openDir, pebbleq.ErrLocked) }

// TestRecover reopens a store left as a crash leaves it.
func TestRecover(t *testing.T) { queuetest.Recover(t, openDir) }

// TestKill9 kills a process committing and acking at arbitrary points.
func TestKill9(t *testing.T) { queuetest.Kill9(t, openDir) }

// TestAckFileAfterSync: an acknowledged message's file goes once the ack
// is synced, by the queue's own sync when nothing else syncs, and at the
// latest by Close; the job is gone at once and stays gone after reopening.
func TestAckFileAfterSync(t *testing.T) {
	ctx := t.Context()
	for _, closeAtOnce := range []bool{false, true} {
		dir := t.TempDir()
		q, err := openDir(dir, false)
		if err != nil {
			t.Fatal(err)
		}
		now := time.Now()
		if err := q.Commit(ctx, queuetest.NewMail(t, "m1", "one"), []*deliver.Job{queuetest.NewJob("j1", "m1", deliver.KindWebhook, now)}); err != nil {
			t.Fatal(err)
		}
		got, err := q.Take(ctx, deliver.Kinds, 1, time.Minute)
		if err != nil || len(got) != 1 {
			t.Fatalf("Take = %v, %v", got, err)
		}
		if err := q.Ack(ctx, got[0]); err != nil {
			t.Fatal(err)
		}
		if _, err := q.Get(ctx, "j1"); !errors.Is(err, deliver.ErrNotFound) {
			t.Errorf("Get after Ack = %v, want ErrNotFound", err)
		}
		within := 10 * time.Second
		if closeAtOnce {
			if err := q.Close(); err != nil {
				t.Fatal(err)
			}
			within = 0 // Close has synced and removed it
		}
		if n := queuetest.MsgFilesLeft(dir, within); n != 0 {
			t.Fatalf("close %v: msg dir holds %d files after the ack", closeAtOnce, n)
		}
		if !closeAtOnce {
			q.Close()
		}
		q, err = openDir(dir, false)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := q.Get(ctx, "j1"); !errors.Is(err, deliver.ErrNotFound) {
			t.Errorf("close %v: Get after reopening = %v, want ErrNotFound", closeAtOnce, err)
		}
		q.Close()
	}
}
