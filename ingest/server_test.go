package ingest

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/smtp"
	"net/textproto"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	gosmtp "github.com/emersion/go-smtp"

	"github.com/mailhook/mailhook/config"
	"github.com/mailhook/mailhook/inbound"
	"github.com/mailhook/mailhook/internal/rawsmtp"
	"github.com/mailhook/mailhook/parse"
	"github.com/mailhook/mailhook/route"
)

// recorder is a Committer that keeps what it was given: the mail, the
// decisions and the raw bytes (Raw, or read from RawPath, as a queue would).
type recorder struct {
	mu    sync.Mutex
	mails []*inbound.Mail
	raws  [][]byte
	decs  [][]route.Decision
	fail  error
}

func (r *recorder) Commit(ctx context.Context, m *inbound.Mail, d []route.Decision) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.fail != nil {
		return r.fail
	}
	raw := m.Raw
	if raw == nil {
		var err error
		if raw, err = os.ReadFile(m.RawPath); err != nil {
			return err
		}
	}
	r.mails = append(r.mails, m)
	r.raws = append(r.raws, raw)
	r.decs = append(r.decs, d)
	return nil
}

func (r *recorder) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.mails)
}

var testRules = []config.Rule{
	{Name: "support", Match: config.RuleMatch{Rcpt: config.StringList{"support@example.test"}},
		Actions: []config.RuleAction{{Webhook: "tickets"}}},
	{Name: "invoices", Match: config.RuleMatch{Rcpt: config.StringList{"billing@example.test"}, Subject: "(?i)invoice"},
		Actions: []config.RuleAction{{Webhook: "tickets"}}},
	{Name: "blocked", Match: config.RuleMatch{Rcpt: config.StringList{"noreply@example.test"}},
		Actions: []config.RuleAction{{Reject: "550 5.7.1 This address takes no mail"}}},
	{Name: "utf8", Match: config.RuleMatch{Rcpt: config.StringList{"josé@example.test"}},
		Actions: []config.RuleAction{{Webhook: "tickets"}}},
}

type harness struct {
	addr string
	rec  *recorder
	srv  *Server
}

func start(t testing.TB, tweak func(*Options)) *harness {
	t.Helper()
	table, err := route.Compile(testRules, route.Known{Webhooks: map[string]bool{"tickets": true}})
	if err != nil {
		t.Fatalf("route.Compile: %v", err)
	}
	pol := &Policy{Domains: map[string]bool{"example.test": true}, Router: table}
	rec := &recorder{}
	o := Options{
		Hostname:  "mx.example.test",
		Policy:    func() *Policy { return pol },
		Parse:     func(r io.Reader) (*parse.Message, error) { return parse.Parse(r, parse.Options{}) },
		Committer: rec,
		SpoolDir:  t.TempDir(),
	}
	if tweak != nil {
		tweak(&o)
	}
	srv, err := New(o)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(l) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return &harness{addr: l.Addr().String(), rec: rec, srv: srv}
}

const simpleMsg = "From: Alice <alice@sender.test>\r\nTo: support@example.test\r\nSubject: Help me\r\nMessage-ID: <m1@sender.test>\r\n\r\nMy printer is on fire.\r\n"

// isReply reports whether err is the SMTP reply code with a text starting
// with prefix (the enhanced code and more).
func isReply(err error, code int, prefix string) bool {
	var te *textproto.Error
	return errors.As(err, &te) && te.Code == code && strings.HasPrefix(te.Msg, prefix)
}

func TestAcceptAndCommit(t *testing.T) {
	h := start(t, nil)
	if err := smtp.SendMail(h.addr, nil, "alice@sender.test", []string{"support@example.test"}, []byte(simpleMsg)); err != nil {
		t.Fatalf("SendMail: %v", err)
	}
	if h.rec.count() != 1 {
		t.Fatalf("committed %d messages, want 1", h.rec.count())
	}
	m, raw := h.rec.mails[0], string(h.rec.raws[0])
	if m.Envelope.MailFrom != "alice@sender.test" || len(m.Envelope.RcptTo) != 1 || m.Envelope.RcptTo[0] != "support@example.test" {
		t.Errorf("envelope = %+v", m.Envelope)
	}
	if m.Envelope.ClientIP != "127.0.0.1" || m.Envelope.Helo != "localhost" || m.Envelope.TLS {
		t.Errorf("envelope = %+v", m.Envelope)
	}
	if m.Message == nil || m.Message.Subject != "Help me" || !strings.Contains(m.Message.Text, "printer is on fire") {
		t.Errorf("parsed message = %+v", m.Message)
	}
	if m.ID == "" || m.StableID == "" || m.ID == m.StableID {
		t.Errorf("ids: %q %q", m.ID, m.StableID)
	}
	if !strings.HasPrefix(raw, "Authentication-Results: mx.example.test; none\r\nReceived: from localhost ([127.0.0.1])\r\n\tby mx.example.test (mailhook) with UTF8SMTP id "+m.ID+"\r\n\tfor <support@example.test>; ") {
		t.Errorf("raw does not start with our trace fields:\n%s", raw)
	}
	if !strings.HasSuffix(raw, simpleMsg) {
		t.Errorf("raw does not end with the message as sent:\n%q", raw)
	}
	if m.RawSize != int64(len(raw)) {
		t.Errorf("RawSize = %d, want %d", m.RawSize, len(raw))
	}
	if d := h.rec.decs[0]; len(d) != 1 || d[0].Rules[0] != "support" || d[0].Actions[0].Webhook != "tickets" {
		t.Errorf("decisions = %+v", d)
	}
}

