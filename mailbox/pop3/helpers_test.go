package pop3

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeBackend is an in-memory Backend for unit tests. The flow tests also
// run against the real mailbox store (store_test.go).
type fakeBackend struct {
	mu     sync.Mutex
	pass   map[string]string
	msgs   map[string][]fakeMsg
	locked map[string]bool
	next   int
}

type fakeMsg struct {
	uid  string
	body []byte
}

var _ Backend = (*fakeBackend)(nil)

func newFakeBackend() *fakeBackend {
	return &fakeBackend{pass: map[string]string{}, msgs: map[string][]fakeMsg{}, locked: map[string]bool{}}
}

func (b *fakeBackend) addUser(name, pass string) { b.mu.Lock(); b.pass[name] = pass; b.mu.Unlock() }

func (b *fakeBackend) deliver(user string, raw []byte) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.next++
	b.msgs[user] = append(b.msgs[user], fakeMsg{uid: "1." + strconv.Itoa(b.next), body: raw})
}

func (b *fakeBackend) Login(ctx context.Context, user, pass string, remote net.Addr) (Maildrop, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	p, ok := b.pass[user]
	if !ok || p != pass {
		return nil, ErrAuthFailed
	}
	if b.locked[user] {
		return nil, ErrInUse
	}
	b.locked[user] = true
	return &fakeDrop{b: b, user: user}, nil
}

type fakeDrop struct {
	b    *fakeBackend
	user string
	snap []fakeMsg
}

func (d *fakeDrop) Messages(ctx context.Context) ([]Msg, error) {
	d.b.mu.Lock()
	defer d.b.mu.Unlock()
	d.snap = append([]fakeMsg(nil), d.b.msgs[d.user]...)
	out := make([]Msg, len(d.snap))
	for i, m := range d.snap {
		out[i] = Msg{UID: m.uid, Size: crlfSize(m.body)}
	}
	return out, nil
}

func (d *fakeDrop) Open(ctx context.Context, i int) (io.ReadCloser, error) {
	return io.NopCloser(bytes.NewReader(d.snap[i].body)), nil
}

func (d *fakeDrop) Delete(ctx context.Context, uids []string) error {
	d.b.mu.Lock()
	defer d.b.mu.Unlock()
	del := map[string]bool{}
	for _, u := range uids {
		del[u] = true
	}
	var keep []fakeMsg
	for _, m := range d.b.msgs[d.user] {
		if !del[m.uid] {
			keep = append(keep, m)
		}
	}
	d.b.msgs[d.user] = keep
	return nil
}

func (d *fakeDrop) Close() error {
	d.b.mu.Lock()
	defer d.b.mu.Unlock()
	d.b.locked[d.user] = false
	return nil
}

// crlfSize is the size of raw once bare LFs become CRLF.
func crlfSize(raw []byte) int64 {
	n, err := WireSize(bytes.NewReader(raw))
	if err != nil {
		panic(err)
	}
	return n
}

// testLogger logs to the test at debug level when -v, so traces show up.
func testLogger(t testing.TB) *slog.Logger {
	if !testing.Verbose() {
		return slog.New(slog.DiscardHandler)
	}
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type tWriter struct{ t testing.TB }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

// noDelay makes failed logins answer at once and records the delays asked.
type delays struct {
	mu sync.Mutex
	d  []time.Duration
}

func (d *delays) record(ctx context.Context, x time.Duration) {
	d.mu.Lock()
	d.d = append(d.d, x)
	d.mu.Unlock()
}

func (d *delays) get() []time.Duration {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]time.Duration(nil), d.d...)
}

// startServer serves opts on 127.0.0.1:0 and stops the server at cleanup.
func startServer(t testing.TB, opts Options) (*Server, string, *delays) {
	t.Helper()
	if opts.Logger == nil {
		opts.Logger = testLogger(t)
	}
	srv := New(opts)
	dl := &delays{}
	srv.afterFailure = dl.record
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(l) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown = %v", err)
		}
		if err := <-errc; !errors.Is(err, ErrServerClosed) {
			t.Errorf("Serve = %v, want ErrServerClosed", err)
		}
	})
	return srv, l.Addr().String(), dl
}

