package replyaddr

import (
	"errors"
	"strings"
	"testing"
	"time"
)

const (
	oldSecret = "old-secret-0123456789abcdef"
	newSecret = "new-secret-0123456789abcdef"
)

func signer(t *testing.T, now *time.Time, secrets ...string) *Signer {
	t.Helper()
	s, err := New(Options{Secrets: secrets, Domain: "Reply.Example.TEST.", Now: func() time.Time { return *now }})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestMintVerify(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	s := signer(t, &now, oldSecret)
	m, err := s.Mint("ticket-4711", 0)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(m.Address, "reply+ticket-4711.") || !strings.HasSuffix(m.Address, "@reply.example.test") || !m.ExpiresAt.IsZero() {
		t.Fatalf("Mint = %+v", m)
	}
	withTTL, err := s.Mint("ticket-4711", 30*24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if want := now.Add(30 * 24 * time.Hour); !withTTL.ExpiresAt.Equal(want) {
		t.Fatalf("ExpiresAt = %s, want %s", withTTL.ExpiresAt, want)
	}
	swap := func(a, old, repl string) string { return strings.Replace(a, old, repl, 1) }
	local := m.Address[:strings.IndexByte(m.Address, '@')]
	tok := local[strings.LastIndexByte(local, '.')+1:]
	flipped := []byte(tok)
	if flipped[len(flipped)-1] == 'a' {
		flipped[len(flipped)-1] = 'b'
	} else {
		flipped[len(flipped)-1] = 'a'
	}

	cases := []struct {
		name   string
		addr   string
		at     time.Time
		want   Result
		isRepl bool
	}{
		{"valid", m.Address, now, Result{Thread: "ticket-4711", Valid: true}, true},
		{"upper-cased by an MTA", strings.ToUpper(m.Address), now, Result{Thread: "TICKET-4711", Valid: true}, true},
		{"valid ttl", withTTL.Address, now.Add(29 * 24 * time.Hour), Result{Thread: "ticket-4711", Valid: true}, true},
		{"expired", withTTL.Address, now.Add(31 * 24 * time.Hour), Result{Thread: "ticket-4711", Expired: true}, true},
		{"tampered thread", swap(m.Address, "4711", "4712"), now, Result{}, true},
		{"tampered token", swap(m.Address, tok, string(flipped)), now, Result{}, true},
		{"wrong domain", swap(m.Address, "@reply.example.test", "@example.test"), now, Result{}, true},
		{"no token", "reply+ticket-4711@reply.example.test", now, Result{}, true},
		{"short token", "reply+ticket-4711.abc@reply.example.test", now, Result{}, true},
		{"plus address", "support+billing@example.test", now, Result{}, false},
		{"plain", "reply@example.test", now, Result{}, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			now = c.at
			got, ok := s.Verify(c.addr)
			if got != c.want || ok != c.isRepl {
				t.Fatalf("Verify(%q) = %+v, %v; want %+v, %v", c.addr, got, ok, c.want, c.isRepl)
			}
		})
	}
}

func TestRotation(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	old := signer(t, &now, oldSecret)
	m, err := old.Mint("t1", 0)
	if err != nil {
		t.Fatal(err)
	}
	rotated := signer(t, &now, newSecret, oldSecret)
	if r, _ := rotated.Verify(m.Address); !r.Valid {
		t.Fatalf("address of the old secret after rotation: %+v, want valid", r)
	}
	fresh, err := rotated.Mint("t1", 0)
	if err != nil {
		t.Fatal(err)
	}
	if fresh.Address == m.Address {
		t.Fatal("the rotated signer signs with the old secret")
	}
	if r, _ := old.Verify(fresh.Address); r.Valid {
		t.Fatal("the new secret's address verifies under the old secret alone")
	}
	dropped := signer(t, &now, newSecret)
	if r, _ := dropped.Verify(m.Address); r.Valid {
		t.Fatal("old address still valid after the old secret was dropped")
	}
}

func TestMintErrors(t *testing.T) {
	now := time.Now()
	s := signer(t, &now, oldSecret)
	for _, th := range []string{"", "a b", "a@b", ".a", "a..b", "a+b", strings.Repeat("x", 40)} {
		if _, err := s.Mint(th, 0); err == nil {
			t.Errorf("Mint(%q) = nil error", th)
		}
	}
	if _, err := s.Mint(strings.Repeat("x", 37), 0); err != nil {
		t.Errorf("Mint of a 37-byte thread (a UUID is 36): %v", err)
	}
	if _, err := New(Options{Secrets: []string{"short"}}); err == nil {
		t.Error("New with a short secret: nil error")
	}
	if _, err := New(Options{}); !errors.Is(err, ErrNoSecret) {
		t.Errorf("New without secrets = %v, want ErrNoSecret", err)
	}
}

func TestParseTTL(t *testing.T) {
	for in, want := range map[string]time.Duration{"30d": 30 * 24 * time.Hour, "2w": 14 * 24 * time.Hour, "90m": 90 * time.Minute, "": 0, "never": -1} {
		if got, err := ParseTTL(in); err != nil || got != want {
			t.Errorf("ParseTTL(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"x", "-1h", "0d", "1.5d"} {
		if _, err := ParseTTL(in); err == nil {
			t.Errorf("ParseTTL(%q) = nil error", in)
		}
	}
}

// FuzzVerify: Verify never panics, never calls a mangled address valid
// unless it is the minted one up to case, and Mint then Verify round-trips.
func FuzzVerify(f *testing.F) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	s, err := New(Options{Secrets: []string{newSecret, oldSecret}, Domain: "example.test", Now: func() time.Time { return now }})
	if err != nil {
		f.Fatal(err)
	}
	m, _ := s.Mint("seed", time.Hour)
	for _, seed := range []string{m.Address, "reply+x.aaaaaaaaaaaaaaaaaaaa@example.test", "reply+@", "reply+.@", "@", "", "REPLY+a.b@c"} {
		f.Add(seed, "t-1")
	}
	f.Fuzz(func(t *testing.T, addr, thread string) {
		r, ok := s.Verify(addr)
		if r.Valid && (!ok || r.Expired) {
			t.Fatalf("Verify(%q) = %+v, %v", addr, r, ok)
		}
		if r.Valid && !strings.EqualFold(addr, m.Address) {
			mm, err := s.Mint(r.Thread, time.Hour)
			if err != nil || !strings.EqualFold(addr[:strings.LastIndexByte(addr, '@')], mm.Address[:strings.LastIndexByte(mm.Address, '@')]) {
				t.Fatalf("Verify(%q) valid for thread %q, which mints %q", addr, r.Thread, mm.Address)
			}
		}
		if got, err := s.Mint(thread, time.Hour); err == nil {
			if r, ok := s.Verify(got.Address); !ok || !r.Valid || r.Thread != thread {
				t.Fatalf("Mint(%q) = %q verifies as %+v, %v", thread, got.Address, r, ok)
			}
		}
	})
}
