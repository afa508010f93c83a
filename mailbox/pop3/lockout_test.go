package pop3

import (
	"bufio"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/mailhook/mailhook/internal/loginlimit"
	"github.com/mailhook/mailhook/internal/loginlimit/loginlimittest"
	"github.com/mailhook/mailhook/mailbox"
)

// dialFrom connects a raw POP3 client from the local address ip.
func dialFrom(t testing.TB, addr string, ip net.IP) *client {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: ip}}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatalf("dial from %s: %v", ip, err)
	}
	t.Cleanup(func() { c.Close() })
	cl := newClient(t, c)
	if cl.greeting = cl.line(); !strings.HasPrefix(cl.greeting, "+OK") {
		t.Fatalf("greeting = %q", cl.greeting)
	}
	return cl
}

// lockoutServer serves the real store with alice's password hashed at
// cost and the given limiter; checked counts the passwords found wrong.
func lockoutServer(t *testing.T, cost int, lim *loginlimit.Limiter, checked *atomic.Int64) string {
	t.Helper()
	h, err := bcrypt.GenerateFromPassword([]byte(alicePass), cost)
	if err != nil {
		t.Fatal(err)
	}
	users, err := mailbox.NewUsers([]mailbox.User{{Name: alice, PasswordHash: string(h), Addresses: []string{"alice@example.test"}}})
	if err != nil {
		t.Fatal(err)
	}
	st := openStore(t, t.TempDir())
	t.Cleanup(func() { st.Close() })
	_, addr, _ := startServer(t, Options{Backend: StoreBackend(st, users, lim), Hostname: "mx.example.test",
		OnFailedLogin: func() { checked.Add(1) }})
	return addr
}

// guess makes one login attempt on a new connection and returns the
// answer to PASS.
func guess(t testing.TB, addr string, ip net.IP, user, pass string) string {
	c := dialFrom(t, addr, ip)
	defer c.conn.Close()
	c.ok("USER " + user)
	return c.cmd("PASS " + pass)
}

// rawGuess logs in as alice with a wrong password from ip on a new
// connection and returns the answer to PASS; it reports errors rather
// than failing the test, for the attacker goroutines.
func rawGuess(addr string, ip net.IP) (string, error) {
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: ip}}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		return "", err
	}
	defer c.Close()
	// Generous: under the race detector a queue of 40 hashes is slow.
	c.SetDeadline(time.Now().Add(2 * time.Minute))
	r := bufio.NewReader(c)
	var last string
	for _, cmd := range []string{"", "USER " + alice, "PASS guess"} {
		if cmd != "" {
			if _, err := io.WriteString(c, cmd+"\r\n"); err != nil {
				return "", err
			}
		}
		if last, err = r.ReadString('\n'); err != nil {
			return last, err
		}
	}
	return strings.TrimSpace(last), nil
}

// TestAttackerCannotLockOutUser: failures for alice from one address lock
// that address out (refused before any password check: the attacker is
// slowed), not alice, who logs in from her own address at once.
func TestAttackerCannotLockOutUser(t *testing.T) {
	var checked atomic.Int64
	addr := lockoutServer(t, bcrypt.MinCost, loginlimit.New(loginlimit.Options{LockAfter: 4, BaseDelay: 1, MaxDelay: 1}), &checked)
	refused := 0
	for i := range 20 {
		got := guess(t, addr, loginlimittest.AttackerIP, alice, "guess")
		switch {
		case strings.HasPrefix(got, "-ERR [SYS/TEMP]"):
			refused++
		case !strings.HasPrefix(got, "-ERR [AUTH]"):
			t.Fatalf("guess %d: PASS = %q", i, got)
		}
	}
	// The server calls OnFailedLogin for refusals too: the refusals are
	// the attempts past LockAfter, answered without a password check.
	if refused != 16 || checked.Load() != 20 {
		t.Errorf("attacker: %d refused of %d failed; want 16 of 20", refused, checked.Load())
	}
	if got := guess(t, addr, loginlimittest.AttackerIP, alice, alicePass); !strings.HasPrefix(got, "-ERR [SYS/TEMP]") {
		t.Errorf("right password from the attacker's address: PASS = %q, want -ERR [SYS/TEMP]", got)
	}
	c := dialFrom(t, addr, loginlimittest.UserIP)
	c.ok("USER " + alice)
	c.ok("PASS " + alicePass)
	c.ok("QUIT")
}

// TestBadLoginFloodDoesNotQueueAGoodOne: 40 connections guess in parallel
// from one address; a right password from another address is checked
// after at most the hashes already running, not behind the attacker's
// queue. Measured in passwords checked meanwhile, not in time.
func TestBadLoginFloodDoesNotQueueAGoodOne(t *testing.T) {
	const slots, attackers = 2, 40
	var checked atomic.Int64
	addr := lockoutServer(t, loginlimittest.FloodCost(), loginlimit.New(loginlimit.Options{Slots: slots, LockAfter: 1 << 20, LockAfterIP: 1 << 20,
		MaxWaiting: 64, BaseDelay: 1, MaxDelay: 1}), &checked)
	var stop atomic.Bool
	var wg sync.WaitGroup
	for range attackers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stop.Load() {
				if got, err := rawGuess(addr, loginlimittest.AttackerIP); err != nil || !strings.HasPrefix(got, "-ERR [AUTH]") {
					t.Errorf("guess: PASS = %q, %v", got, err)
					return
				}
			}
		}()
	}
	for checked.Load() < 2*slots && !t.Failed() {
		dialFrom(t, addr, loginlimittest.AttackerIP).conn.Close() // a round trip, as a pause
	}
	c := dialFrom(t, addr, loginlimittest.UserIP)
	c.conn.SetDeadline(time.Now().Add(2 * time.Minute))
	c.ok("USER " + alice)
	before := checked.Load()
	c.ok("PASS " + alicePass)
	during := checked.Load() - before
	stop.Store(true)
	wg.Wait()
	loginlimittest.CheckNotQueued(t, during, attackers)
}
