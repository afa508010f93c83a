package boltq_test

import (
	"testing"
	"time"

	"github.com/mailhook/mailhook/deliver"
	"github.com/mailhook/mailhook/deliver/boltq"
	"github.com/mailhook/mailhook/deliver/queuetest"
)

func TestDedup(t *testing.T) {
	queuetest.RunDedup(t, func(t *testing.T, window time.Duration) deliver.Backend {
		q, err := boltq.Open(t.TempDir(), boltq.Options{DedupWindow: window})
		if err != nil {
			t.Fatal(err)
		}
		return q
	})
}