// client is a poplib-style POP3 client for tests.
type client struct {
	t    testing.TB
	conn net.Conn
	r    *bufio.Reader
	// Greeting is the server's first line.
	greeting string
}

func dial(t testing.TB, addr string) *client {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	cl := newClient(t, c)
	cl.greeting = cl.line()
	if !strings.HasPrefix(cl.greeting, "+OK") {
		t.Fatalf("greeting = %q", cl.greeting)
	}
	return cl
}

func newClient(t testing.TB, c net.Conn) *client {
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	return &client{t: t, conn: c, r: bufio.NewReader(c)}
}

// startTLS runs the client side of the TLS handshake after STLS was
// accepted and returns a client on the TLS connection.
func (c *client) startTLS() *client {
	c.t.Helper()
	tc := tls.Client(c.conn, &tls.Config{InsecureSkipVerify: true})
	if err := tc.Handshake(); err != nil {
		c.t.Fatalf("handshake: %v", err)
	}
	return newClient(c.t, tc)
}

func (c *client) line() string {
	c.t.Helper()
	l, err := c.r.ReadString('\n')
	if err != nil {
		c.t.Fatalf("read: %v (got %q)", err, l)
	}
	if !strings.HasSuffix(l, "\r\n") {
		c.t.Fatalf("line %q does not end in CRLF", l)
	}
	return strings.TrimSuffix(l, "\r\n")
}

func (c *client) send(line string) {
	c.t.Helper()
	if _, err := io.WriteString(c.conn, line+"\r\n"); err != nil {
		c.t.Fatalf("write %q: %v", line, err)
	}
}

// cmd sends line and returns the status line.
func (c *client) cmd(line string) string {
	c.t.Helper()
	c.send(line)
	return c.line()
}

// ok sends line and fails unless the answer is +OK.
func (c *client) ok(line string) string {
	c.t.Helper()
	resp := c.cmd(line)
	if !strings.HasPrefix(resp, "+OK") {
		c.t.Fatalf("%s = %q, want +OK", line, resp)
	}
	return resp
}

// multi reads the lines of a multi-line response, undoing byte-stuffing.
func (c *client) multi() []string {
	c.t.Helper()
	var out []string
	for {
		l := c.line()
		if l == "." {
			return out
		}
		if strings.HasPrefix(l, ".") {
			l = l[1:]
		}
		out = append(out, l)
	}
}

func (c *client) login(user, pass string) string {
	c.t.Helper()
	c.ok("USER " + user)
	return c.ok("PASS " + pass)
}

func (c *client) stat() (int, int64) {
	c.t.Helper()
	var n int
	var size int64
	resp := c.ok("STAT")
	if _, err := fmt.Sscanf(resp, "+OK %d %d", &n, &size); err != nil {
		c.t.Fatalf("STAT = %q: %v", resp, err)
	}
	return n, size
}

// retr returns the message as the client sees it, lines joined with CRLF.
func (c *client) retr(n int) string {
	c.t.Helper()
	c.ok("RETR " + strconv.Itoa(n))
	return strings.Join(c.multi(), "\r\n") + "\r\n"
}

func (c *client) uidl() map[int]string {
	c.t.Helper()
	c.ok("UIDL")
	m := map[int]string{}
	for _, l := range c.multi() {
		var n int
		var u string
		if _, err := fmt.Sscanf(l, "%d %s", &n, &u); err != nil {
			c.t.Fatalf("UIDL line %q: %v", l, err)
		}
		m[n] = u
	}
	return m
}

// expectClosed fails unless the server closes the connection.
func (c *client) expectClosed() {
	c.t.Helper()
	b, err := c.r.ReadByte()
	if err == nil {
		rest, _ := c.r.ReadString('\n')
		c.t.Fatalf("connection open, got %q", string(b)+rest)
	}
}
