package pop3

import (
	"context"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

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
	lim := mailbox.NewLimiter(mailbox.LimiterOptions{})
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
			return StoreBackend(st, users, mailbox.NewLimiter(mailbox.LimiterOptions{}))
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
