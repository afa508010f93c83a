// Package loginlimit throttles password and token guessing for every
// listener that checks a secret: IMAP, POP3 and the admin API and
// dashboard.
//
// The rule is that a lockout must not be something an attacker can turn
// against a user. Failures are counted per client address and per (user,
// client address), never per user alone: an attacker who fails a
// thousand times for "alice" slows down and then locks out himself (his
// address), while alice, logging in from an address that has not failed,
// gets in at once. The price is that an attacker spread over many
// addresses gets LockAfter guesses per user from each of them per Window;
// a per-user lock would stop him sooner, but it would also lock alice out
// of her mailbox whenever anyone on the Internet wished it.
//
// IPv6 clients are counted by their /64 (RFC 4291 §2.5.4: one subnet, and
// what a single host can usually pick its address from), IPv4 clients by
// their address.
//
// Password hashes (bcrypt, argon2id) are deliberately expensive, so the
// Limiter also schedules them (Turn): a bounded number run at once, an
// address with more than FreeFailures failures holds at most one of them,
// and such addresses together hold all but one, so a client from a clean
// address waits for at most one hash in progress, not behind an
// attacker's queue. (An office behind one NAT where someone mistyped a
// password once keeps using every slot.)
package loginlimit

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"runtime"
	"sync"
	"time"
)

// Errors returned by the Limiter.
var (
	// ErrThrottled means too many failed logins came from the client's
	// address, or for the user from that address: the attempt is refused
	// without checking the secret.
	ErrThrottled = errors.New("loginlimit: too many failed logins")
	// ErrTooManyConnections means the user has Options.MaxConnsPerUser
	// sessions open already.
	ErrTooManyConnections = errors.New("loginlimit: too many connections for user")
)

// Options configures New. Zero fields take the defaults.
type Options struct {
	// Window is how long failures are remembered (default 15m).
	Window time.Duration
	// FreeFailures is how many failures go without delay (default 2).
	FreeFailures int
	// BaseDelay is the delay after the first failure past FreeFailures;
	// it doubles with each further failure up to MaxDelay (defaults 1s
	// and 8s). Only failed attempts are delayed.
	BaseDelay, MaxDelay time.Duration
	// LockAfter is the number of failures for one user from one address
	// in Window after which that user's attempts from that address are
	// refused until the window passes (default 10).
	LockAfter int
	// LockAfterIP is the number of failures from one address, whatever
	// the user names, after which every attempt from it is refused
	// (default 5*LockAfter: an office behind one NAT mistypes too).
	LockAfterIP int
	// MaxConnsPerUser bounds concurrent sessions per user (default 20;
	// mail clients open several, one per watched folder).
	MaxConnsPerUser int
	// Slots is how many secrets Turn lets be checked at once (default
	// the number of CPUs, at least 2).
	Slots int
	// MaxWaiting bounds the attempts from one address waiting for a Turn;
	// more are refused with ErrThrottled (default 8).
	MaxWaiting int
	// MaxEntries bounds the memory used (default 100000 keys).
	MaxEntries int
	// Now is the clock (default time.Now); tests replace it.
	Now func() time.Time
}

// Limiter throttles logins: failed logins per client address and per
// (user, address) add a growing delay, then refuse for a while; it
// schedules the expensive checks fairly (Turn) and counts sessions per
// user (Acquire). It is safe for concurrent use.
//
// A server calls Check before verifying a password, Turn around the
// verification, then Failed (and waits the delay it returns before
// answering) or Succeeded; after a success it may call Acquire and
// release when the session ends. A server whose check is cheap (the admin
// token) verifies first and asks Check only to choose how to refuse a
// wrong secret, so that a right one is never refused.
type Limiter struct {
	o     Options
	mu    sync.Mutex
	fails map[string]*failures
	conns map[string]int

	// Turn's state.
	inUse, dirtyInUse int
	busy              map[string]int // slots held per address key
	waiting           map[string]int // waiters per address key
	queue             []*waiter
	seq               uint64
}

type failures struct {
	n     int
	first time.Time
}

type waiter struct {
	key     string
	seq     uint64
	ready   chan struct{}
	granted bool
	dirty   bool // past FreeFailures: counted in dirtyInUse once granted
}