// TestRawInMemoryOrFile: a small message reaches the committer as bytes,
// with no file made for it; one past the in-memory bound as a file, with
// the same trace fields in front and the data unchanged.
func TestRawInMemoryOrFile(t *testing.T) {
	h := start(t, nil)
	big := "From: a@sender.test\r\nSubject: big\r\n\r\n" + strings.Repeat(strings.Repeat("x", 76)+"\r\n", memMax/78+100)
	for _, msg := range []string{simpleMsg, big} {
		if err := smtp.SendMail(h.addr, nil, "alice@sender.test", []string{"support@example.test"}, []byte(msg)); err != nil {
			t.Fatalf("SendMail: %v", err)
		}
	}
	if h.rec.count() != 2 {
		t.Fatalf("committed %d messages, want 2", h.rec.count())
	}
	small, large := h.rec.mails[0], h.rec.mails[1]
	if small.Raw == nil || small.RawPath != "" {
		t.Errorf("small message: Raw %d bytes, RawPath %q; want bytes and no file", len(small.Raw), small.RawPath)
	}
	if large.Raw != nil || large.RawPath == "" {
		t.Errorf("large message: Raw %d bytes, RawPath %q; want a file", len(large.Raw), large.RawPath)
	}
	for i, msg := range []string{simpleMsg, big} {
		raw := string(h.rec.raws[i])
		if !strings.HasPrefix(raw, "Authentication-Results: ") || !strings.HasSuffix(raw, msg) || h.rec.mails[i].RawSize != int64(len(raw)) {
			t.Errorf("message %d: raw of %d bytes (RawSize %d) is not our fields + the data", i, len(raw), h.rec.mails[i].RawSize)
		}
	}
}

// dial opens a raw SMTP connection and reads the greeting.
type client struct {
	t *testing.T
	c net.Conn
	r *bufio.Reader
}

func dial(t *testing.T, addr string) *client {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	cl := &client{t: t, c: c, r: bufio.NewReader(c)}
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if got := cl.reply(); !strings.HasPrefix(got, "220 ") {
		t.Fatalf("greeting = %q", got)
	}
	return cl
}

// reply reads one whole reply and returns its last line.
func (c *client) reply() string { return rawsmtp.Reply(c.r) }

func (c *client) send(s string) {
	c.t.Helper()
	if _, err := io.WriteString(c.c, s); err != nil {
		c.t.Fatalf("write: %v", err)
	}
}

// cmd sends one command line and returns the reply's last line.
func (c *client) cmd(line string) string {
	c.t.Helper()
	c.send(line + "\r\n")
	return c.reply()
}

// startData runs a transaction from a@sender.test to support@example.test
// up to the 354 that invites the data.
func (c *client) startData() {
	c.t.Helper()
	c.expect("EHLO client.test", "250 ")
	c.expect("MAIL FROM:<a@sender.test>", "250 ")
	c.expect("RCPT TO:<support@example.test>", "250 ")
	c.expect("DATA", "354 ")
}

func (c *client) expect(line, prefix string) {
	c.t.Helper()
	if got := c.cmd(line); !strings.HasPrefix(got, prefix) {
		c.t.Fatalf("%s -> %q, want %q", line, got, prefix)
	}
}

