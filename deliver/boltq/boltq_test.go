package boltq_test

import (
	"os"
	"testing"

	"github.com/mailhook/mailhook/deliver"
	"github.com/mailhook/mailhook/deliver/boltq"
	"github.com/mailhook/mailhook/deliver/queuetest"
)

func TestSuite(t *testing.T) {
	for _, tc := range []struct {
		name   string
		inline int64
	}{{"inline", 0}, {"files", -1}} {
		t.Run(tc.name, func(t *testing.T) {
			queuetest.Run(t, func(t *testing.T) deliver.Backend {
				q, err := boltq.Open(t.TempDir(), boltq.Options{InlineMax: tc.inline})
				if err != nil {
					t.Fatal(err)
				}
				return q
			})
		})
	}
}

// openDir opens the store under dir for the shared embedded-backend tests.
func openDir(dir string, inline bool) (deliver.Backend, error) {
	return boltq.Open(dir, boltq.Options{InlineMax: map[bool]int64{true: 0, false: -1}[inline]})
}

func TestMain(m *testing.M) {
	queuetest.CrashChild(openDir)
	os.Exit(m.Run())
}

func TestLock(t *testing.T) { queuetest.Lock(t, openDir, boltq.ErrLocked) }

// TestRecover reopens a store left as a crash leaves it.
func TestRecover(t *testing.T) { queuetest.Recover(t, openDir) }

// TestKill9 kills a process committing and acking at arbitrary points.
func TestKill9(t *testing.T) { queuetest.Kill9(t, openDir) }