// New returns a Limiter.
func New(o Options) *Limiter {
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
	if o.LockAfterIP <= 0 {
		o.LockAfterIP = 5 * o.LockAfter
	}
	if o.MaxConnsPerUser <= 0 {
		o.MaxConnsPerUser = 20
	}
	if o.Slots <= 0 {
		o.Slots = max(2, runtime.GOMAXPROCS(0))
	}
	if o.MaxWaiting <= 0 {
		o.MaxWaiting = 8
	}
	if o.MaxEntries <= 0 {
		o.MaxEntries = 100000
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return &Limiter{o: o, fails: map[string]*failures{}, conns: map[string]int{},
		busy: map[string]int{}, waiting: map[string]int{}}
}

// addrKey is the key of a client address: the address for IPv4, the /64
// for IPv6.
func addrKey(ip netip.Addr) string {
	ip = ip.Unmap().WithZone("")
	if ip.Is6() {
		p, _ := ip.Prefix(64)
		return "ip:" + p.String()
	}
	return "ip:" + ip.String()
}

// keys returns the address key and the (user, address) key.
func keys(ip netip.Addr, user string) (addr, userAddr string) {
	a := addrKey(ip)
	return a, "user:" + user + "\x00" + a
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

// ThrottledError is the error of Check: attempts are refused until Until.
// It matches ErrThrottled with errors.Is.
type ThrottledError struct {
	// What is locked: the address, or the user from the address.
	What  string
	Until time.Time
}

func (e *ThrottledError) Error() string {
	return fmt.Sprintf("loginlimit: %s: too many failed logins, refused until %s", e.What, e.Until.Format(time.RFC3339))
}

// Is makes errors.Is(err, ErrThrottled) true.
func (e *ThrottledError) Is(target error) bool { return target == ErrThrottled }

// Check returns a *ThrottledError when login attempts for user from ip
// are refused for now.
func (l *Limiter) Check(ip netip.Addr, user string) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.o.Now()
	a, ua := keys(ip, user)
	if l.count(a, now) >= l.o.LockAfterIP {
		return &ThrottledError{What: "address " + ip.String(), Until: l.fails[a].first.Add(l.o.Window)}
	}
	if l.count(ua, now) >= l.o.LockAfter {
		return &ThrottledError{What: fmt.Sprintf("user %q from %s", user, ip), Until: l.fails[ua].first.Add(l.o.Window)}
	}
	return nil
}

// Failed records a failed login and returns how long the server should
// wait before it answers.
func (l *Limiter) Failed(ip netip.Addr, user string) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.o.Now()
	a, ua := keys(ip, user)
	most := 0
	for _, k := range [2]string{a, ua} {
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

// Succeeded records a successful login: the user's failures from ip are
// forgotten (the address's are not: one good password says nothing of the
// other names tried from it).
func (l *Limiter) Succeeded(ip netip.Addr, user string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	_, ua := keys(ip, user)
	delete(l.fails, ua)
}

// Turn waits until a secret from ip may be checked and returns the
// function that ends the turn (call it once the check is done, before
// waiting any delay). Addresses with fewer failures go first; an address
// with more than FreeFailures checks one secret at a time, and such
// addresses together leave one slot free for the others. It returns an error wrapping
// ErrThrottled when too many attempts from ip are waiting already, or
// ctx's error.
func (l *Limiter) Turn(ctx context.Context, ip netip.Addr) (done func(), err error) {
	key := addrKey(ip)
	l.mu.Lock()
	if l.waiting[key] >= l.o.MaxWaiting {
		l.mu.Unlock()
		return nil, fmt.Errorf("loginlimit: %d attempts from %s waiting: %w", l.o.MaxWaiting, ip, ErrThrottled)
	}
	l.seq++
	w := &waiter{key: key, seq: l.seq, ready: make(chan struct{})}
	l.waiting[key]++
	l.queue = append(l.queue, w)
	l.dispatch()
	l.mu.Unlock()

	select {
	case <-w.ready:
	case <-ctx.Done():
		l.mu.Lock()
		if !w.granted {
			l.remove(w)
			l.mu.Unlock()
			return nil, ctx.Err()
		}
		l.mu.Unlock()
	}
	var once sync.Once
	return func() { once.Do(func() { l.endTurn(w) }) }, nil
}

// dispatch grants free slots to the best eligible waiters. l.mu is held.
func (l *Limiter) dispatch() {
	now := l.o.Now()
	dirtyMax := max(1, l.o.Slots-1)
	for l.inUse < l.o.Slots {
		best, bestFails := -1, 0
		for i, w := range l.queue {
			n := l.count(w.key, now)
			if n > l.o.FreeFailures && (l.busy[w.key] > 0 || l.dirtyInUse >= dirtyMax) {
				continue
			}
			if best < 0 || n < bestFails || (n == bestFails && w.seq < l.queue[best].seq) {
				best, bestFails = i, n
			}
		}
		if best < 0 {
			return
		}
		w := l.queue[best]
		l.queue = append(l.queue[:best], l.queue[best+1:]...)
		l.waiting[w.key]--
		if l.waiting[w.key] <= 0 {
			delete(l.waiting, w.key)
		}
		w.granted, w.dirty = true, bestFails > l.o.FreeFailures
		l.inUse++
		l.busy[w.key]++
		if w.dirty {
			l.dirtyInUse++
		}
		close(w.ready)
	}
}

// remove takes a waiter that gave up out of the queue. l.mu is held.
func (l *Limiter) remove(w *waiter) {
	for i, q := range l.queue {
		if q == w {
			l.queue = append(l.queue[:i], l.queue[i+1:]...)
			break
		}
	}
	if l.waiting[w.key]--; l.waiting[w.key] <= 0 {
		delete(l.waiting, w.key)
	}
}

func (l *Limiter) endTurn(w *waiter) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.inUse--
	if l.busy[w.key]--; l.busy[w.key] <= 0 {
		delete(l.busy, w.key)
	}
	if w.dirty {
		l.dirtyInUse--
	}
	l.dispatch()
}

// Acquire counts a session for user. It returns an error wrapping
// ErrTooManyConnections when the user has too many; otherwise call
// release (once) when the session ends.
func (l *Limiter) Acquire(user string) (release func(), err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.conns[user] >= l.o.MaxConnsPerUser {
		return nil, fmt.Errorf("loginlimit: %s: %w", user, ErrTooManyConnections)
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