func TestRecipientPolicy(t *testing.T) {
	h := start(t, nil)
	for _, tc := range []struct {
		name, mail, rcpt, want string
	}{
		{"ours", "<a@sender.test>", "<support@example.test>", "250 "},
		{"ours, case", "<a@sender.test>", "<support@EXAMPLE.test>", "250 "},
		{"ours, plus tag", "<a@sender.test>", "<support+urgent@example.test>", "250 "},
		{"unknown user", "<a@sender.test>", "<nobody@example.test>", "550 5.1.1"},
		{"other domain", "<a@sender.test>", "<victim@other.test>", "554 5.7.1"},
		{"subdomain of ours", "<a@sender.test>", "<support@sub.example.test>", "554 5.7.1"},
		{"percent hack", "<a@sender.test>", "<victim%other.test@example.test>", "554 5.7.1"},
		{"bang path", "<a@sender.test>", "<other.test!victim@example.test>", "554 5.7.1"},
		{"source route", "<a@sender.test>", "<@example.test:victim@other.test>", "554 5.7.1"},
		{"quoted local part with @", "<a@sender.test>", `<"victim@other.test"@example.test>`, "554 5.7.1"},
		{"quoted local part, ours", "<a@sender.test>", `<"support"@example.test>`, "250 "},
		{"empty", "<a@sender.test>", "<>", "5"},
		{"no domain", "<a@sender.test>", "<support>", "5"},
		{"8-bit without SMTPUTF8", "<a@sender.test>", "<josé@example.test>", "553 5.6.7"},
		{"8-bit with SMTPUTF8", "<a@sender.test> SMTPUTF8", "<josé@example.test>", "250 "},
		{"null sender is fine", "<>", "<support@example.test>", "250 "},
		{"reject rule still passes RCPT", "<a@sender.test>", "<noreply@example.test>", "250 "},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := dial(t, h.addr)
			c.expect("EHLO client.test", "250 ")
			c.expect("MAIL FROM:"+tc.mail, "250 ")
			if got := c.cmd("RCPT TO:" + tc.rcpt); !strings.HasPrefix(got, tc.want) {
				t.Errorf("RCPT TO:%s -> %q, want %q", tc.rcpt, got, tc.want)
			}
		})
	}
}

func TestEHLOAdvertises(t *testing.T) {
	h := start(t, func(o *Options) { o.Limits.MaxMessageBytes = 12345 })
	c := dial(t, h.addr)
	c.send("EHLO client.test\r\n")
	var lines []string
	for {
		line, err := c.r.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		lines = append(lines, strings.TrimSpace(line[4:]))
		if line[3] == ' ' {
			break
		}
	}
	got := strings.Join(lines, "|")
	for _, ext := range []string{"PIPELINING", "8BITMIME", "ENHANCEDSTATUSCODES", "SMTPUTF8", "CHUNKING", "SIZE 12345"} {
		if !strings.Contains(got, ext) {
			t.Errorf("EHLO lacks %s: %s", ext, got)
		}
	}
	if strings.Contains(got, "STARTTLS") {
		t.Errorf("STARTTLS advertised without a certificate: %s", got)
	}
}

func TestSizeLimits(t *testing.T) {
	h := start(t, func(o *Options) { o.Limits.MaxMessageBytes = 1000 })
	c := dial(t, h.addr)
	c.expect("EHLO client.test", "250 ")
	c.expect("MAIL FROM:<a@sender.test> SIZE=1001", "552 5.3.4")
	c.expect("MAIL FROM:<a@sender.test> SIZE=900", "250 ")
	c.expect("RCPT TO:<support@example.test>", "250 ")
	c.expect("DATA", "354 ")
	// 50 KB: far past the limit; the excess is read and dropped, not kept.
	c.send("From: a@sender.test\r\nSubject: big\r\n\r\n" + strings.Repeat(strings.Repeat("x", 98)+"\r\n", 500) + ".\r\n")
	if got := c.reply(); !strings.HasPrefix(got, "552 5.3.4") {
		t.Fatalf("oversized DATA -> %q, want 552 5.3.4", got)
	}
	// The session goes on.
	c.expect("MAIL FROM:<a@sender.test>", "250 ")
	c.expect("RCPT TO:<support@example.test>", "250 ")
	c.expect("DATA", "354 ")
	if got := c.cmd("From: a@sender.test\r\nSubject: small\r\n\r\nhi\r\n."); !strings.HasPrefix(got, "250 2.0.0") {
		t.Fatalf("small DATA -> %q", got)
	}
	if h.rec.count() != 1 {
		t.Fatalf("committed %d, want 1", h.rec.count())
	}
	if files, _ := filepath.Glob(filepath.Join(h.srv.o.SpoolDir, "*")); len(files) != 0 {
		t.Errorf("spool not cleaned: %v", files)
	}
}

