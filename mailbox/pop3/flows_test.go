package pop3

import (
	"context"
	"crypto/tls"
	"maps"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mailhook/mailhook/internal/loginlimit"
)

// env is one backend under test: the fake, or the real mailbox store.
type env struct {
	backend Backend
	// deliver adds a message to user's maildrop.
	deliver func(t testing.TB, user string, raw string)
	// reopen returns a backend on the same data, as after a restart.
	reopen func(t testing.TB) Backend
	// limiter is the limiter to give Options, if the backend has its own.
	limiter Limiter
}

type fixture struct {
	name  string
	setup func(t testing.TB) env
}

// fixtures lists the backends every flow test runs against; store_test.go
// adds the real store.
var fixtures = []fixture{{"fake", fakeEnv}}

// Test users.
const (
	alice, alicePass = "alice", "correct horse"
	bob, bobPass     = "bob", "hunter2"
)

func fakeEnv(t testing.TB) env {
	b := newFakeBackend()
	b.addUser(alice, alicePass)
	b.addUser(bob, bobPass)
	return env{
		backend: b,
		deliver: func(t testing.TB, user, raw string) { b.deliver(user, []byte(raw)) },
		reopen:  func(t testing.TB) Backend { return b },
	}
}

// Test messages: dot-stuffing, bare LF, and a body for TOP.
const (
	msgDots = "From: a@example.test\r\nTo: alice@example.test\r\nSubject: dots\r\n\r\n" +
		"Hello\r\n.\r\n..two dots\r\n.leading\r\nend\r\n"
	msgBareLF = "From: b@example.test\nSubject: bare lf\n\nline1\nline2\n.\nlast"
	msgTop    = "From: c@example.test\r\nSubject: top\r\n\r\nb1\r\nb2\r\nb3\r\n"
)

// want is what a client sees of each message after RETR.
var want = []string{
	msgDots,
	"From: b@example.test\r\nSubject: bare lf\r\n\r\nline1\r\nline2\r\n.\r\nlast\r\n",
	msgTop,
}

func eachFixture(t *testing.T, f func(t *testing.T, e env)) {
	for _, fx := range fixtures {
		t.Run(fx.name, func(t *testing.T) {
			e := fx.setup(t)
			f(t, e)
		})
	}
}

func withMessages(t testing.TB, e env) {
	for _, m := range []string{msgDots, msgBareLF, msgTop} {
		e.deliver(t, alice, m)
	}
}

func opts(e env) Options {
	return Options{Backend: e.backend, Limiter: e.limiter, Hostname: "mx.example.test"}
}

func TestFlowRead(t *testing.T) {
	eachFixture(t, func(t *testing.T, e env) {
		withMessages(t, e)
		_, addr, _ := startServer(t, opts(e))
		c := dial(t, addr)
		if got := c.login(alice, alicePass); !strings.HasPrefix(got, "+OK maildrop has 3 messages") {
			t.Errorf("PASS = %q", got)
		}
		n, size := c.stat()
		total := 0
		for _, w := range want {
			total += len(w)
		}
		if n != 3 || size != int64(total) {
			t.Errorf("STAT = %d %d, want 3 %d", n, size, total)
		}
		c.ok("LIST")
		lines := c.multi()
		if len(lines) != 3 {
			t.Fatalf("LIST = %q", lines)
		}
		for i, l := range lines {
			if w := strings.Join([]string{strconv.Itoa(i + 1), strconv.Itoa(len(want[i]))}, " "); l != w {
				t.Errorf("LIST line %d = %q, want %q", i+1, l, w)
			}
		}
		if got, w := c.cmd("LIST 2"), "+OK 2 "+strconv.Itoa(len(want[1])); got != w {
			t.Errorf("LIST 2 = %q, want %q", got, w)
		}
		if got := c.cmd("LIST 4"); !strings.HasPrefix(got, "-ERR no such message") {
			t.Errorf("LIST 4 = %q", got)
		}
		uids := c.uidl()
		if len(uids) != 3 || uids[1] == uids[2] || uids[2] == uids[3] || uids[1] == uids[3] {
			t.Errorf("UIDL = %v", uids)
		}
		for n, u := range uids {
			if len(u) > 70 || strings.ContainsFunc(u, func(r rune) bool { return r < 0x21 || r > 0x7e }) {
				t.Errorf("UIDL %d = %q: not a valid unique-id (RFC 1939 §7)", n, u)
			}
			if got, w := c.cmd("UIDL "+strconv.Itoa(n)), "+OK "+strconv.Itoa(n)+" "+u; got != w {
				t.Errorf("UIDL %d = %q, want %q", n, got, w)
			}
		}
		for i, w := range want {
			if got := c.retr(i + 1); got != w {
				t.Errorf("RETR %d = %q, want %q", i+1, got, w)
			}
		}
		// The wire form of the dot message is byte-stuffed.
		c.ok("RETR 1")
		var raw []string
		for l := c.line(); l != "."; l = c.line() {
			raw = append(raw, l)
		}
		if got := strings.Join(raw[4:], "|"); got != "Hello|..|...two dots|..leading|end" {
			t.Errorf("RETR 1 body on the wire = %q", got)
		}
		c.ok("TOP 3 2")
		if got, w := strings.Join(c.multi(), "|"), "From: c@example.test|Subject: top||b1|b2"; got != w {
			t.Errorf("TOP 3 2 = %q, want %q", got, w)
		}
		c.ok("TOP 1 0")
		if got, w := strings.Join(c.multi(), "|"), "From: a@example.test|To: alice@example.test|Subject: dots|"; got != w {
			t.Errorf("TOP 1 0 = %q, want %q", got, w)
		}
		c.ok("TOP 2 100")
		if got, w := strings.Join(c.multi(), "\r\n")+"\r\n", want[1]; got != w {
			t.Errorf("TOP 2 100 = %q, want %q", got, w)
		}
		c.ok("NOOP")
		c.ok("QUIT")
		c.expectClosed()
	})
}

