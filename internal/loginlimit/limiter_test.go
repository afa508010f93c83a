package loginlimit

import (
	"context"
	"errors"
	"net/netip"
	"slices"
	"testing"
	"time"
)

var (
	attacker = netip.MustParseAddr("192.0.2.1")
	user     = netip.MustParseAddr("198.51.100.7")
)

func TestFailuresDelayThenLockOnlyTheFailingAddress(t *testing.T) {
	now := time.Now()
	l := New(Options{FreeFailures: 1, BaseDelay: time.Second, MaxDelay: 4 * time.Second, LockAfter: 5,
		Window: time.Minute, Now: func() time.Time { return now }})
	var delays []time.Duration
	for i := range 5 {
		if err := l.Check(attacker, "alice"); err != nil {
			t.Fatalf("Check #%d = %v", i, err)
		}
		delays = append(delays, l.Failed(attacker, "alice"))
	}
	if want := []time.Duration{0, time.Second, 2 * time.Second, 4 * time.Second, 4 * time.Second}; !slices.Equal(delays, want) {
		t.Errorf("delays = %v, want %v", delays, want)
	}
	err := l.Check(attacker, "alice")
	var te *ThrottledError
	if !errors.Is(err, ErrThrottled) || !errors.As(err, &te) || !te.Until.Equal(now.Add(time.Minute)) {
		t.Errorf("Check(attacker, alice) = %v, want ErrThrottled until the window's end", err)
	}
	// The lock is the attacker's: alice from her own address is not
	// refused, nor is another user from the attacker's address (yet).
	if err := l.Check(user, "alice"); err != nil {
		t.Errorf("Check(other address, alice) = %v, want nil", err)
	}
	if err := l.Check(attacker, "bob"); err != nil {
		t.Errorf("Check(attacker, bob) = %v, want nil below LockAfterIP", err)
	}
	now = now.Add(2 * time.Minute)
	if err := l.Check(attacker, "alice"); err != nil {
		t.Errorf("Check after the window = %v", err)
	}
}

func TestAddressLockAcrossNames(t *testing.T) {
	l := New(Options{LockAfter: 3, LockAfterIP: 6})
	for i := range 6 {
		l.Failed(attacker, string(rune('a'+i)))
	}
	if err := l.Check(attacker, "zed"); !errors.Is(err, ErrThrottled) {
		t.Errorf("Check after 6 names failed from one address = %v, want ErrThrottled", err)
	}
	if err := l.Check(user, "zed"); err != nil {
		t.Errorf("Check from another address = %v", err)
	}
}

func TestIPv6CountsBySlash64(t *testing.T) {
	l := New(Options{LockAfter: 2})
	l.Failed(netip.MustParseAddr("2001:db8:1:2::1"), "alice")
	l.Failed(netip.MustParseAddr("2001:db8:1:2:ffff::9"), "alice")
	if err := l.Check(netip.MustParseAddr("2001:db8:1:2::77"), "alice"); !errors.Is(err, ErrThrottled) {
		t.Errorf("Check from the same /64 = %v, want ErrThrottled", err)
	}
	if err := l.Check(netip.MustParseAddr("2001:db8:1:3::1"), "alice"); err != nil {
		t.Errorf("Check from another /64 = %v", err)
	}
	// IPv4-mapped IPv6 is the IPv4 address.
	l.Failed(netip.MustParseAddr("::ffff:192.0.2.1"), "bob")
	l.Failed(attacker, "bob")
	if err := l.Check(attacker, "bob"); !errors.Is(err, ErrThrottled) {
		t.Errorf("Check after mapped and plain failures = %v, want ErrThrottled", err)
	}
}

func TestSucceededForgetsTheUserNotTheAddress(t *testing.T) {
	l := New(Options{LockAfter: 2, LockAfterIP: 4})
	l.Failed(attacker, "alice")
	l.Failed(attacker, "bob")
	l.Succeeded(attacker, "alice")
	l.Failed(attacker, "alice")
	if err := l.Check(attacker, "alice"); err != nil {
		t.Errorf("Check(alice) after success and one failure = %v", err)
	}
	l.Failed(attacker, "dave")
	if err := l.Check(attacker, "carol"); !errors.Is(err, ErrThrottled) {
		t.Errorf("Check(carol) after 4 failures from the address = %v, want ErrThrottled", err)
	}
}

