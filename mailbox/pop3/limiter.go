package pop3

import (
	"net/netip"
	"sync"
	"time"
)

// Limiter throttles failed logins (RFC 1939 §13 leaves password guessing to
// the server; the issue asks that failures slow down, then refuse for a
// while). The server calls Check before every login attempt, then Failed
// or Succeeded with the outcome.
type Limiter interface {
	// Check returns ErrThrottled (possibly wrapped) when attempts for user
	// from ip are refused for now.
	Check(ip netip.Addr, user string) error
	// Failed records a failed attempt and returns how long the server
	// waits before it answers.
	Failed(ip netip.Addr, user string) time.Duration
	// Succeeded records a successful login.
	Succeeded(ip netip.Addr, user string)
}

// LimiterOptions configures NewLimiter. Zero fields take the defaults.
type LimiterOptions struct {
	// Window is how long failures are remembered (default 15m).
	Window time.Duration
	// BaseDelay is the delay after the first failure; it doubles with each
	// further failure up to MaxDelay (defaults 1s and 8s).
	BaseDelay, MaxDelay time.Duration
	// LockAfter is the number of failures in Window after which attempts
	// for the same IP or user are refused until the window passes
	// (default 10).
	LockAfter int
	// MaxEntries bounds the memory used (default 100000 keys).
	MaxEntries int
	// Now is the clock (default time.Now); tests replace it.
	Now func() time.Time
}

// NewLimiter returns an in-memory Limiter that counts failures per client
// IP and per user name.
func NewLimiter(o LimiterOptions) Limiter {
	if o.Window <= 0 {
		o.Window = 15 * time.Minute
	}
	if o.BaseDelay <= 0 {
		o.BaseDelay = time.Second
	}
	if o.MaxDelay <= 0 {
		o.MaxDelay = 8 * time.Second
	}
	if o.LockAfter <= 0 {
		o.LockAfter = 10
	}
	if o.MaxEntries <= 0 {
		o.MaxEntries = 100000
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return &memLimiter{o: o, m: make(map[string]*failures)}
}

type failures struct {
	n     int
	first time.Time
}

type memLimiter struct {
	o  LimiterOptions
	mu sync.Mutex
	m  map[string]*failures
}

func limiterKeys(ip netip.Addr, user string) [2]string {
	return [2]string{"ip:" + ip.Unmap().String(), "user:" + user}
}

// count returns the live failure count for key, dropping it once expired.
func (l *memLimiter) count(key string, now time.Time) int {
	f := l.m[key]
	if f == nil {
		return 0
	}
	if now.Sub(f.first) >= l.o.Window {
		delete(l.m, key)
		return 0
	}
	return f.n
}

func (l *memLimiter) Check(ip netip.Addr, user string) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.o.Now()
	for _, k := range limiterKeys(ip, user) {
		if l.count(k, now) >= l.o.LockAfter {
			return ErrThrottled
		}
	}
	return nil
}

func (l *memLimiter) Failed(ip netip.Addr, user string) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.o.Now()
	most := 0
	for _, k := range limiterKeys(ip, user) {
		n := l.count(k, now) + 1
		if n == 1 {
			if len(l.m) >= l.o.MaxEntries {
				l.evict(now)
			}
			l.m[k] = &failures{n: 1, first: now}
		} else {
			l.m[k].n = n
		}
		most = max(most, n)
	}
	d := l.o.BaseDelay
	for i := 1; i < most && d < l.o.MaxDelay; i++ {
		d *= 2
	}
	return min(d, l.o.MaxDelay)
}

// evict makes room: expired entries first, then arbitrary ones (map order),
// so hostile traffic cannot grow the map without bound.
func (l *memLimiter) evict(now time.Time) {
	for k, f := range l.m {
		if now.Sub(f.first) >= l.o.Window {
			delete(l.m, k)
		}
	}
	for k := range l.m {
		if len(l.m) < l.o.MaxEntries {
			break
		}
		delete(l.m, k)
	}
}

func (l *memLimiter) Succeeded(ip netip.Addr, user string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	// Only the user's count is cleared: a success for one account says
	// nothing about the other names tried from the same IP.
	delete(l.m, limiterKeys(ip, user)[1])
}
