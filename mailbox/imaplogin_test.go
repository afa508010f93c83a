package mailbox

import (
	"net"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/mailhook/mailhook/internal/loginlimit"
	"github.com/mailhook/mailhook/internal/loginlimit/loginlimittest"
	"golang.org/x/crypto/bcrypt"
)

// dialFrom connects an IMAP client from the local address ip.
func (e *imapEnv) dialFrom(t testing.TB, ip net.IP) *imapclient.Client {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: ip}}
	conn, err := d.Dial("tcp", e.addr)
	if err != nil {
		t.Fatalf("dial from %s: %v", ip, err)
	}
	c := imapclient.New(conn, nil)
	t.Cleanup(func() { c.Close() })
	return c
}

// TestIMAPAttackerCannotLockOutUser: failures for alice from one address
// lock that address out (refused without a password check: the attacker
// is slowed), not alice, who logs in from her own address at once.
func TestIMAPAttackerCannotLockOutUser(t *testing.T) {
	var checked atomic.Int64
	e := newIMAPEnv(t, func(o *IMAPOptions) { o.OnFailedLogin = func() { checked.Add(1) } })
	c := e.dialFrom(t, loginlimittest.AttackerIP)
	refused := 0
	for i := range 20 {
		err := c.Login("alice", "guess").Wait()
		switch {
		case isCode(err, imap.ResponseCodeUnavailable):
			refused++
		case !isCode(err, imap.ResponseCodeAuthenticationFailed):
			t.Fatalf("guess %d = %v, want AUTHENTICATIONFAILED or UNAVAILABLE", i, err)
		}
	}
	// newIMAPEnv's limiter locks after 4 failures: 4 guesses were
	// checked, 16 refused unchecked.
	if refused != 16 || checked.Load() != 4 {
		t.Errorf("attacker: %d refused, %d checked; want 16 refused, 4 checked", refused, checked.Load())
	}
	// The lock is the attacker's address's, even for the right password.
	if err := c.Login("alice", "secret").Wait(); !isCode(err, imap.ResponseCodeUnavailable) {
		t.Errorf("right password from the attacker's address = %v, want UNAVAILABLE", err)
	}
	// Alice, from an address that has not failed, gets in.
	u := e.dialFrom(t, loginlimittest.UserIP)
	if err := u.Login("alice", "secret").Wait(); err != nil {
		t.Fatalf("alice from a clean address: LOGIN = %v, want OK", err)
	}
	if err := u.Logout().Wait(); err != nil {
		t.Fatal(err)
	}
}

// TestIMAPBadLoginFloodDoesNotQueueAGoodOne: 40 connections guess
// passwords in parallel from one address, keeping every hash slot wanted;
// a right password from another address is checked after at most the
// hashes already running, not behind the attacker's queue. Measured in
// hashes (failed checks counted while the good login is in progress),
// not in time.
func TestIMAPBadLoginFloodDoesNotQueueAGoodOne(t *testing.T) {
	const slots = 2
	var checked atomic.Int64
	e := newIMAPEnv(t, func(o *IMAPOptions) {
		h, err := bcrypt.GenerateFromPassword([]byte("secret"), loginlimittest.FloodCost())
		if err != nil {
			t.Fatal(err)
		}
		users, err := NewUsers([]User{{Name: "alice", PasswordHash: string(h)}})
		if err != nil {
			t.Fatal(err)
		}
		o.Users = users
		// No fsync: what follows the check (EnsureUser) takes no time
		// in which the attacker's hashes would be counted.
		o.Store = openStore(t, Options{noSync: true})
		o.OnFailedLogin = func() { checked.Add(1) }
		o.Logger = nil
		o.Limiter = loginlimit.New(loginlimit.Options{Slots: slots, LockAfter: 1 << 20, MaxWaiting: 64,
			BaseDelay: 1, MaxDelay: 1})
	})
	const attackers = 40
	var stop atomic.Bool
	var wg sync.WaitGroup
	ready := make(chan struct{}, attackers)
	for range attackers {
		c := e.dialFrom(t, loginlimittest.AttackerIP)
		wg.Add(1)
		go func() {
			defer wg.Done()
			ready <- struct{}{}
			for !stop.Load() {
				if err := c.Login("alice", "guess").Wait(); !isCode(err, imap.ResponseCodeAuthenticationFailed) {
					t.Errorf("guess = %v, want AUTHENTICATIONFAILED", err)
					return
				}
			}
		}()
	}
	for range attackers {
		<-ready
	}
	// Let the flood build up: every attacker connection has sent its
	// LOGIN once a few guesses have been checked one after another.
	for checked.Load() < 2*slots {
		if t.Failed() {
			return
		}
		u := e.dialFrom(t, loginlimittest.AttackerIP) // a round trip, as a pause
		u.Close()
	}
	u := e.dialFrom(t, loginlimittest.UserIP)
	before := checked.Load()
	if err := u.Login("alice", "secret").Wait(); err != nil {
		t.Fatalf("good login during the flood = %v", err)
	}
	during := checked.Load() - before
	stop.Store(true)
	wg.Wait()
	loginlimittest.CheckNotQueued(t, during, attackers)
}