func TestFlowDeleRset(t *testing.T) {
	eachFixture(t, func(t *testing.T, e env) {
		withMessages(t, e)
		_, addr, _ := startServer(t, opts(e))
		c := dial(t, addr)
		c.login(alice, alicePass)
		c.ok("DELE 1")
		if got := c.cmd("DELE 1"); !strings.HasPrefix(got, "-ERR message 1 already deleted") {
			t.Errorf("second DELE 1 = %q", got)
		}
		if got := c.cmd("RETR 1"); !strings.HasPrefix(got, "-ERR") {
			t.Errorf("RETR of a deleted message = %q", got)
		}
		if n, _ := c.stat(); n != 2 {
			t.Errorf("STAT after DELE: %d messages, want 2", n)
		}
		c.ok("LIST")
		if got := c.multi(); len(got) != 2 || !strings.HasPrefix(got[0], "2 ") {
			t.Errorf("LIST after DELE 1 = %q", got)
		}
		if got := c.ok("RSET"); !strings.HasPrefix(got, "+OK maildrop has 3 messages") {
			t.Errorf("RSET = %q", got)
		}
		if got := c.retr(1); got != want[0] {
			t.Errorf("RETR 1 after RSET = %q", got)
		}
		c.ok("QUIT")
		c = dial(t, addr)
		c.login(alice, alicePass)
		if n, _ := c.stat(); n != 3 {
			t.Errorf("STAT in a new session: %d messages, want 3", n)
		}
		c.ok("QUIT")
	})
}

func TestFlowDeleQuit(t *testing.T) {
	eachFixture(t, func(t *testing.T, e env) {
		withMessages(t, e)
		_, addr, _ := startServer(t, opts(e))
		c := dial(t, addr)
		c.login(alice, alicePass)
		before := c.uidl()
		c.ok("DELE 1")
		c.ok("DELE 3")
		if got := c.ok("QUIT"); got != "+OK bye (1 messages left)" {
			t.Errorf("QUIT = %q", got)
		}
		c.expectClosed()

		c = dial(t, addr)
		c.login(alice, alicePass)
		if n, _ := c.stat(); n != 1 {
			t.Fatalf("STAT after QUIT: %d messages, want 1", n)
		}
		if got := c.retr(1); got != want[1] {
			t.Errorf("RETR 1 = %q, want %q", got, want[1])
		}
		if got := c.uidl(); got[1] != before[2] {
			t.Errorf("UIDL of the survivor = %q, want %q", got[1], before[2])
		}
		c.ok("QUIT")
	})
}

