package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/emersion/go-msgauth/dkim"
	gosmtp "github.com/emersion/go-smtp"
	"golang.org/x/crypto/bcrypt"

	"github.com/mailhook/mailhook/deliver/relay"
	"github.com/mailhook/mailhook/dns"
	"github.com/mailhook/mailhook/dns/dnstest"
)

// sink is an SMTP server that records what it is sent: the smarthost.
type sink struct {
	mu   sync.Mutex
	msgs []sunk
	got  chan struct{}
}

type sunk struct {
	from string
	to   []string
	data []byte
}

type sinkSession struct {
	s    *sink
	from string
	to   []string
}

func (s *sink) NewSession(c *gosmtp.Conn) (gosmtp.Session, error) { return &sinkSession{s: s}, nil }
func (ss *sinkSession) Reset()                                    { ss.from, ss.to = "", nil }
func (ss *sinkSession) Logout() error                             { return nil }
func (ss *sinkSession) Mail(from string, _ *gosmtp.MailOptions) error {
	ss.from = from
	return nil
}
func (ss *sinkSession) Rcpt(to string, _ *gosmtp.RcptOptions) error {
	ss.to = append(ss.to, to)
	return nil
}
func (ss *sinkSession) Data(r io.Reader) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	ss.s.mu.Lock()
	ss.s.msgs = append(ss.s.msgs, sunk{ss.from, ss.to, b})
	ss.s.mu.Unlock()
	ss.s.got <- struct{}{}
	return nil
}

func startSink(t testing.TB) (*sink, string) {
	t.Helper()
	s := &sink{got: make(chan struct{}, 100)}
	srv := gosmtp.NewServer(s)
	srv.Domain = "smarthost.test"
	srv.AllowInsecureAuth = true
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	return s, l.Addr().String()
}

