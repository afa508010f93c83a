package pop3

import (
	"errors"
	"net/netip"
	"strconv"
	"testing"
	"time"
)

func TestLimiter(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	l := NewLimiter(LimiterOptions{
		Window: time.Minute, BaseDelay: time.Second, MaxDelay: 4 * time.Second,
		LockAfter: 4, Now: func() time.Time { return now },
	})
	ip := netip.MustParseAddr("192.0.2.1")
	other := netip.MustParseAddr("192.0.2.2")

	var got []time.Duration
	for range 4 {
		if err := l.Check(ip, "alice"); err != nil {
			t.Fatalf("Check before lockout = %v", err)
		}
		got = append(got, l.Failed(ip, "alice"))
	}
	want := []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 4 * time.Second}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("Failed #%d = %v, want %v", i+1, got[i], want[i])
		}
	}
	if err := l.Check(ip, "alice"); !errors.Is(err, ErrThrottled) {
		t.Errorf("Check after 4 failures = %v, want ErrThrottled", err)
	}
	// The user is locked from any IP, and the IP for any user.
	if err := l.Check(other, "alice"); !errors.Is(err, ErrThrottled) {
		t.Errorf("Check(other ip, alice) = %v, want ErrThrottled", err)
	}
	if err := l.Check(ip, "bob"); !errors.Is(err, ErrThrottled) {
		t.Errorf("Check(ip, bob) = %v, want ErrThrottled", err)
	}
	if err := l.Check(other, "bob"); err != nil {
		t.Errorf("Check(other ip, bob) = %v, want nil", err)
	}
	now = now.Add(time.Minute)
	if err := l.Check(ip, "alice"); err != nil {
		t.Errorf("Check after the window = %v, want nil", err)
	}

	// A success clears the user's count but not the IP's.
	for range 3 {
		l.Failed(ip, "carol")
	}
	l.Succeeded(ip, "carol")
	if d := l.Failed(other, "carol"); d != time.Second {
		t.Errorf("Failed after a success = %v, want the base delay", d)
	}
	if d := l.Failed(ip, "dave"); d != 4*time.Second {
		t.Errorf("Failed from an IP with 3 failures = %v, want 4s", d)
	}
}

func TestLimiterBounded(t *testing.T) {
	l := NewLimiter(LimiterOptions{MaxEntries: 100}).(*memLimiter)
	ip := netip.MustParseAddr("2001:db8::1")
	for i := range 10000 {
		l.Failed(ip, "user"+strconv.Itoa(i))
	}
	if n := len(l.m); n > 100 {
		t.Errorf("limiter holds %d keys, want at most 100", n)
	}
}
