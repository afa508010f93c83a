package redisq_test

import (
	"os"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/mailhook/mailhook/deliver/queuetest"
	"github.com/mailhook/mailhook/deliver/redisq"
)

func benchQueue(b *testing.B) *redisq.Queue {
	if startErr != nil {
		if os.Getenv("MAILHOOK_REQUIRE_ALL") == "1" {
			b.Fatalf("redis needed: %v", startErr)
		}
		b.Skipf("no redis: %v", startErr)
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