func TestMaxRecipients(t *testing.T) {
	h := start(t, func(o *Options) { o.Limits.MaxRecipients = 2 })
	c := dial(t, h.addr)
	c.expect("EHLO client.test", "250 ")
	c.expect("MAIL FROM:<a@sender.test>", "250 ")
	c.expect("RCPT TO:<support@example.test>", "250 ")
	c.expect("RCPT TO:<billing@example.test>", "250 ")
	c.expect("RCPT TO:<support+x@example.test>", "452 4.5.3")
}

func TestLineTooLong(t *testing.T) {
	h := start(t, func(o *Options) { o.Limits.MaxLineLength = 1000 })
	c := dial(t, h.addr)
	c.startData()
	// The server stops reading at the limit, so the write may fail.
	go io.WriteString(c.c, "From: a@sender.test\r\nSubject: x\r\n\r\n"+strings.Repeat("y", 5000)+"\r\n.\r\n")
	if got := c.reply(); !strings.HasPrefix(got, "500 5.5.6") {
		t.Fatalf("long line -> %q, want 500 5.5.6", got)
	}
	if h.rec.count() != 0 {
		t.Fatal("a message with a too long line was committed")
	}
	// The server closes the connection after a too long line.
	io.WriteString(c.c, "EHLO x\r\n")
	if got := c.reply(); !strings.HasPrefix(got, "500 ") && !strings.HasPrefix(got, "EOF") {
		t.Errorf("connection still open after a too long line: %q", got)
	}
}

// TestLineLimitInData: in DATA the exact reader checks the line length in
// go-smtp's place, at go-smtp's bound (a line of limit-1 bytes and its LF
// passes, one byte more does not, a leading dot counting as a byte), and
// gives the check back after the data: the next command line is bounded
// again, and the session goes on.
func TestLineLimitInData(t *testing.T) {
	const limit = 1000
	h := start(t, func(o *Options) { o.Limits.MaxLineLength = limit })
	head := "From: a@sender.test\r\nSubject: x\r\n\r\n"
	fits := strings.Repeat("y", limit-2) + "\r\n"          // limit-1 bytes before the LF
	dotFits := "." + strings.Repeat("z", limit-3) + "\r\n" // the stuffed dot counts
	c := dial(t, h.addr)
	c.startData()
	c.send(head + fits + dotFits + ".\r\n")
	if got := c.reply(); !strings.HasPrefix(got, "250 ") {
		t.Fatalf("lines at the limit -> %q, want 250", got)
	}
	c.expect("RSET", "250 ")
	c.expect("MAIL FROM:<a@sender.test>", "250 ")
	c.expect("RCPT TO:<support@example.test>", "250 ")
	c.expect("DATA", "354 ")
	go io.WriteString(c.c, head+"y"+fits+".\r\n")
	if got := c.reply(); !strings.HasPrefix(got, "500 5.5.6") {
		t.Fatalf("a line one byte over -> %q, want 500 5.5.6", got)
	}
	if n := h.rec.count(); n != 1 {
		t.Fatalf("%d messages committed, want the first only", n)
	}

	// After the data, go-smtp bounds command lines again.
	c2 := dial(t, h.addr)
	c2.startData()
	c2.send(head + fits + ".\r\n")
	if got := c2.reply(); !strings.HasPrefix(got, "250 ") {
		t.Fatalf("second session: %q", got)
	}
	c2.send("NOOP " + strings.Repeat("n", 2*limit))
	if got := c2.reply(); !strings.HasPrefix(got, "500 ") && !strings.HasPrefix(got, "EOF") {
		t.Fatalf("a command line over the limit after DATA -> %q, want it refused", got)
	}
}

