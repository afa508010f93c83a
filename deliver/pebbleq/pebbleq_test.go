package pebbleq_test

import (
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
