package pebbleq_test

import (
	"testing"

	"github.com/mailhook/mailhook/deliver/pebbleq"
	"github.com/mailhook/mailhook/deliver/queuetest"
)

func benchQueue(b *testing.B) *pebbleq.Queue {
	q, err := pebbleq.Open(b.TempDir(), pebbleq.Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { q.Close() })
	return q
}

// BenchmarkCommitPebble: parallel commits of a 2 KB message, one job each.
func BenchmarkCommitPebble(b *testing.B) { queuetest.BenchCommit(b, benchQueue(b)) }

// BenchmarkTakeAckPebble: parallel take-10-and-ack.
func BenchmarkTakeAckPebble(b *testing.B) { queuetest.BenchTakeAck(b, benchQueue(b)) }