// TestSmuggling sends the published SMTP smuggling variants: a second
// message hidden behind an end-of-data that is not <CRLF>.<CRLF>. Each must
// be refused whole, and the hidden commands must never run.
func TestSmuggling(t *testing.T) {
	for _, tc := range []struct{ name, end string }{
		// "<CRLF>.<CR>X" is a line ".<CR>X": a bare CR (go-smtp's own
		// reader dropped it; ours, dataend.go, does not).
		{"CRLF.CR", "\r\n.\r"},
		{"LF.LF", "\n.\n"},
		{"LF.CRLF", "\n.\r\n"},
		{"CRLF.LF", "\r\n.\n"},
		{"CR.CR", "\r.\r"},
		{"CR.CRLF", "\r.\r\n"},
		{"bare LF in body", "\nmore\r\n"},
		{"bare CR in body", "\rmore\r\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := start(t, nil)
			c := dial(t, h.addr)
			c.startData()
			c.send("From: a@sender.test\r\nSubject: first\r\n\r\nhello" + tc.end +
				"MAIL FROM:<admin@example.test>\r\nRCPT TO:<support@example.test>\r\nDATA\r\nSubject: smuggled\r\n\r\nevil\r\n.\r\n")
			got := c.reply()
			if !strings.HasPrefix(got, "550 5.5.2") {
				t.Fatalf("-> %q, want 550 5.5.2", got)
			}
			// Exactly one reply for the whole thing: the next is for NOOP.
			if got := c.cmd("NOOP"); !strings.HasPrefix(got, "250 ") {
				t.Fatalf("NOOP -> %q: the smuggled commands ran", got)
			}
			if h.rec.count() != 0 {
				t.Fatalf("committed %d messages, want 0", h.rec.count())
			}
		})
	}
}

// TestCRCRLFEndsData: "<CR><CR><LF>.<CR><LF>" holds <CRLF>.<CRLF>, the
// end of data for every MTA that follows RFC 5321 §4.1.1.4: the message
// ends there (refused, for its bare CR) and what follows is the client's
// next transaction, not part of this message.
func TestCRCRLFEndsData(t *testing.T) {
	h := start(t, nil)
	c := dial(t, h.addr)
	c.startData()
	c.send("From: a@sender.test\r\nSubject: first\r\n\r\nhello\r\r\n.\r\n" +
		"MAIL FROM:<b@sender.test>\r\nRCPT TO:<support@example.test>\r\nDATA\r\nFrom: b@sender.test\r\nSubject: next\r\n\r\nnext\r\n.\r\n")
	for _, want := range []string{"550 5.5.2", "250 ", "250 ", "354 ", "250 2.0.0 Ok: queued"} {
		if got := c.reply(); !strings.HasPrefix(got, want) {
			t.Fatalf("reply %q, want %q", got, want)
		}
	}
	if h.rec.count() != 1 || !strings.HasSuffix(string(h.rec.raws[0]), "\r\nSubject: next\r\n\r\nnext\r\n") {
		t.Fatalf("committed %d messages, want only the next one", h.rec.count())
	}
}

func TestDotStuffingKept(t *testing.T) {
	h := start(t, nil)
	msg := "From: a@sender.test\r\nSubject: dots\r\n\r\n.leading dot\r\n..two\r\nend\r\n"
	if err := smtp.SendMail(h.addr, nil, "a@sender.test", []string{"support@example.test"}, []byte(msg)); err != nil {
		t.Fatal(err)
	}
	if !strings.HasSuffix(string(h.rec.raws[0]), msg) {
		t.Errorf("dot-stuffing not undone exactly: %q", h.rec.raws[0])
	}
}

// TestStoreFailureIs451: our own failure must be a 4xx, so the sender
// retries: go-smtp would send any other error as 554 5.0.0.
func TestStoreFailureIs451(t *testing.T) {
	h := start(t, nil)
	h.rec.fail = errors.New("disk on fire")
	err := smtp.SendMail(h.addr, nil, "a@sender.test", []string{"support@example.test"}, []byte(simpleMsg))
	if !isReply(err, 451, "4.3.0") {
		t.Fatalf("SendMail with a failing store = %v, want 451 4.3.0", err)
	}
}

func TestRejectActionAndNoRouteAtData(t *testing.T) {
	h := start(t, nil)
	err := smtp.SendMail(h.addr, nil, "a@sender.test", []string{"noreply@example.test"}, []byte(simpleMsg))
	if !isReply(err, 550, "5.7.1 This address takes no mail") {
		t.Errorf("reject rule: %v", err)
	}
	// billing@ passes RCPT (a rule could take it) but its rule wants an
	// invoice subject: refused at end of data, never dropped silently.
	err = smtp.SendMail(h.addr, nil, "a@sender.test", []string{"billing@example.test"}, []byte(simpleMsg))
	if !isReply(err, 550, "5.7.1 No route") {
		t.Errorf("no route at data: %v", err)
	}
	inv := strings.Replace(simpleMsg, "Subject: Help me", "Subject: Invoice 42", 1)
	if err := smtp.SendMail(h.addr, nil, "a@sender.test", []string{"billing@example.test"}, []byte(inv)); err != nil {
		t.Errorf("invoice: %v", err)
	}
	if h.rec.count() != 1 {
		t.Errorf("committed %d, want 1", h.rec.count())
	}
}

