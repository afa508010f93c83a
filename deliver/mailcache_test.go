package deliver_test

import (
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mailhook/mailhook/deliver"
	"github.com/mailhook/mailhook/deliver/pebbleq"
	"github.com/mailhook/mailhook/deliver/queuetest"
	"github.com/mailhook/mailhook/inbound"
	"github.com/mailhook/mailhook/parse"
	"github.com/mailhook/mailhook/route"
)

// countingQueue counts the reads of a mail back from the queue.
type countingQueue struct {
	deliver.Backend
	reads atomic.Int64
}

func (q *countingQueue) Mail(ctx context.Context, id string) (*inbound.Mail, error) {
	q.reads.Add(1)
	return q.Backend.Mail(ctx, id)
}

// TestMailCacheCommitToAttempt: a mail the Committer commits reaches this
// node's Runner without a read back from the queue, equal to what the queue
// would return; the entry goes when its jobs are delivered; a Runner without
// the cache (another node) reads the queue.
func TestMailCacheCommitToAttempt(t *testing.T) {
	for _, cached := range []bool{true, false} {
		t.Run(fmt.Sprintf("cached=%v", cached), func(t *testing.T) {
			q := &countingQueue{Backend: newQueue(t)}
			cache := deliver.NewMailCache(0)
			c := &deliver.Committer{Queue: q, Cache: cache}
			raw := "From: a@example.org\r\nSubject: hi\r\n\r\nHello.\r\n"
			m := queuetest.NewMail(t, "m1", raw)
			msg, err := parse.Parse(strings.NewReader(raw), parse.Options{})
			if err != nil {
				t.Fatal(err)
			}
			m.Message = msg
			d := []route.Decision{{Rcpt: "a@example.test", Rules: []string{"r"}, Actions: []route.Action{
				{Kind: route.ActWebhook, Webhook: "h1", Rule: "r"}, {Kind: route.ActWebhook, Webhook: "h2", Rule: "r"}}}}
			if err := c.Commit(t.Context(), m, d); err != nil {
				t.Fatal(err)
			}
			if cache.Len() != 1 {
				t.Fatalf("cache holds %d mails after the commit, want 1", cache.Len())
			}
			fromQueue, err := q.Backend.Mail(t.Context(), "m1")
			if err != nil {
				t.Fatal(err)
			}
			want, _ := json.Marshal(fromQueue)
			h, got := recorderMails()
			opts := deliver.RunnerOptions{Queue: q, Handlers: map[deliver.Kind]deliver.Handler{deliver.KindWebhook: h}}
			if cached {
				opts.Cache = cache
			}
			start(t, opts)
			waitFor(t, "both jobs delivered", empty(t, q))
			mails := got()
			if len(mails) != 2 {
				t.Fatalf("handler saw %d attempts, want 2", len(mails))
			}
			for _, gm := range mails {
				if b, _ := json.Marshal(gm); string(b) != string(want) {
					t.Errorf("handler's mail = %s\nwant (as the queue holds it) %s", b, want)
				}
				if gm.Raw != nil || gm.RawPath != "" {
					t.Errorf("handler's mail carries Raw/RawPath: %q %q", gm.Raw, gm.RawPath)
				}
			}
			reads := q.reads.Load()
			if cached && reads != 0 {
				t.Errorf("the runner read the mail back %d times; want 0 with the cache", reads)
			}
			if !cached && reads != 2 {
				t.Errorf("the runner read the mail back %d times; want 2 without the cache", reads)
			}
			if cached {
				waitFor(t, "the entry to go", func() bool { return cache.Len() == 0 })
			}
		})
	}
}

// TestMailCacheBounded: the cache keeps no more than its size, oldest out
// first, and never a mail too large for it; what it dropped is read from
// the queue.
func TestMailCacheBounded(t *testing.T) {
	q := newQueue(t)
	cache := deliver.NewMailCache(64 << 10) // room for a few small mails
	c := &deliver.Committer{Queue: q, Cache: cache}
	d := []route.Decision{{Rcpt: "a@example.test", Rules: []string{"r"}, Actions: []route.Action{{Kind: route.ActWebhook, Webhook: "h", Rule: "r"}}}}
	for i := range 20 {
		m := queuetest.NewMail(t, fmt.Sprintf("m%02d", i), "Subject: x\r\n\r\nHi.\r\n")
		if err := c.Commit(t.Context(), m, d); err != nil {
			t.Fatal(err)
		}
	}
	if n := cache.Len(); n == 0 || n >= 20 {
		t.Fatalf("cache holds %d of 20 mails; want some, bounded", n)
	}
	big := queuetest.NewMail(t, "big", "Subject: x\r\n\r\nHi.\r\n")
	big.RawSize = 1 << 20
	if err := c.Commit(t.Context(), big, d); err != nil {
		t.Fatal(err)
	}
	h, got := recorderMails()
	start(t, deliver.RunnerOptions{Queue: q, Cache: cache, Handlers: map[deliver.Kind]deliver.Handler{deliver.KindWebhook: h}})
	waitFor(t, "every job delivered", empty(t, q))
	seen := map[string]bool{}
	for _, m := range got() {
		seen[m.ID] = true
	}
	if len(seen) != 21 {
		t.Errorf("handler saw %d distinct mails, want 21 (the evicted ones read from the queue)", len(seen))
	}
	// The last settlement follows the last ack by a moment.
	waitFor(t, "every entry to go after its delivery", func() bool { return cache.Len() == 0 })
}

