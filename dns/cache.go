package dns

import (
	"container/list"
	"sync"
	"time"

	miekg "github.com/miekg/dns"
)

// maxCacheTTL caps how long any answer is kept, whatever its TTL says.
const maxCacheTTL = time.Hour

// cacheKey names one question.
type cacheKey struct {
	name  string // lower-case FQDN
	qtype uint16
}

// answer is the outcome of one question after CNAME chasing: the records of
// the asked type, or NXDOMAIN. Temporary failures are never cached.
type answer struct {
	rrs      []miekg.RR
	nxdomain bool
}

type cacheEntry struct {
	key     cacheKey
	ans     answer
	expires time.Time
}

// cache is a bounded LRU of DNS answers that honours their TTLs (RFC 1035
// §3.2.1; negative answers per RFC 2308 §5).
type cache struct {
	mu  sync.Mutex
	max int
	ll  *list.List // front = most recently used
	m   map[cacheKey]*list.Element
	now func() time.Time
}

func newCache(size int) *cache {
	if size <= 0 {
		return nil
	}
	return &cache{max: size, ll: list.New(), m: make(map[cacheKey]*list.Element, size), now: time.Now}
}

func (c *cache) get(k cacheKey) (answer, bool) {
	if c == nil {
		return answer{}, false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	el, ok := c.m[k]
	if !ok {
		return answer{}, false
	}
	e := el.Value.(*cacheEntry)
	if !c.now().Before(e.expires) {
		c.ll.Remove(el)
		delete(c.m, k)
		return answer{}, false
	}
	c.ll.MoveToFront(el)
	return e.ans, true
}

func (c *cache) put(k cacheKey, a answer, ttl time.Duration) {
	if c == nil || ttl <= 0 {
		return
	}
	ttl = min(ttl, maxCacheTTL)
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.m[k]; ok {
		e := el.Value.(*cacheEntry)
		e.ans, e.expires = a, c.now().Add(ttl)
		c.ll.MoveToFront(el)
		return
	}
	c.m[k] = c.ll.PushFront(&cacheEntry{key: k, ans: a, expires: c.now().Add(ttl)})
	for c.ll.Len() > c.max {
		old := c.ll.Back()
		c.ll.Remove(old)
		delete(c.m, old.Value.(*cacheEntry).key)
	}
}

func (c *cache) len() int {
	if c == nil {
		return 0
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.ll.Len()
}