func TestTooManyErrors(t *testing.T) {
	h := start(t, func(o *Options) { o.Limits.MaxErrors = 3 })
	c := dial(t, h.addr)
	c.expect("EHLO client.test", "250 ")
	c.expect("MAIL FROM:<a@sender.test>", "250 ")
	for i := 0; i < 3; i++ {
		c.expect(fmt.Sprintf("RCPT TO:<guess%d@example.test>", i), "550 5.1.1")
	}
	c.send("RCPT TO:<guess9@example.test>\r\n")
	if got := c.reply(); !strings.HasPrefix(got, "421 4.7.0 Too many errors") {
		t.Fatalf("after too many errors: %q, want 421", got)
	}
	if got := c.reply(); !strings.HasPrefix(got, "EOF") {
		t.Fatalf("connection not closed: %q", got)
	}
}

func TestTooManyCommands(t *testing.T) {
	h := start(t, func(o *Options) { o.Limits.MaxCommands = 5 })
	c := dial(t, h.addr)
	c.expect("EHLO client.test", "250 ")
	for i := 0; i < 5; i++ {
		c.expect("MAIL FROM:<a@sender.test>", "250 ")
	}
	if got := c.cmd("MAIL FROM:<a@sender.test>"); !strings.HasPrefix(got, "421 4.7.0 Too many commands") {
		t.Fatalf("after too many commands: %q, want 421", got)
	}
}

func TestConnectionsPerIP(t *testing.T) {
	h := start(t, func(o *Options) { o.Limits.MaxConnectionsPerIP = 2 })
	a, b := dial(t, h.addr), dial(t, h.addr)
	c, err := net.Dial("tcp", h.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	line, _ := bufio.NewReader(c).ReadString('\n')
	if !strings.HasPrefix(line, "421 4.7.0") {
		t.Fatalf("third connection got %q, want 421 4.7.0", line)
	}
	// Closing one frees its place.
	a.expect("QUIT", "221 ")
	a.c.Close()
	var got string
	for i := 0; i < 50; i++ {
		c2, err := net.Dial("tcp", h.addr)
		if err != nil {
			t.Fatal(err)
		}
		c2.SetDeadline(time.Now().Add(5 * time.Second))
		got, _ = bufio.NewReader(c2).ReadString('\n')
		c2.Close()
		if strings.HasPrefix(got, "220 ") {
			break
		}
		time.Sleep(20 * time.Millisecond) // the server notices the close asynchronously
	}
	if !strings.HasPrefix(got, "220 ") {
		t.Fatalf("after a close, a new connection got %q", got)
	}
	_ = b
}

func TestIdleTimeout(t *testing.T) {
	h := start(t, func(o *Options) { o.Limits.ReadTimeout = 300 * time.Millisecond })
	c := dial(t, h.addr)
	if got := c.reply(); !strings.HasPrefix(got, "421 4.4.2") {
		t.Fatalf("idle client got %q, want 421 4.4.2", got)
	}
}

func TestSTARTTLS(t *testing.T) {
	cert := selfSigned(t)
	h := start(t, func(o *Options) { o.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}} })
	c, err := smtp.Dial(h.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if ok, _ := c.Extension("STARTTLS"); !ok {
		t.Fatal("STARTTLS not advertised")
	}
	if err := c.StartTLS(&tls.Config{InsecureSkipVerify: true}); err != nil {
		t.Fatalf("StartTLS: %v", err)
	}
	if err := c.Mail("a@sender.test"); err != nil {
		t.Fatal(err)
	}
	if err := c.Rcpt("support@example.test"); err != nil {
		t.Fatal(err)
	}
	w, err := c.Data()
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(w, simpleMsg)
	if err := w.Close(); err != nil {
		t.Fatalf("data: %v", err)
	}
	m := h.rec.mails[0]
	if !m.Envelope.TLS {
		t.Error("envelope.tls = false over STARTTLS")
	}
	if raw := string(h.rec.raws[0]); !strings.Contains(raw, "with UTF8SMTPS (TLS 1.3 ") {
		t.Errorf("Received does not record TLS: %s", raw[:300])
	}
}

