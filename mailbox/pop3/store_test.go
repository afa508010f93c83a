package pop3

import (
	"context"
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/mailhook/mailhook/internal/loginlimit"
	"github.com/mailhook/mailhook/mailbox"
)

func init() {
	fixtures = append(fixtures, fixture{"store", storeEnv})
}

// storeEnv serves the real mailbox store in a temporary directory.
func storeEnv(t testing.TB) env {
	dir := t.TempDir()
	st := openStore(t, dir)
	t.Cleanup(func() {
		// The store left by the test (after any reopen) is consistent.
		if err := st.Verify(context.Background()); err != nil {
			t.Errorf("store.Verify: %v", err)
		}
		st.Close()
	})
	users, err := mailbox.NewUsers([]mailbox.User{
		{Name: alice, PasswordHash: hash(t, alicePass), Addresses: []string{"alice@example.test"}},
		{Name: bob, PasswordHash: hash(t, bobPass), Addresses: []string{"bob@example.test"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	lim := loginlimit.New(loginlimit.Options{})
	return env{
		backend: StoreBackend(st, users, lim),
		deliver: func(t testing.TB, user, raw string) {
			if _, err := st.Deliver(context.Background(), user, "", strings.NewReader(raw), time.Time{}, ""); err != nil {
				t.Fatal(err)
			}
		},
		reopen: func(t testing.TB) Backend {
			// A restart: the store closed and opened again.
			if err := st.Close(); err != nil {
				t.Fatal(err)
			}
			st = openStore(t, dir)
			return StoreBackend(st, users, loginlimit.New(loginlimit.Options{}))
		},
	}
}

func openStore(t testing.TB, dir string) *mailbox.Store {
	t.Helper()
	st, err := mailbox.Open(dir, mailbox.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// hash uses bcrypt's minimum cost to keep the tests fast.
func hash(t testing.TB, pw string) string {
	h, err := bcrypt.GenerateFromPassword([]byte(pw), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	return string(h)
}

// TestStoreConcurrentIMAPChanges covers what only the real store does: a
// message expunged (by an IMAP client) during a POP3 session, mail
// delivered during it, and logging in with an address.
func TestStoreConcurrentIMAPChanges(t *testing.T) {
	dir := t.TempDir()
	st := openStore(t, dir)
	t.Cleanup(func() {
		if err := st.Verify(context.Background()); err != nil {
			t.Errorf("store.Verify: %v", err)
		}
		st.Close()
	})
	users, err := mailbox.NewUsers([]mailbox.User{{Name: alice, PasswordHash: hash(t, alicePass), Addresses: []string{"alice@example.test"}}})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, m := range []string{msgDots, msgBareLF, msgTop} {
		if _, err := st.Deliver(ctx, alice, "", strings.NewReader(m), time.Time{}, ""); err != nil {
			t.Fatal(err)
		}
	}
	_, addr, _ := startServer(t, Options{Backend: StoreBackend(st, users, nil)})
	c := dial(t, addr)
	c.login("alice@example.test", alicePass)
	_, msgs, err := st.Messages(ctx, alice, mailbox.Inbox)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Remove(ctx, alice, mailbox.Inbox, []uint32{msgs[0].UID}); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Deliver(ctx, alice, "", strings.NewReader(msgTop), time.Time{}, ""); err != nil {
		t.Fatal(err)
	}
	// The session's view is the snapshot taken at login (RFC 1939 §5).
	if n, _ := c.stat(); n != 3 {
		t.Errorf("STAT = %d, want the 3 of the snapshot", n)
	}
	if got := c.cmd("RETR 1"); got != "-ERR message was removed by another session" {
		t.Errorf("RETR of an expunged message = %q", got)
	}
	if got := c.retr(2); got != want[1] {
		t.Errorf("RETR 2 = %q", got)
	}
	c.ok("DELE 1")
	c.ok("DELE 2")
	c.ok("QUIT")
	c.expectClosed()

	_, msgs, err = st.Messages(ctx, alice, mailbox.Inbox)
	if err != nil {
		t.Fatal(err)
	}
	if len(msgs) != 2 {
		t.Errorf("INBOX has %d messages after QUIT, want 2 (the third and the new one)", len(msgs))
	}
}

// TestStoreLimiterKeysOnTheAccount: failed logins count against the
// account however its name is spelled (login name or address, any case),
// as on the IMAP server, so that varying the spelling cannot dodge the
// per-user lock.
func TestStoreLimiterKeysOnTheAccount(t *testing.T) {
	users, err := mailbox.NewUsers([]mailbox.User{
		{Name: alice, PasswordHash: hash(t, alicePass), Addresses: []string{"alice@example.test"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	lim := loginlimit.New(loginlimit.Options{LockAfter: 3})
	l := StoreBackend(nil, users, lim).(limiterProvider).Limiter()
	ip := netip.MustParseAddr("192.0.2.1")
	for _, name := range []string{alice, "alice@example.test", "ALICE@Example.Test"} {
		l.Failed(ip, name)
	}
	if err := l.Check(ip, "Alice"); !errors.Is(err, loginlimit.ErrThrottled) {
		t.Errorf("Check after 3 failures under 3 spellings = %v, want ErrThrottled", err)
	}
	// The lock is the failing address's, not the user's everywhere.
	if err := l.Check(netip.MustParseAddr("192.0.2.9"), alice); err != nil {
		t.Errorf("Check from another address = %v, want nil", err)
	}
}
