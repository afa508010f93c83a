package boltq_test

import (
	"testing"

	"github.com/mailhook/mailhook/deliver/boltq"
	"github.com/mailhook/mailhook/deliver/queuetest"
)

func benchQueue(b *testing.B) *boltq.Queue {
	q, err := boltq.Open(b.TempDir(), boltq.Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { q.Close() })
	return q
}

// BenchmarkCommitEmbedded: parallel commits of a 2 KB message, one job each.
func BenchmarkCommitEmbedded(b *testing.B) { queuetest.BenchCommit(b, benchQueue(b)) }

// BenchmarkTakeAckEmbedded: parallel take-10-and-ack.
func BenchmarkTakeAckEmbedded(b *testing.B) { queuetest.BenchTakeAck(b, benchQueue(b)) }