func TestFlowDroppedKeepsMessages(t *testing.T) {
	eachFixture(t, func(t *testing.T, e env) {
		withMessages(t, e)
		_, addr, _ := startServer(t, opts(e))
		c := dial(t, addr)
		c.login(alice, alicePass)
		c.ok("DELE 1")
		c.ok("DELE 2")
		c.conn.Close() // no QUIT: RFC 1939 §6, no UPDATE state

		// The lock is released when the server notices; retry until then.
		c = loginRetry(t, addr, alice, alicePass)
		if n, _ := c.stat(); n != 3 {
			t.Errorf("STAT after a dropped session: %d messages, want 3", n)
		}
		c.ok("QUIT")
	})
}

// loginRetry logs in, retrying while the maildrop is still locked by a
// session the server has not finished tearing down.
func loginRetry(t *testing.T, addr, user, pass string) *client {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		c := dial(t, addr)
		c.ok("USER " + user)
		resp := c.cmd("PASS " + pass)
		if strings.HasPrefix(resp, "+OK") {
			return c
		}
		if !strings.HasPrefix(resp, "-ERR [IN-USE]") || time.Now().After(deadline) {
			t.Fatalf("PASS = %q", resp)
		}
		c.conn.Close()
		time.Sleep(10 * time.Millisecond)
	}
}

func TestFlowUIDLStableAcrossRestart(t *testing.T) {
	eachFixture(t, func(t *testing.T, e env) {
		withMessages(t, e)
		srv, addr, _ := startServer(t, opts(e))
		c := dial(t, addr)
		c.login(alice, alicePass)
		first := c.uidl()
		if len(first) != 3 {
			t.Fatalf("UIDL = %v, want 3 messages", first)
		}
		c.ok("QUIT")
		c.expectClosed()
		if err := srv.Shutdown(context.Background()); err != nil {
			t.Fatal(err)
		}

		e2 := e
		e2.backend = e.reopen(t)
		_, addr, _ = startServer(t, opts(e2))
		c = dial(t, addr)
		c.login(alice, alicePass)
		if got := c.uidl(); !maps.Equal(got, first) {
			t.Errorf("UIDL after restart = %v, want %v", got, first)
		}
		c.ok("QUIT")
	})
}

func TestFlowInUse(t *testing.T) {
	eachFixture(t, func(t *testing.T, e env) {
		withMessages(t, e)
		_, addr, _ := startServer(t, opts(e))
		c1 := dial(t, addr)
		c1.login(alice, alicePass)
		c2 := dial(t, addr)
		c2.ok("USER " + alice)
		if got := c2.cmd("PASS " + alicePass); !strings.HasPrefix(got, "-ERR [IN-USE]") {
			t.Errorf("second session PASS = %q, want -ERR [IN-USE]", got)
		}
		// Another user is not affected.
		c3 := dial(t, addr)
		c3.login(bob, bobPass)
		c3.ok("QUIT")
		c1.ok("QUIT")
		c1.expectClosed()
		c2.ok("USER " + alice)
		c2.ok("PASS " + alicePass)
		c2.ok("QUIT")
	})
}

func TestFlowWrongPassword(t *testing.T) {
	eachFixture(t, func(t *testing.T, e env) {
		lim := e.limiter
		if lim == nil {
			lim = loginlimit.New(loginlimit.Options{LockAfter: 4, BaseDelay: time.Second, MaxDelay: 4 * time.Second})
		}
		o := opts(e)
		o.Limiter = lim
		_, addr, delays := startServer(t, o)
		c := dial(t, addr)
		for i := range 4 {
			c.ok("USER " + alice)
			if got := c.cmd("PASS wrong"); !strings.HasPrefix(got, "-ERR [AUTH]") {
				t.Fatalf("attempt %d: PASS wrong = %q, want -ERR [AUTH]", i+1, got)
			}
		}
		// The limiter lets the first failures (typos) go without delay,
		// then the delay grows.
		d := delays.get()
		if len(d) != 4 || d[3] <= 0 || d[3] < d[2] || d[2] < d[0] {
			t.Errorf("delays after failures = %v, want a delay growing to positive", d)
		}
		// Throttled now: even the right password is refused for a while.
		c.ok("USER " + alice)
		if got := c.cmd("PASS " + alicePass); !strings.HasPrefix(got, "-ERR [SYS/TEMP]") {
			t.Errorf("PASS after lockout = %q, want -ERR [SYS/TEMP]", got)
		}
		// Unknown users fail the same way as wrong passwords.
		c2 := dial(t, addr)
		c2.ok("USER nobody")
		if got := c2.cmd("PASS x"); !strings.HasPrefix(got, "-ERR [AUTH]") && !strings.HasPrefix(got, "-ERR [SYS/TEMP]") {
			t.Errorf("PASS for an unknown user = %q", got)
		}
	})
}