// TestMailCacheNil: a nil cache caches nothing and costs nothing.
func TestMailCacheNil(t *testing.T) {
	var c *deliver.MailCache
	if c.Len() != 0 {
		t.Fatal("nil cache has entries")
	}
	q := newQueue(t)
	cm := &deliver.Committer{Queue: q}
	m := queuetest.NewMail(t, "m1", "raw")
	d := []route.Decision{{Rcpt: "a@example.test", Rules: []string{"r"}, Actions: []route.Action{{Kind: route.ActWebhook, Webhook: "h", Rule: "r"}}}}
	if err := cm.Commit(t.Context(), m, d); err != nil {
		t.Fatal(err)
	}
	h, got := recorderMails()
	start(t, deliver.RunnerOptions{Queue: q, Handlers: map[deliver.Kind]deliver.Handler{deliver.KindWebhook: h}})
	waitFor(t, "delivered", empty(t, q))
	if ms := got(); len(ms) != 1 || !reflect.DeepEqual(ms[0].Envelope, m.Envelope) {
		t.Errorf("handler saw %+v", ms)
	}
}

// recorderMails returns a handler that delivers every job and the mails
// it was given.
func recorderMails() (deliver.Handler, func() []*inbound.Mail) {
	var mu sync.Mutex
	var got []*inbound.Mail
	h := handlerFunc(func(ctx context.Context, job *deliver.Job, mail *inbound.Mail, raw deliver.RawOpener) deliver.Outcome {
		mu.Lock()
		defer mu.Unlock()
		got = append(got, mail)
		return ok
	})
	return h, func() []*inbound.Mail {
		mu.Lock()
		defer mu.Unlock()
		return append([]*inbound.Mail(nil), got...)
	}
}

// BenchmarkMailFromQueue measures what the cache spares each attempt: the
// read and decode of a committed mail (a parsed text message) from the
// embedded queue.
func BenchmarkMailFromQueue(b *testing.B) {
	for _, size := range []int{2 << 10, 100 << 10} {
		b.Run(fmt.Sprintf("%dKB", size>>10), func(b *testing.B) {
			q, err := pebbleq.Open(b.TempDir(), pebbleq.Options{})
			if err != nil {
				b.Fatal(err)
			}
			defer q.Close()
			raw := "From: a@example.org\r\nSubject: hi\r\n\r\n" + strings.Repeat(strings.Repeat("x", 76)+"\r\n", size/78)
			m := queuetest.NewMail(b, "m1", raw)
			if m.Message, err = parse.Parse(strings.NewReader(raw), parse.Options{}); err != nil {
				b.Fatal(err)
			}
			if err := q.Commit(b.Context(), m, []*deliver.Job{queuetest.NewJob("j1", "m1", deliver.KindWebhook, time.Time{})}); err != nil {
				b.Fatal(err)
			}
			b.SetBytes(int64(len(raw)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := q.Mail(b.Context(), "m1"); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// TestMailCacheDuplicateCommitAges: a sender's retry within the dedup
// window commits nothing (its jobs are the first copy's), so no attempt
// ever settles its entry; it goes once older than MailCacheMaxAge, and a
// mail put again under the same id is kept once.
func TestMailCacheDuplicateCommitAges(t *testing.T) {
	q := newQueue(t)
	cache := deliver.NewMailCache(0)
	now := time.Now()
	deliver.SetMailCacheClock(cache, func() time.Time { return now })
	c := &deliver.Committer{Queue: q, Cache: cache}
	d := []route.Decision{{Rcpt: "a@example.test", Rules: []string{"r"}, Actions: []route.Action{{Kind: route.ActWebhook, Webhook: "h", Rule: "r"}}}}
	m1 := queuetest.NewMail(t, "m1", "Subject: x\r\n\r\nHi.\r\n")
	m1.StableID = "same-message"
	if err := c.Commit(t.Context(), m1, d); err != nil {
		t.Fatal(err)
	}
	if err := c.Commit(t.Context(), queuetest.NewRetry(t, m1, "m2"), d); err != nil {
		t.Fatal(err)
	}
	h, _ := recorderMails()
	start(t, deliver.RunnerOptions{Queue: q, Cache: cache, Handlers: map[deliver.Kind]deliver.Handler{deliver.KindWebhook: h}})
	waitFor(t, "delivered", empty(t, q))
	waitFor(t, "m1's entry to go", func() bool { return cache.Len() == 1 })
	now = now.Add(deliver.MailCacheMaxAge + time.Second)
	m3 := queuetest.NewMail(t, "m3", "Subject: y\r\n\r\nHi.\r\n")
	if err := c.Commit(t.Context(), m3, d); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "m3 delivered", empty(t, q))
	waitFor(t, "every entry to go", func() bool { return cache.Len() == 0 })
}

// TestMailCacheFailedCommit: a mail whose commit failed is not kept.
func TestMailCacheFailedCommit(t *testing.T) {
	q := newQueue(t)
	q.Close()
	cache := deliver.NewMailCache(0)
	c := &deliver.Committer{Queue: q, Cache: cache}
	d := []route.Decision{{Rcpt: "a@example.test", Rules: []string{"r"}, Actions: []route.Action{{Kind: route.ActWebhook, Webhook: "h", Rule: "r"}}}}
	if err := c.Commit(t.Context(), queuetest.NewMail(t, "m1", "raw"), d); err == nil {
		t.Fatal("commit to a closed queue succeeded")
	}
	if cache.Len() != 0 {
		t.Errorf("cache holds %d mails after a failed commit", cache.Len())
	}
}