func selfSigned(t *testing.T) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := x509.Certificate{SerialNumber: big.NewInt(1), DNSNames: []string{"mx.example.test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, &tmpl, &tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

func TestForgedAuthenticationResultsRemoved(t *testing.T) {
	h := start(t, nil)
	msg := "Authentication-Results: mx.example.test; dmarc=pass header.from=bank.test\r\n" +
		"Authentication-Results: other.example; spf=fail\r\n" + simpleMsg
	if err := smtp.SendMail(h.addr, nil, "a@sender.test", []string{"support@example.test"}, []byte(msg)); err != nil {
		t.Fatal(err)
	}
	raw := string(h.rec.raws[0])
	if strings.Contains(raw, "header.from=bank.test") {
		t.Errorf("forged Authentication-Results kept:\n%s", raw)
	}
	if !strings.Contains(raw, "Authentication-Results: other.example; spf=fail") {
		t.Errorf("another server's Authentication-Results removed:\n%s", raw)
	}
	// The parsed headers are those of the message as delivered.
	hs := h.rec.mails[0].Message.Headers
	if len(hs) < 3 || hs[0][0] != "Authentication-Results" || hs[0][1] != "mx.example.test; none" || hs[1][0] != "Received" ||
		hs[2] != [2]string{"Authentication-Results", "other.example; spf=fail"} {
		t.Errorf("parsed headers = %q", hs[:min(3, len(hs))])
	}
}

func TestStableIDAcrossRetries(t *testing.T) {
	h := start(t, nil)
	for i := 0; i < 2; i++ {
		if err := smtp.SendMail(h.addr, nil, "a@sender.test", []string{"support@example.test"}, []byte(simpleMsg)); err != nil {
			t.Fatal(err)
		}
	}
	other := strings.Replace(simpleMsg, "<m1@", "<m2@", 1)
	if err := smtp.SendMail(h.addr, nil, "a@sender.test", []string{"support@example.test"}, []byte(other)); err != nil {
		t.Fatal(err)
	}
	m := h.rec.mails
	if m[0].StableID != m[1].StableID || m[0].ID == m[1].ID {
		t.Errorf("a retried message: stable %q/%q, ids %q/%q", m[0].StableID, m[1].StableID, m[0].ID, m[1].ID)
	}
	if m[2].StableID == m[0].StableID {
		t.Error("a different message got the same stable id")
	}
}

// fakeVerifier is a unit-test Verifier; the real one is tested end to end
// with a DNS server on loopback in cmd/mailhook.
type fakeVerifier struct{ res inbound.Auth }

func (f *fakeVerifier) CheckSPF(ctx context.Context, ip net.IP, helo, from string) inbound.SPFResult {
	return f.res.SPF
}
func (f *fakeVerifier) Verify(ctx context.Context, spf inbound.SPFResult, r io.Reader) (*inbound.Auth, error) {
	io.Copy(io.Discard, r)
	res := f.res
	res.SPF = spf
	return &res, nil
}

func TestDMARCEnforcement(t *testing.T) {
	v := &fakeVerifier{res: inbound.Auth{SPF: inbound.SPFResult{Result: "fail", Domain: "bank.test"},
		DMARC: inbound.DMARCResult{Result: "fail", Policy: "reject", Domain: "bank.test"}, AuthenticationResults: "mx.example.test; dmarc=fail"}}
	h := start(t, func(o *Options) { o.Verifier = v; o.EnforceDMARC = true })
	err := smtp.SendMail(h.addr, nil, "a@bank.test", []string{"support@example.test"}, []byte(simpleMsg))
	if !isReply(err, 550, "5.7.1") {
		t.Fatalf("DMARC reject: %v, want 550 5.7.1", err)
	}
	if h.rec.count() != 0 {
		t.Fatal("a DMARC-rejected message was committed")
	}
	// Not enforced: accepted, flagged for rules (auth quarantine).
	h2 := start(t, func(o *Options) { o.Verifier = v; o.EnforceDMARC = false })
	if err := smtp.SendMail(h2.addr, nil, "a@bank.test", []string{"support@example.test"}, []byte(simpleMsg)); err != nil {
		t.Fatalf("p=reject without enforcement must be accepted: %v", err)
	}
	if !h2.rec.mails[0].Auth.Quarantine {
		t.Error("p=reject failure without enforcement not flagged as quarantine")
	}
	v.res.DMARC.Policy = "quarantine"
	if err := smtp.SendMail(h.addr, nil, "a@bank.test", []string{"support@example.test"}, []byte(simpleMsg)); err != nil {
		t.Fatalf("quarantine policy must be accepted: %v", err)
	}
	if got := h.rec.mails[0].Auth; got.DMARC.Policy != "quarantine" || !got.Quarantine || !strings.HasPrefix(string(h.rec.raws[0]), "Authentication-Results: mx.example.test; dmarc=fail\r\n") {
		t.Errorf("auth = %+v", got)
	}
}

func TestDNSTempErrorDefers(t *testing.T) {
	v := &fakeVerifier{res: inbound.Auth{SPF: inbound.SPFResult{Result: "temperror"}, DMARC: inbound.DMARCResult{Result: "none"}}}
	h := start(t, func(o *Options) { o.Verifier = v; o.DeferOnTempError = true })
	err := smtp.SendMail(h.addr, nil, "a@bank.test", []string{"support@example.test"}, []byte(simpleMsg))
	if !isReply(err, 451, "4.4.3") {
		t.Fatalf("temperror with defer: %v, want 451 4.4.3", err)
	}
}

func TestShutdownLetsSessionFinish(t *testing.T) {
	h := start(t, nil)
	c := dial(t, h.addr)
	c.expect("EHLO client.test", "250 ")
	c.expect("MAIL FROM:<a@sender.test>", "250 ")
	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		done <- h.srv.Shutdown(ctx)
	}()
	// New connections are refused once Shutdown began; ours continues.
	time.Sleep(50 * time.Millisecond)
	c.expect("RCPT TO:<support@example.test>", "250 ")
	c.expect("DATA", "354 ")
	if got := c.cmd(simpleMsg + "."); !strings.HasPrefix(got, "250 ") {
		t.Fatalf("DATA during shutdown: %q", got)
	}
	c.expect("QUIT", "221 ")
	if err := <-done; err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if h.rec.count() != 1 {
		t.Fatal("message in flight lost on shutdown")
	}
}

func TestBounceAddressesAndBeforeCommit(t *testing.T) {
	relayBack := &route.Decision{Rules: []string{"srs-bounce"}, Actions: []route.Action{{Kind: route.ActForward, Forward: []string{"orig@sender.test"}}}}
	h := start(t, func(o *Options) {
		o.Bounce = func(from, rcpt string) (*route.Decision, *gosmtp.SMTPError, bool) {
			switch {
			case strings.HasPrefix(rcpt, "SRS0=good"):
				return relayBack, nil, true
			case strings.HasPrefix(rcpt, "SRS0="):
				return nil, ErrUnknownUser, true
			}
			return nil, nil, false
		}
		o.BeforeCommit = func(ctx context.Context, m *inbound.Mail, d []route.Decision) error {
			if m.Message.Subject == "huge" {
				return &gosmtp.SMTPError{Code: 452, EnhancedCode: gosmtp.EnhancedCode{4, 2, 2}, Message: "Mailbox full"}
			}
			return nil
		}
	})
	c := dial(t, h.addr)
	c.expect("EHLO client.test", "250 ")
	c.expect("MAIL FROM:<>", "250 ")
	c.expect("RCPT TO:<SRS0=bad=xx=sender.test=orig@example.test>", "550 5.1.1")
	c.expect("RCPT TO:<SRS0=good=xx=sender.test=orig@example.test>", "250 ")
	c.expect("DATA", "354 ")
	c.expect("From: a@sender.test\r\nSubject: bounce\r\n\r\nundeliverable\r\n.", "250 ")
	if h.rec.count() != 1 || h.rec.decs[0][0].Actions[0].Forward[0] != "orig@sender.test" || h.rec.decs[0][0].Rcpt != "SRS0=good=xx=sender.test=orig@example.test" {
		t.Fatalf("bounce decision = %+v", h.rec.decs)
	}
	err := sendMail(h.addr, "a@sender.test", "support@example.test", "From: a@sender.test\r\nSubject: huge\r\n\r\nx\r\n")
	if !isReply(err, 452, "4.2.2") {
		t.Fatalf("BeforeCommit refusal: %v", err)
	}
	if h.rec.count() != 1 {
		t.Fatal("a refused message was committed")
	}
}

func sendMail(addr, from, to, msg string) error {
	return smtp.SendMail(addr, nil, from, []string{to}, []byte(msg))
}

// TestStuckParserDefers: a parser that never returns costs a 451 within
// the verification bound, and the session goes on.
func TestStuckParserDefers(t *testing.T) {
	block := make(chan struct{})
	t.Cleanup(func() { close(block) })
	h := start(t, func(o *Options) {
		o.Limits.VerifyTimeout = 300 * time.Millisecond
		o.Parse = func(r io.Reader) (*parse.Message, error) { <-block; return nil, errors.New("unblocked") }
	})
	c := dial(t, h.addr)
	c.startData()
	c.expect("From: a@sender.test\r\nSubject: x\r\n\r\nbody\r\n.", "451 4.3.0")
	c.expect("NOOP", "250 ")
	if h.rec.count() != 0 {
		t.Fatal("committed a message that was never parsed")
	}
}
