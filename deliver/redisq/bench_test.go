package redisq_test

import (
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/mailhook/mailhook/deliver/queuetest"
	"github.com/mailhook/mailhook/deliver/redisq"
	"github.com/mailhook/mailhook/internal/testenv"
)

func benchQueue(b *testing.B) *redisq.Queue {
	if startErr != nil {
		testenv.Missing(b, "no redis (set REDIS_ADDR or install redis-server): %v", startErr)
	}
	c := redis.NewClient(&redis.Options{Addr: addr})
	b.Cleanup(func() { c.Close() })
	q, err := redisq.New(c, redisq.Options{Prefix: prefix()})
	if err != nil {
		b.Fatal(err)
	}
	return q
}

// BenchmarkCommitRedis: parallel commits of a 2 KB message, one job each.
func BenchmarkCommitRedis(b *testing.B) { queuetest.BenchCommit(b, benchQueue(b)) }

// BenchmarkTakeAckRedis: parallel take-10-and-ack.
func BenchmarkTakeAckRedis(b *testing.B) { queuetest.BenchTakeAck(b, benchQueue(b)) }