func TestFlowAuthPlain(t *testing.T) {
	eachFixture(t, func(t *testing.T, e env) {
		withMessages(t, e)
		_, addr, _ := startServer(t, opts(e))
		ir := b64("\x00" + alice + "\x00" + alicePass)

		c := dial(t, addr)
		c.ok("AUTH PLAIN " + ir)
		if n, _ := c.stat(); n != 3 {
			t.Errorf("STAT = %d", n)
		}
		c.ok("QUIT")
		c.expectClosed()

		c = dial(t, addr)
		if got := c.cmd("AUTH PLAIN"); got != "+ " {
			t.Fatalf("AUTH PLAIN = %q, want the empty challenge %q", got, "+ ")
		}
		c.ok(b64(alice + "\x00" + alice + "\x00" + alicePass))
		c.ok("QUIT")
		c.expectClosed()

		c = dial(t, addr)
		c.cmd("AUTH PLAIN")
		if got := c.cmd("*"); !strings.HasPrefix(got, "-ERR") {
			t.Errorf("cancelled AUTH = %q", got)
		}
		if got := c.cmd("AUTH PLAIN " + b64("\x00"+alice+"\x00nope")); !strings.HasPrefix(got, "-ERR [AUTH]") {
			t.Errorf("AUTH PLAIN wrong password = %q", got)
		}
		if got := c.cmd("AUTH PLAIN " + b64("admin\x00"+alice+"\x00"+alicePass)); !strings.HasPrefix(got, "-ERR [AUTH]") {
			t.Errorf("AUTH PLAIN as another identity = %q", got)
		}
		if got := c.cmd("AUTH PLAIN !!!"); !strings.HasPrefix(got, "-ERR") {
			t.Errorf("AUTH PLAIN bad base64 = %q", got)
		}
		if got := c.cmd("AUTH CRAM-MD5"); !strings.HasPrefix(got, "-ERR") {
			t.Errorf("AUTH CRAM-MD5 = %q", got)
		}
		c.ok("AUTH")
		if got := c.multi(); len(got) != 1 || got[0] != "PLAIN" {
			t.Errorf("AUTH list = %q", got)
		}
	})
}

func TestFlowSTLS(t *testing.T) {
	eachFixture(t, func(t *testing.T, e env) {
		withMessages(t, e)
		cert := selfSigned(t)
		o := opts(e)
		o.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}}
		o.LoopbackIsRemote = true
		_, addr, _ := startServer(t, o)
		c := dial(t, addr)

		c.ok("CAPA")
		before := c.multi()
		if !slices.Contains(before, "STLS") || slices.Contains(before, "USER") || slices.Contains(before, "SASL PLAIN") {
			t.Errorf("CAPA before TLS = %q, want STLS and neither USER nor SASL PLAIN", before)
		}
		// Plaintext passwords are refused on a "remote" cleartext link.
		if got := c.cmd("USER " + alice); !strings.HasPrefix(got, "-ERR [AUTH]") {
			t.Errorf("USER without TLS = %q", got)
		}
		if got := c.cmd("AUTH PLAIN " + b64("\x00"+alice+"\x00"+alicePass)); !strings.HasPrefix(got, "-ERR [AUTH]") {
			t.Errorf("AUTH PLAIN without TLS = %q", got)
		}
		c.ok("STLS")
		c = c.startTLS()
		c.ok("CAPA")
		after := c.multi()
		if slices.Contains(after, "STLS") || !slices.Contains(after, "USER") || !slices.Contains(after, "SASL PLAIN") {
			t.Errorf("CAPA after TLS = %q", after)
		}
		if got := c.cmd("STLS"); !strings.HasPrefix(got, "-ERR") {
			t.Errorf("second STLS = %q", got)
		}
		c.login(alice, alicePass)
		if got := c.retr(1); got != want[0] {
			t.Errorf("RETR 1 over TLS = %q", got)
		}
		c.ok("QUIT")
	})
}
