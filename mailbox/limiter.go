package mailbox

import (
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"time"
)

// Errors returned by the Limiter.
var (
	// ErrThrottled means too many failed logins came from the client IP or
	// for the user: the attempt is refused without checking the password.
	ErrThrottled = errors.New("mailbox: too many failed logins")
	// ErrTooManyConnections means the user has Options.MaxConnsPerUser
	// sessions open already.
	ErrTooManyConnections = errors.New("mailbox: too many connections for user")
)

// LimiterOptions configures NewLimiter. Zero fields take the defaults.
type LimiterOptions struct {
	// Window is how long failures are remembered (default 15m).
	Window time.Duration
	// FreeFailures is how many failures go without delay (default 2).
	FreeFailures int
	// BaseDelay is the delay after the first failure past FreeFailures;
	// it doubles with each further failure up to MaxDelay (defaults 1s
	// and 8s).
	BaseDelay, MaxDelay time.Duration
	// LockAfter is the number of failures in Window after which attempts
	// for the same IP or user are refused until the window passes
	// (default 10).
	LockAfter int
	// MaxConnsPerUser bounds concurrent sessions per user (default 20;
	// mail clients open several, one per watched folder).
	MaxConnsPerUser int
	// MaxEntries bounds the memory used (default 100000 keys).
	MaxEntries int
	// Now is the clock (default time.Now); tests replace it.
	Now func() time.Time
}

// Limiter throttles logins for IMAP and POP3 together: failed logins per
// client IP and per user name add a growing delay, then refuse for a
// while; and it counts sessions per user. It is safe for concurrent use.
//
// A server calls Check before verifying a password, then Failed (and waits
// the delay it returns before answering) or Succeeded; after a success it
// calls Acquire and releases when the session ends.
type Limiter struct {
	o     LimiterOptions
	mu    sync.Mutex
	fails map[string]*failures
	conns map[string]int
}

type failures struct {
	n     int
	first time.Time
}

// NewLimiter returns a Limiter.
func NewLimiter(o LimiterOptions) *Limiter {
	if o.Window <= 0 {
		o.Window = 15 * time.Minute
	}
	if o.FreeFailures <= 0 {
		o.FreeFailures = 2
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
	if o.MaxConnsPerUser <= 0 {
		o.MaxConnsPerUser = 20
	}
	if o.MaxEntries <= 0 {
		o.MaxEntries = 100000
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return &Limiter{o: o, fails: map[string]*failures{}, conns: map[string]int{}}
}

func limiterKeys(ip netip.Addr, user string) [2]string {
	return [2]string{"ip:" + ip.Unmap().String(), "user:" + user}
}

func (l *Limiter) count(key string, now time.Time) int {
	f := l.fails[key]
	if f == nil {
		return 0
	}
	if now.Sub(f.first) >= l.o.Window {
		delete(l.fails, key)
		return 0
	}
	return f.n
}

// Check returns an error wrapping ErrThrottled when login attempts for
// user from ip are refused for now.
func (l *Limiter) Check(ip netip.Addr, user string) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.o.Now()
	for _, k := range limiterKeys(ip, user) {
		if l.count(k, now) >= l.o.LockAfter {
			return fmt.Errorf("mailbox: %s: %w", k, ErrThrottled)
		}
	}
	return nil
}

// Failed records a failed login and returns how long the server should
// wait before it answers.
func (l *Limiter) Failed(ip netip.Addr, user string) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.o.Now()
	most := 0
	for _, k := range limiterKeys(ip, user) {
		n := l.count(k, now) + 1
		if n == 1 {
			if len(l.fails) >= l.o.MaxEntries {
				l.evict(now)
			}
			l.fails[k] = &failures{n: 1, first: now}
		} else {
			l.fails[k].n = n
		}
		most = max(most, n)
	}
	if most <= l.o.FreeFailures {
		return 0
	}
	d := l.o.BaseDelay
	for i := l.o.FreeFailures + 1; i < most && d < l.o.MaxDelay; i++ {
		d *= 2
	}
	return min(d, l.o.MaxDelay)
}

// evict makes room: expired entries first, then arbitrary ones, so hostile
// traffic cannot grow the map without bound.
func (l *Limiter) evict(now time.Time) {
	for k, f := range l.fails {
		if now.Sub(f.first) >= l.o.Window {
			delete(l.fails, k)
		}
	}
	for k := range l.fails {
		if len(l.fails) < l.o.MaxEntries {
			break
		}
		delete(l.fails, k)
	}
}

// Succeeded records a successful login: the user's failures are
// forgotten (the IP's are not: one good password says nothing of the
// other names tried from it).
func (l *Limiter) Succeeded(ip netip.Addr, user string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.fails, limiterKeys(ip, user)[1])
}

// Acquire counts a session for user. It returns an error wrapping
// ErrTooManyConnections when the user has too many; otherwise call
// release (once) when the session ends.
func (l *Limiter) Acquire(user string) (release func(), err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.conns[user] >= l.o.MaxConnsPerUser {
		return nil, fmt.Errorf("mailbox: %s: %w", user, ErrTooManyConnections)
	}
	l.conns[user]++
	var once sync.Once
	return func() {
		once.Do(func() {
			l.mu.Lock()
			defer l.mu.Unlock()
			if l.conns[user]--; l.conns[user] <= 0 {
				delete(l.conns, user)
			}
		})
	}, nil
}
