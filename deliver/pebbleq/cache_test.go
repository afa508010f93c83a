package pebbleq

import (
	"crypto/sha256"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/mailhook/mailhook/deliver"
	"github.com/mailhook/mailhook/deliver/queuetest"
)

// TestBlockCacheKeepsBlocks: commit-key lookups that reach a table read its
// filter and index from the block cache, not the file. Pebble takes the
// memtables' size out of the cache; sized without them, the cache held
// nothing and every lookup read both blocks again (19 µs instead of 4).
func TestBlockCacheKeepsBlocks(t *testing.T) {
	q, err := Open(t.TempDir(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	hash := func(s string) string { return fmt.Sprintf("%x", sha256.Sum256([]byte(s))) }
	// Pebble's memtables start small and double at each flush up to
	// memTableSize: 100 MB of inline messages reach it.
	body := "Subject: x\r\n\r\n" + strings.Repeat("0123456789abcdef\r\n", 200<<10/18)
	for i := range 500 {
		id := fmt.Sprint("m", i)
		m := queuetest.NewMail(t, id, body)
		m.StableID = hash(id)
		if err := q.Commit(t.Context(), m, []*deliver.Job{queuetest.NewJob(id+"-j", id, deliver.KindWebhook, time.Time{})}); err != nil {
			t.Fatal(err)
		}
	}
	if err := q.db.Flush(); err != nil {
		t.Fatal(err)
	}
	if n := q.db.Metrics().Levels[0].TablesCount + q.db.Metrics().Levels[6].TablesCount; n == 0 {
		t.Fatal("no table after the flush")
	}
	// Tables that a compaction replaces come with blocks not yet read:
	// wait for the compactions the flush started, and read every table's
	// blocks once before counting.
	for deadline := time.Now().Add(30 * time.Second); q.db.Metrics().Compact.NumInProgress > 0 && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
	const lookups = 200
	lookupAll := func() {
		for i := range lookups {
			if _, err := q.lookup(key(pDedup, hash(fmt.Sprint("absent", i)))); err != deliver.ErrNotFound {
				t.Fatalf("lookup of an absent key: %v", err)
			}
		}
	}
	lookupAll()
	before := q.db.Metrics().BlockCache
	lookupAll()
	after := q.db.Metrics().BlockCache
	hits, misses := after.Hits-before.Hits, after.Misses-before.Misses
	t.Logf("%d lookups: %d cache hits, %d misses", lookups, hits, misses)
	if hits == 0 || misses > hits/10 {
		t.Fatalf("block cache: %d hits, %d misses for %d lookups: the blocks are not kept", hits, misses, lookups)
	}
}
