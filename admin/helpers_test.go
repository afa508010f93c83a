package admin

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mailhook/mailhook/deliver"
	"github.com/mailhook/mailhook/deliver/pebbleq"
	"github.com/mailhook/mailhook/deliver/queuetest"
	"github.com/mailhook/mailhook/inbound"
	"github.com/mailhook/mailhook/parse"
	"github.com/mailhook/mailhook/route"
)

// clock is a settable time source.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Now().UTC().Truncate(time.Second)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type tWriter struct{ t testing.TB }

func (w tWriter) Write(b []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(b), "\n"))
	return len(b), nil
}

func openActivity(t testing.TB, now func() time.Time) *Activity {
	t.Helper()
	a, err := OpenActivity(t.TempDir(), ActivityOptions{Now: now, Logger: testLogger(t)})
	if err != nil {
		t.Fatalf("OpenActivity = %v", err)
	}
	t.Cleanup(func() { a.Close() })
	return a
}

// fixture is a message with attachments of every shape the attachment
// walker must find: a large binary, an attached message, an attachment
// inside that message and a Latin-1 text file.
type fixture struct {
	raw   string
	big   []byte // big.bin
	inner []byte // inner.pdf inside the forwarded message
}

func newFixture(t testing.TB) *fixture {
	t.Helper()
	f := &fixture{big: make([]byte, 300<<10), inner: make([]byte, 40<<10)}
	rand.Read(f.big)
	rand.Read(f.inner)
	b64 := func(p []byte) string {
		s := base64.StdEncoding.EncodeToString(p)
		var b strings.Builder
		for len(s) > 76 {
			b.WriteString(s[:76] + "\r\n")
			s = s[76:]
		}
		b.WriteString(s + "\r\n")
		return b.String()
	}
	f.raw = "Received: from mx.example.org by mx.example.test\r\n" +
		"From: Alice Example <alice@example.org>\r\n" +
		"To: support@example.test\r\n" +
		"Subject: Printer on fire\r\n" +
		"Message-ID: <fire-1@example.org>\r\n" +
		"Date: Mon, 02 Nov 2026 10:00:00 +0000\r\n" +
		"MIME-Version: 1.0\r\n" +
		"Content-Type: multipart/mixed; boundary=\"outer\"\r\n" +
		"\r\n" +
		"--outer\r\n" +
		"Content-Type: text/plain; charset=utf-8\r\n" +
		"\r\n" +
		"The printer on floor 3 is on fire.\r\n" +
		"--outer\r\n" +
		"Content-Type: application/octet-stream\r\n" +
		"Content-Disposition: attachment; filename=\"big.bin\"\r\n" +
		"Content-Transfer-Encoding: base64\r\n" +
		"\r\n" + b64(f.big) +
		"--outer\r\n" +
		"Content-Type: message/rfc822\r\n" +
		"\r\n" +
		"From: Bob <bob@example.org>\r\n" +
		"Subject: Manual\r\n" +
		"MIME-Version: 1.0\r\n" +
		"Content-Type: multipart/mixed; boundary=\"inner\"\r\n" +
		"\r\n" +
		"--inner\r\n" +
		"Content-Type: text/plain\r\n" +
		"\r\n" +
		"See the manual.\r\n" +
		"--inner\r\n" +
		"Content-Type: application/pdf; name=\"inner.pdf\"\r\n" +
		"Content-Transfer-Encoding: base64\r\n" +
		"\r\n" + b64(f.inner) +
		"--inner--\r\n" +
		"--outer\r\n" +
		"Content-Type: text/plain; charset=iso-8859-1\r\n" +
		"Content-Disposition: attachment; filename=\"notes.txt\"\r\n" +
		"Content-Transfer-Encoding: quoted-printable\r\n" +
		"\r\n" +
		"caf=E9 cr=E8me\r\n" +
		"--outer--\r\n"
	return f
}

// mailOpts describes a message to accept.
type mailOpts struct {
	id       string
	rcpt     string
	route    string
	received time.Time
	raw      string
	stable   string
	jobs     []*deliver.Job
	spam     *inbound.Spam // rspamd's verdict, if any
}

