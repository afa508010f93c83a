package pop3

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mailhook/mailhook/internal/testenv"
)

func TestLineTooLong(t *testing.T) {
	e := fakeEnv(t)
	_, addr, _ := startServer(t, opts(e))

	// Lenient: longer than RFC 2449's 255 octets, but under our 512.
	c := dial(t, addr)
	c.ok("USER " + strings.Repeat("a", 400))

	if got := c.cmd("USER " + strings.Repeat("a", 600)); got != "-ERR line too long" {
		t.Errorf("600-octet line = %q, want -ERR line too long", got)
	}
	c.expectClosed()

	// A line that never ends is cut off too, with bounded memory.
	c = dial(t, addr)
	if _, err := c.conn.Write(bytes.Repeat([]byte("x"), 64*1024)); err != nil {
		t.Fatal(err)
	}
	if got := c.line(); got != "-ERR line too long" {
		t.Errorf("unterminated line = %q", got)
	}
	c.expectClosed()
}

func TestIdleTimeout(t *testing.T) {
	eachFixture(t, func(t *testing.T, e env) {
		withMessages(t, e)
		o := opts(e)
		o.IdleTimeout = 200 * time.Millisecond
		_, addr, _ := startServer(t, o)
		c := dial(t, addr)
		// Pipelined, so that no pause of ours trips the short timer.
		c.send("USER " + alice + "\r\nPASS " + alicePass + "\r\nDELE 1")
		for _, cmd := range []string{"USER", "PASS", "DELE"} {
			if got := c.line(); !strings.HasPrefix(got, "+OK") {
				t.Fatalf("%s = %q", cmd, got)
			}
		}
		// Say nothing: RFC 1939 §3's autologout closes the session
		// without entering UPDATE.
		if got := c.line(); got != "-ERR autologout, idle for too long" {
			t.Errorf("after idling = %q", got)
		}
		c.expectClosed()
		c = loginRetry(t, addr, alice, alicePass)
		if n, _ := c.stat(); n != 3 {
			t.Errorf("STAT after autologout: %d messages, want 3", n)
		}
	})
}

func TestShutdownKeepsUnfinishedDeletes(t *testing.T) {
	eachFixture(t, func(t *testing.T, e env) {
		withMessages(t, e)
		srv, addr, _ := startServer(t, opts(e))
		c := dial(t, addr)
		c.login(alice, alicePass)
		c.ok("DELE 1")
		c.ok("DELE 2")

		done := make(chan error, 1)
		go func() { done <- srv.Shutdown(context.Background()) }()
		if got := c.line(); got != "-ERR [SYS/TEMP] server shutting down" {
			t.Errorf("idle session at shutdown got %q", got)
		}
		c.expectClosed()
		if err := <-done; err != nil {
			t.Errorf("Shutdown = %v", err)
		}
		if _, err := net.Dial("tcp", addr); err == nil {
			t.Error("listener still accepts after Shutdown")
		}
		if err := srv.Serve(mustListen(t)); !errors.Is(err, ErrServerClosed) {
			t.Errorf("Serve after Shutdown = %v, want ErrServerClosed", err)
		}

		e2 := e
		e2.backend = e.reopen(t)
		_, addr, _ = startServer(t, opts(e2))
		c = loginRetry(t, addr, alice, alicePass)
		if n, _ := c.stat(); n != 3 {
			t.Errorf("STAT after shutdown: %d messages, want 3 (no deletes applied)", n)
		}
		c.ok("QUIT")
	})
}

func mustListen(t testing.TB) net.Listener {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// blockingBackend's maildrop blocks in Open until its context ends.
type blockingBackend struct {
	*fakeBackend
	opened chan struct{}
}

func (b blockingBackend) Login(ctx context.Context, user, pass string, remote net.Addr) (Maildrop, error) {
	d, err := b.fakeBackend.Login(ctx, user, pass, remote)
	if err != nil {
		return nil, err
	}
	return blockingDrop{d.(*fakeDrop), b.opened}, nil
}

type blockingDrop struct {
	*fakeDrop
	opened chan struct{}
}

func (d blockingDrop) Open(ctx context.Context, i int) (io.ReadCloser, error) {
	close(d.opened)
	<-ctx.Done()
	return nil, ctx.Err()
}

func TestShutdownBound(t *testing.T) {
	e := fakeEnv(t)
	withMessages(t, e)
	b := blockingBackend{e.backend.(*fakeBackend), make(chan struct{})}
	srv, addr, _ := startServer(t, Options{Backend: b})
	c := dial(t, addr)
	c.login(alice, alicePass)
	c.ok("DELE 2")
	c.send("RETR 1")
	<-b.opened
	// The RETR in progress does not finish: Shutdown gives up at the
	// bound and closes the connection.
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := srv.Shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Shutdown = %v, want context.DeadlineExceeded", err)
	}
	c.expectClosed()
	fb := e.backend.(*fakeBackend)
	fb.mu.Lock()
	n, locked := len(fb.msgs[alice]), fb.locked[alice]
	fb.mu.Unlock()
	if n != 3 || locked {
		t.Errorf("after a forced shutdown: %d messages, locked %v; want 3, false", n, locked)
	}
}