func TestAcquire(t *testing.T) {
	l := New(Options{MaxConnsPerUser: 2})
	r1, _ := l.Acquire("u")
	r2, _ := l.Acquire("u")
	if _, err := l.Acquire("u"); !errors.Is(err, ErrTooManyConnections) {
		t.Errorf("third Acquire = %v", err)
	}
	r1()
	r1() // idempotent
	if _, err := l.Acquire("u"); err != nil {
		t.Errorf("Acquire after release = %v", err)
	}
	r2()
}

// turn starts a Turn in a goroutine and returns a channel that delivers
// its done function once granted.
func turn(t *testing.T, l *Limiter, ip netip.Addr) chan func() {
	t.Helper()
	ch := make(chan func(), 1)
	go func() {
		done, err := l.Turn(context.Background(), ip)
		if err != nil {
			t.Errorf("Turn(%s) = %v", ip, err)
			close(ch)
			return
		}
		ch <- done
	}()
	return ch
}

func granted(ch chan func()) (func(), bool) {
	select {
	case d := <-ch:
		return d, true
	case <-time.After(50 * time.Millisecond):
		return nil, false
	}
}

// waitQueued waits until n turns wait in l's queue.
func waitQueued(t *testing.T, l *Limiter, n int) {
	t.Helper()
	for range 1000 {
		l.mu.Lock()
		q := len(l.queue)
		l.mu.Unlock()
		if q == n {
			return
		}
		time.Sleep(time.Millisecond)
	}
	t.Fatalf("queue never reached %d", n)
}

// TestTurnCleanAddressFirst: an address with failures past FreeFailures
// holds one slot at a time and leaves one free; a clean address is
// served before it.
func TestTurnCleanAddressFirst(t *testing.T) {
	l := New(Options{Slots: 2, FreeFailures: 1})
	// One failure (a typo) does not limit an address.
	l.Failed(attacker, "alice")
	d1, _ := granted(turn(t, l, attacker))
	d2, ok := granted(turn(t, l, attacker))
	if !ok {
		t.Fatal("an address with one failure (FreeFailures) cannot use a second slot")
	}
	d1()
	d2()
	l.Failed(attacker, "alice")
	a1, ok := granted(turn(t, l, attacker))
	if !ok {
		t.Fatal("first attacker turn not granted with every slot free")
	}
	// A second attempt from the failing address waits although a slot is
	// free: that slot is kept for clean addresses.
	a2 := turn(t, l, attacker)
	waitQueued(t, l, 1)
	c1, ok := granted(turn(t, l, user))
	if !ok {
		t.Fatal("clean address waits behind the attacker")
	}
	if _, ok := granted(a2); ok {
		t.Fatal("attacker got a second slot")
	}
	// Both slots are busy; the next clean attempt queues, and when the
	// attacker's turn ends it goes before the attacker's waiting one.
	c2 := turn(t, l, netip.MustParseAddr("198.51.100.8"))
	waitQueued(t, l, 2)
	a1()
	if _, ok := granted(c2); !ok {
		t.Fatal("clean address not served first when a slot freed")
	}
	c1()
	if _, ok := granted(a2); !ok {
		t.Fatal("attacker's waiting turn never granted")
	}
}

// TestTurnCleanAddressesShareSlots: an address without failures (an
// office behind NAT) may use every slot.
func TestTurnCleanAddressesShareSlots(t *testing.T) {
	l := New(Options{Slots: 3})
	for i := range 3 {
		if _, ok := granted(turn(t, l, user)); !ok {
			t.Fatalf("clean turn %d not granted", i)
		}
	}
}

func TestTurnBoundsWaiting(t *testing.T) {
	l := New(Options{Slots: 1, MaxWaiting: 2})
	d, _ := granted(turn(t, l, user))
	_ = turn(t, l, attacker)
	_ = turn(t, l, attacker)
	waitQueued(t, l, 2)
	if _, err := l.Turn(context.Background(), attacker); !errors.Is(err, ErrThrottled) {
		t.Errorf("third waiting Turn = %v, want ErrThrottled", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := l.Turn(ctx, user); !errors.Is(err, context.Canceled) {
		t.Errorf("Turn with a cancelled context = %v", err)
	}
	waitQueued(t, l, 2)
	d()
}