// TestMailboxAndForwardEndToEnd: a route to a mailbox is read back over
// IMAP and POP3; a forward rule relays through a smarthost with the sender
// rewritten by SRS and our DKIM signature, which verifies.
func TestMailboxAndForwardEndToEnd(t *testing.T) {
	dir := t.TempDir()
	pemKey, txt, err := relay.GenerateDKIMKey("ed25519", 0)
	if err != nil {
		t.Fatal(err)
	}
	keyFile := filepath.Join(dir, "dkim.pem")
	os.WriteFile(keyFile, pemKey, 0o600)
	zone := dnstest.Start(t, "")
	zone.AddTXT("mh._domainkey.example.test.", 300, txt)
	hash, _ := bcrypt.GenerateFromPassword([]byte("correct horse"), bcrypt.MinCost)
	snk, sinkAddr := startSink(t)
	rcv := newReceiver(t, testSecret)
	smtpAddr, imapAddr, popAddr := freePort(t), freePort(t), freePort(t)
	extra := forwardAndMailbox(sinkAddr, fmt.Sprintf("  dkim: {domain: example.test, selector: mh, private_key_file: %q}\n", keyFile), imapAddr, popAddr, hash)
	adminAddr := freePort(t)
	cfg := writeConfig(t, dir, smtpAddr, zone.Addr(), rcv.srv.URL, extra)
	os.WriteFile(cfg, []byte(strings.Replace(mustRead(t, cfg), "admin: {listen: \"\"}", fmt.Sprintf("admin: {listen: %q}", adminAddr), 1)), 0o600)
	p := startServe(t, cfg, smtpAddr)

	// To carol's address (an implicit route) and to a plus-address of it.
	for i, rcpt := range []string{"carol@example.test", "carol+orders@example.test"} {
		msg := fmt.Sprintf("From: Dave <dave@sender.test>\r\nTo: %s\r\nSubject: For Carol %d\r\n\r\nHello Carol.\r\n", rcpt, i)
		if err := sendMail(smtpAddr, nil, "dave@sender.test", []string{rcpt}, []byte(msg)); err != nil {
			t.Fatalf("send to %s: %v", rcpt, err)
		}
	}
	fwd := "From: Dave <dave@sender.test>\r\nTo: fwd@example.test\r\nSubject: Pass it on\r\n\r\nPlease forward.\r\n"
	if err := sendMail(smtpAddr, nil, "dave@sender.test", []string{"fwd@example.test"}, []byte(fwd)); err != nil {
		t.Fatalf("send forward: %v", err)
	}

	// IMAP: both messages in INBOX.
	var subjects []string
	waitFor(t, 20*time.Second, func() bool {
		c, err := imapclient.DialInsecure(imapAddr, nil)
		if err != nil {
			return false
		}
		defer c.Close()
		if err := c.Login("carol", "correct horse").Wait(); err != nil {
			t.Fatalf("IMAP login: %v", err)
		}
		sel, err := c.Select("INBOX", nil).Wait()
		if err != nil || sel.NumMessages < 2 {
			return false
		}
		msgs, err := c.Fetch(imap.SeqSetNum(1, 2), &imap.FetchOptions{Envelope: true}).Collect()
		if err != nil {
			t.Fatalf("IMAP fetch: %v", err)
		}
		subjects = nil
		for _, m := range msgs {
			subjects = append(subjects, m.Envelope.Subject)
		}
		return true
	})
	// Both messages, in whichever order the two mailbox jobs ran: they are
	// delivered concurrently, so UIDs follow completion, not acceptance.
	slices.Sort(subjects)
	if strings.Join(subjects, "|") != "For Carol 0|For Carol 1" {
		t.Errorf("IMAP INBOX subjects = %q", subjects)
	}
	// Wrong password refused.
	if c, err := imapclient.DialInsecure(imapAddr, nil); err == nil {
		if err := c.Login("carol", "wrong").Wait(); err == nil {
			t.Error("IMAP login with a wrong password succeeded")
		}
		c.Close()
	}

	// POP3: the same two, and RETR returns the message with our headers.
	popCmd, pr := dialPOP3(t, popAddr)
	if got := popCmd("STAT"); !strings.HasPrefix(got, "+OK 2 ") {
		t.Errorf("POP3 STAT: %q", got)
	}
	if got := popCmd("RETR 1"); !strings.HasPrefix(got, "+OK") {
		t.Fatalf("POP3 RETR: %q", got)
	}
	var body strings.Builder
	for {
		line, err := pr.ReadString('\n')
		if err != nil || line == ".\r\n" {
			break
		}
		body.WriteString(line)
	}
	if !strings.HasPrefix(body.String(), "Authentication-Results: mx.example.test;") || !strings.Contains(body.String(), "Subject: For Carol ") {
		t.Errorf("POP3 RETR body:\n%s", body.String())
	}
	popCmd("QUIT")

	// The mailbox servers feed the metrics.
	waitFor(t, 10*time.Second, func() bool {
		_, m := httpGet(t, "http://"+adminAddr+"/metrics", "")
		return strings.Contains(m, `mailhook_failed_logins_total{proto="imap"} 1`) &&
			!strings.Contains(m, "mailhook_imap_sessions_total 0") && strings.Contains(m, "mailhook_pop3_sessions_total 1")
	})

	// The forward: through the smarthost, SRS sender, our DKIM signature.
	select {
	case <-snk.got:
	case <-time.After(20 * time.Second):
		t.Fatal("the smarthost got nothing")
	}
	snk.mu.Lock()
	got := snk.msgs[0]
	snk.mu.Unlock()
	if !strings.HasPrefix(got.from, "SRS0=") || !strings.HasSuffix(got.from, "@example.test") {
		t.Errorf("forwarded MAIL FROM = %q, want an SRS0 address of example.test", got.from)
	}
	if len(got.to) != 1 || got.to[0] != "someone@elsewhere.test" {
		t.Errorf("forwarded RCPT TO = %v", got.to)
	}
	res, err := dns.NewResolver(dns.ResolverOptions{Server: zone.Addr()})
	if err != nil {
		t.Fatal(err)
	}
	vs, err := dkim.VerifyWithOptions(bytes.NewReader(got.data), &dkim.VerifyOptions{LookupTXT: func(d string) ([]string, error) {
		return res.LookupTXT(context.Background(), d)
	}})
	if err != nil {
		t.Fatalf("dkim verify: %v", err)
	}
	var ours bool
	for _, v := range vs {
		if v.Domain == "example.test" && v.Err == nil {
			ours = true
		}
	}
	if !ours {
		t.Errorf("no valid DKIM signature of example.test on the forwarded message: %+v", vs)
	}
	if !strings.Contains(string(got.data), "X-Loop: mx.example.test") {
		t.Errorf("forwarded message lacks our loop marker:\n%s", got.data[:min(400, len(got.data))])
	}
	p.stop()
}
