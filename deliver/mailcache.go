package deliver

import (
	"sync"

	"github.com/mailhook/mailhook/inbound"
)

// DefaultMailCacheBytes bounds a MailCache made with a size <= 0.
const DefaultMailCacheBytes = 32 << 20

// MailCache holds the mails this node just committed, so that the Runner's
// attempts of their jobs here do not read and decode them back from the
// queue (for a 100 KB message that decode is a tenth of the node's CPU).
// The queue stays the truth: a mail not in the cache (evicted, committed by
// another node, or after a restart) is read from it, and the cache holds
// each mail exactly as Queue.Mail would return it (without Raw and
// RawPath, which are not part of the stored mail). It is bounded by an
// estimate of the mails' size in memory, oldest out first; an entry goes
// when each of its jobs was delivered or dead-lettered here. A nil
// *MailCache caches nothing. Mails in it are read-only.
type MailCache struct {
	mu    sync.Mutex
	max   int64
	size  int64
	byID  map[string]*cacheEntry
	order []string // ids oldest first; an id may stay after its entry went
}

type cacheEntry struct {
	mail *inbound.Mail
	size int64
	jobs int // jobs not yet settled for good
}

// NewMailCache returns a cache of at most maxBytes (estimated);
// DefaultMailCacheBytes when maxBytes <= 0.
func NewMailCache(maxBytes int64) *MailCache {
	if maxBytes <= 0 {
		maxBytes = DefaultMailCacheBytes
	}
	return &MailCache{max: maxBytes, byID: map[string]*cacheEntry{}}
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
	e := &cacheEntry{mail: &stored, size: mailSize(m), jobs: jobs}
	if e.size > c.max/4 {
		return // one mail would push out too many others
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if old, ok := c.byID[m.ID]; ok {
		c.size -= old.size
	}
	c.byID[m.ID] = e
	c.order = append(c.order, m.ID)
	c.size += e.size
	for c.size > c.max && len(c.order) > 0 {
		id := c.order[0]
		c.order = c.order[1:]
		if old, ok := c.byID[id]; ok {
			delete(c.byID, id)
			c.size -= old.size
		}
	}
	if len(c.order) > 2*len(c.byID)+64 {
		// Drop the ids of entries that went by settlement.
		live := c.order[:0]
		for _, id := range c.order {
			if _, ok := c.byID[id]; ok {
				live = append(live, id)
			}
		}
		c.order = live
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
			delete(c.byID, msgID)
			c.size -= e.size
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
