package deliver

import (
	"sync"
	"time"

	"github.com/mailhook/mailhook/inbound"
)

// DefaultMailCacheBytes bounds a MailCache made with a size <= 0.
const DefaultMailCacheBytes = 32 << 20

// MailCacheMaxAge is how long a MailCache keeps a mail: the first attempts
// of a mail's jobs come right after its commit, so a mail not settled by
// then (its jobs taken by another node or dropped, a retry put off, a
// commit that was a sender's duplicate and made no job) is left to the
// queue.
const MailCacheMaxAge = time.Minute

// MailCache holds the mails this node just committed, so that the Runner's
// attempts of their jobs here do not read and decode them back from the
// queue (for a 100 KB message that decode is a tenth of the node's CPU).
// The queue stays the truth: a mail not in the cache (evicted, committed by
// another node, or after a restart) is read from it, and the cache holds
// each mail exactly as Queue.Mail would return it (without Raw and
// RawPath, which are not part of the stored mail). An entry goes when each
// of its jobs was delivered or dead-lettered here, or, oldest first, when
// the cache is over its size (an estimate of the mails' size in memory) or
// the entry older than MailCacheMaxAge. A nil *MailCache caches nothing.
// Mails in it are read-only.
type MailCache struct {
	mu    sync.Mutex
	max   int64
	size  int64
	byID  map[string]*cacheEntry
	order []*cacheEntry // oldest first; an entry may stay after it went from byID
	now   func() time.Time
}

type cacheEntry struct {
	id   string
	mail *inbound.Mail
	size int64
	at   time.Time
	jobs int // jobs not yet settled for good
}

// NewMailCache returns a cache of at most maxBytes (estimated);
// DefaultMailCacheBytes when maxBytes <= 0.
func NewMailCache(maxBytes int64) *MailCache {
	if maxBytes <= 0 {
		maxBytes = DefaultMailCacheBytes
	}
	return &MailCache{max: maxBytes, byID: map[string]*cacheEntry{}, now: time.Now}
}

// mailSize estimates what m holds in memory: its parsed text and HTML
// bodies and inline attachments are at most about twice the raw message.
func mailSize(m *inbound.Mail) int64 { return 2*m.RawSize + 4096 }

// put keeps m, committed with jobs jobs.
func (c *MailCache) put(m *inbound.Mail, jobs int) {
	if c == nil || m == nil || jobs <= 0 {
		return
	}
	stored := *m
	stored.Raw, stored.RawPath = nil, ""
	e := &cacheEntry{id: m.ID, mail: &stored, size: mailSize(m), jobs: jobs}
	if e.size > c.max/4 {
		return // one mail would push out too many others
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	e.at = c.now()
	c.drop(m.ID)
	c.byID[m.ID] = e
	c.order = append(c.order, e)
	c.size += e.size
	for len(c.order) > 0 && (c.size > c.max || e.at.Sub(c.order[0].at) > MailCacheMaxAge) {
		c.drop(c.order[0].id)
		c.order = c.order[1:]
	}
	if len(c.order) > 2*len(c.byID)+64 {
		// Forget the places of entries that went by settlement.
		live := c.order[:0]
		for _, o := range c.order {
			if c.byID[o.id] == o {
				live = append(live, o)
			}
		}
		clear(c.order[len(live):])
		c.order = live
	}
}

// forget removes the mail committed as msgID (its commit failed).
func (c *MailCache) forget(msgID string) {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.drop(msgID)
}

// drop removes id's entry, if any. c.mu is held.
func (c *MailCache) drop(id string) {
	if e, ok := c.byID[id]; ok {
		delete(c.byID, id)
		c.size -= e.size
	}
}

// get returns the mail committed as msgID, or nil.
func (c *MailCache) get(msgID string) *inbound.Mail {
	if c == nil {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.byID[msgID]; ok {
		return e.mail
	}
	return nil
}

// settled notes that one job of msgID is done with for good (delivered or
// dead-lettered); the mail goes when all of them are.
func (c *MailCache) settled(msgID string) {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.byID[msgID]; ok {
		if e.jobs--; e.jobs <= 0 {
			c.drop(msgID)
		}
	}
}

// Len returns how many mails the cache holds.
func (c *MailCache) Len() int {
	if c == nil {
		return 0
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.byID)
}