func TestImplicitTLS(t *testing.T) {
	eachFixture(t, func(t *testing.T, e env) {
		withMessages(t, e)
		cert := selfSigned(t)
		o := opts(e)
		o.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}}
		o.LoopbackIsRemote = true
		o.Logger = testLogger(t)
		srv := New(o)
		l := tls.NewListener(mustListen(t), o.TLSConfig)
		go srv.Serve(l)
		defer srv.Close()

		tc, err := tls.Dial("tcp", l.Addr().String(), &tls.Config{InsecureSkipVerify: true})
		if err != nil {
			t.Fatal(err)
		}
		defer tc.Close()
		c := newClient(t, tc)
		if g := c.line(); !strings.HasPrefix(g, "+OK") {
			t.Fatalf("greeting = %q", g)
		}
		c.ok("CAPA")
		capa := c.multi()
		if slices.Contains(capa, "STLS") || !slices.Contains(capa, "USER") {
			t.Errorf("CAPA over implicit TLS = %q", capa)
		}
		if got := c.cmd("STLS"); !strings.HasPrefix(got, "-ERR") {
			t.Errorf("STLS over TLS = %q", got)
		}
		c.login(alice, alicePass)
		if got := c.retr(2); got != want[1] {
			t.Errorf("RETR 2 = %q", got)
		}
		c.ok("QUIT")
	})
}

func TestSTLSDiscardsPipelinedCleartext(t *testing.T) {
	e := fakeEnv(t)
	o := opts(e)
	o.TLSConfig = &tls.Config{Certificates: []tls.Certificate{selfSigned(t)}}
	_, addr, _ := startServer(t, o)
	c := dial(t, addr)
	// An attacker in the path appends a command after STLS in the clear
	// (CVE-2011-0411); it must not run under TLS.
	c.send("STLS\r\nUSER alice")
	if got := c.line(); got != "+OK begin TLS negotiation" {
		t.Fatalf("STLS = %q", got)
	}
	c = c.startTLS()
	if got := c.cmd("PASS " + alicePass); got != "-ERR USER first" {
		t.Errorf("PASS after STLS = %q, want -ERR USER first", got)
	}
}

type panicBackend struct{}

func (panicBackend) Login(ctx context.Context, user, pass string, remote net.Addr) (Maildrop, error) {
	panic("boom")
}

func TestPanicRecovered(t *testing.T) {
	var logs syncBuffer
	srv, addr, _ := startServer(t, Options{Backend: panicBackend{}, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	for range 2 {
		c := dial(t, addr)
		c.ok("USER alice")
		c.send("PASS x")
		c.expectClosed()
	}
	// Shutdown waits for the sessions, and so for their panic logs.
	if err := srv.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(logs.String(), "boom") {
		t.Errorf("panic not logged: %s", logs.String())
	}
}

func TestMaxConnections(t *testing.T) {
	e := fakeEnv(t)
	o := opts(e)
	o.MaxConnections = 1
	_, addr, _ := startServer(t, o)
	c1 := dial(t, addr)
	c2, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	cl := newClient(t, c2)
	if got := cl.line(); got != "-ERR [SYS/TEMP] too many connections, try again later" {
		t.Errorf("second connection = %q", got)
	}
	cl.expectClosed()
	c1.ok("QUIT")
}

// syncBuffer is a bytes.Buffer safe for a logger and a test to share.
type syncBuffer = testenv.Buffer

func TestLogsRedactCredentials(t *testing.T) {
	e := fakeEnv(t)
	var logs syncBuffer
	o := opts(e)
	o.Logger = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	_, addr, _ := startServer(t, o)
	c := dial(t, addr)
	c.login(alice, alicePass)
	c.ok("QUIT")
	c.expectClosed()
	ir := b64("\x00" + alice + "\x00" + alicePass)
	c = dial(t, addr)
	c.ok("AUTH PLAIN " + ir)
	c.ok("QUIT")
	c.expectClosed()
	c = dial(t, addr)
	c.cmd("AUTH PLAIN")
	c.ok(ir)
	c.ok("QUIT")
	c.expectClosed()

	out := logs.String()
	if !strings.Contains(out, "<redacted>") || !strings.Contains(out, "pop3 session") {
		t.Errorf("expected a redacted trace and session lines:\n%s", out)
	}
	for _, secret := range []string{alicePass, "horse", ir} {
		if strings.Contains(out, secret) {
			t.Errorf("log contains %q:\n%s", secret, out)
		}
	}
}

// failingDelete's maildrop cannot apply deletes.
type failingDelete struct{ *fakeBackend }

func (b failingDelete) Login(ctx context.Context, user, pass string, remote net.Addr) (Maildrop, error) {
	d, err := b.fakeBackend.Login(ctx, user, pass, remote)
	if err != nil {
		return nil, err
	}
	return failingDrop{d.(*fakeDrop)}, nil
}

type failingDrop struct{ *fakeDrop }

func (failingDrop) Delete(context.Context, []string) error { return errors.New("disk on fire") }

func TestQuitUpdateFails(t *testing.T) {
	e := fakeEnv(t)
	withMessages(t, e)
	fb := e.backend.(*fakeBackend)
	_, addr, _ := startServer(t, Options{Backend: failingDelete{fb}})
	c := dial(t, addr)
	c.login(alice, alicePass)
	c.ok("DELE 1")
	// RFC 1939 §6: "-ERR some deleted messages not removed".
	if got := c.cmd("QUIT"); got != "-ERR [SYS/TEMP] some deleted messages not removed" {
		t.Errorf("QUIT = %q", got)
	}
	c.expectClosed()
}

func TestListenAndServeTLSNeedsConfig(t *testing.T) {
	srv := New(Options{Backend: newFakeBackend(), Addr: "127.0.0.1:0"})
	if err := srv.ListenAndServeTLS(); err == nil || !strings.Contains(err.Error(), "TLSConfig") {
		t.Errorf("ListenAndServeTLS without TLSConfig = %v", err)
	}
	if err := New(Options{}).Serve(mustListen(t)); err == nil {
		t.Error("Serve without a Backend = nil error")
	}
}