// accept does what ingest and cmd/mailhook do for an accepted message:
// parse, keep the raw copy, commit the jobs, record the acceptance.
func accept(t testing.TB, q deliver.Queue, a *Activity, o mailOpts) (*inbound.Mail, []*deliver.Job) {
	t.Helper()
	if o.raw == "" {
		o.raw = "From: alice@example.org\r\nTo: " + o.rcpt + "\r\nSubject: hello " + o.id + "\r\n\r\nHi.\r\n"
	}
	if o.rcpt == "" {
		o.rcpt = "support@example.test"
	}
	if o.route == "" {
		o.route = "tickets"
	}
	mail := queuetest.NewMail(t, o.id, o.raw)
	mail.Envelope.RcptTo = []string{o.rcpt}
	mail.StableID = o.stable
	if !o.received.IsZero() {
		mail.ReceivedAt = o.received
	}
	mail.Auth = &inbound.Auth{
		SPF:                   inbound.SPFResult{Result: "pass", Domain: "example.org", Identity: "mailfrom"},
		DKIM:                  []inbound.DKIMResult{{Result: "pass", Domain: "example.org", Selector: "s1"}},
		DMARC:                 inbound.DMARCResult{Result: "pass", Policy: "reject", Domain: "example.org"},
		AuthenticationResults: "mx.example.test; spf=pass smtp.mailfrom=example.org; dkim=pass header.d=example.org; dmarc=pass",
	}
	mail.Spam = o.spam
	msg, err := parse.Parse(strings.NewReader(o.raw), parse.Options{InlineLimit: 1024})
	if err != nil {
		t.Fatalf("parse.Parse = %v", err)
	}
	mail.Message = msg
	jobs := o.jobs
	if jobs == nil {
		jobs = []*deliver.Job{{
			ID: o.id + "-w", MsgID: o.id, Kind: deliver.KindWebhook, Target: "tickets-hook", Route: o.route,
			Action: route.Action{Kind: route.ActWebhook, Webhook: "tickets-hook"},
		}}
	}
	decisions := []route.Decision{{
		Rcpt: o.rcpt, Rules: []string{o.route},
		Actions: []route.Action{{Kind: route.ActWebhook, Webhook: "tickets-hook"}},
		Why:     []string{o.route + ": rcpt " + o.rcpt + " matched " + o.rcpt},
	}}
	if a != nil {
		if err := a.KeepRaw(mail.ID, mail.RawPath); err != nil {
			t.Fatalf("KeepRaw = %v", err)
		}
	}
	if q != nil {
		if err := q.Commit(context.Background(), mail, jobs); err != nil {
			t.Fatalf("Commit = %v", err)
		}
	}
	if a != nil {
		if err := a.RecordAccepted(mail, decisions, jobs); err != nil {
			t.Fatalf("RecordAccepted = %v", err)
		}
	}
	return mail, jobs
}

// openQueue opens an embedded queue that keeps raw messages as files, so
// that tests can check the activity store's hard links to them.
func openQueue(t testing.TB, now func() time.Time) *pebbleq.Queue {
	t.Helper()
	q, err := pebbleq.Open(t.TempDir(), pebbleq.Options{Now: now, InlineMax: -1})
	if err != nil {
		t.Fatalf("pebbleq.Open = %v", err)
	}
	t.Cleanup(func() { q.Close() })
	return q
}

// env is a running admin server over a real queue and activity store.
type env struct {
	t     testing.TB
	q     *pebbleq.Queue
	act   *Activity
	m     *Metrics
	srv   *Server
	base  string
	token string
	clock *clock
	ready error
	mu    sync.Mutex
}

const testToken = "s3cret-admin-token"

var testKey = []byte("0123456789abcdef0123456789abcdef")

func newEnv(t testing.TB, token string) *env {
	t.Helper()
	e := &env{t: t, token: token, clock: newClock()}
	e.q = openQueue(t, e.clock.Now)
	e.act = openActivity(t, e.clock.Now)
	e.m = NewMetrics(MetricsOptions{Backend: "embedded", Stats: func() (deliver.Stats, error) { return e.q.Stats(context.Background()) }})
	e.srv = NewServer(ServerOptions{
		Token: token, Queue: e.q, Activity: e.act, Metrics: e.m, AttachmentKey: testKey,
		Logger: testLogger(t), Now: e.clock.Now, EnablePprof: true,
		Ready: func(ctx context.Context) error {
			e.mu.Lock()
			defer e.mu.Unlock()
			return e.ready
		},
	})
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	e.base = "http://" + l.Addr().String()
	done := make(chan error, 1)
	go func() { done <- e.srv.Serve(l) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := e.srv.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown = %v", err)
		}
		if err := <-done; err != http.ErrServerClosed {
			t.Errorf("Serve = %v, want ErrServerClosed", err)
		}
	})
	return e
}

// do sends a request with the bearer token (when tok is not "") and
// returns the status and body.
func (e *env) do(method, path, tok string, hdr ...string) (int, http.Header, []byte) {
	e.t.Helper()
	req, err := http.NewRequest(method, e.base+path, nil)
	if err != nil {
		e.t.Fatal(err)
	}
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	return res.StatusCode, res.Header, body
}

// get fetches path with the token and wants 200.
func (e *env) get(path string) []byte {
	e.t.Helper()
	code, _, body := e.do("GET", path, e.token)
	if code != http.StatusOK {
		e.t.Fatalf("GET %s = %d %s, want 200", path, code, body)
	}
	return body
}

func bytesHas(b []byte, s string) bool { return bytes.Contains(b, []byte(s)) }

func fmtJobs(jobs []*deliver.Job) string {
	var b strings.Builder
	for _, j := range jobs {
		fmt.Fprintf(&b, "%s(%s) ", j.ID, j.StateAt(time.Now()))
	}
	return b.String()
}
