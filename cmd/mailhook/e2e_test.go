package main

import (
	"bytes"
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/smtp"
	"net/textproto"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/emersion/go-msgauth/dkim"
	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/mailhook/mailhook/deliver/webhook"
	"github.com/mailhook/mailhook/dns/dnstest"
	"github.com/mailhook/mailhook/internal/testenv"
)

// The end-to-end tests run the real binary: `mailhook serve` as a
// subprocess, driven over SMTP, delivering to a real HTTP receiver, with
// verification against a real DNS server on loopback.

var (
	binOnce sync.Once
	binPath string
	binErr  error
)

// binary builds cmd/mailhook once per test run.
func binary(t testing.TB) string {
	t.Helper()
	binOnce.Do(func() {
		dir, err := os.MkdirTemp("", "mailhook-bin-")
		if err != nil {
			binErr = err
			return
		}
		binPath = filepath.Join(dir, "mailhook")
		out, err := exec.Command("go", "build", "-o", binPath, ".").CombinedOutput()
		if err != nil {
			binErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if binErr != nil {
		t.Fatal(binErr)
	}
	return binPath
}

// freePort returns a free loopback address (testenv.FreeAddr).
func freePort(t testing.TB) string { t.Helper(); return testenv.FreeAddr(t) }

// proc is a running `mailhook serve`.
type proc struct {
	t    testing.TB
	cmd  *exec.Cmd
	out  *syncBuffer
	done chan error
	smtp string
}

type syncBuffer = testenv.Buffer

func startServe(t testing.TB, cfgPath, smtpAddr string) *proc {
	t.Helper()
	cmd := exec.Command(binary(t), "serve", "--config", cfgPath)
	p := &proc{t: t, cmd: cmd, out: &syncBuffer{}, done: make(chan error, 1), smtp: smtpAddr}
	cmd.Stdout, cmd.Stderr = p.out, p.out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.done <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-p.done
		if t.Failed() {
			t.Logf("mailhook output:\n%s", p.out.String())
		}
	})
	deadline := time.Now().Add(20 * time.Second)
	for {
		c, err := net.Dial("tcp", smtpAddr)
		if err == nil {
			c.Close()
			return p
		}
		select {
		case err := <-p.done:
			p.done <- err
			t.Fatalf("mailhook serve exited: %v\n%s", err, p.out.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("mailhook serve did not listen on %s:\n%s", smtpAddr, p.out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// stop sends SIGTERM and waits for a clean exit.
func (p *proc) stop() {
	p.t.Helper()
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-p.done:
		p.done <- err
		if err != nil {
			p.t.Fatalf("mailhook serve exited with %v after SIGTERM:\n%s", err, p.out.String())
		}
	case <-time.After(30 * time.Second):
		p.t.Fatalf("mailhook serve did not stop within 30s of SIGTERM")
	}
}

// kill is kill -9.
func (p *proc) kill() {
	p.cmd.Process.Signal(syscall.SIGKILL)
	err := <-p.done
	p.done <- err
}

// receiver is a webhook endpoint that verifies every request with the
// Standard Webhooks reference library and records the events.
type receiver struct {
	srv    *httptest.Server
	wh     *standardwebhooks.Webhook
	mu     sync.Mutex
	events []map[string]any
	hdrs   []http.Header
	bad    int
	status func() int
	got    chan struct{}
}

func newReceiver(t testing.TB, secret string) *receiver {
	t.Helper()
	wh, err := standardwebhooks.NewWebhook(secret)
	if err != nil {
		t.Fatal(err)
	}
	r := &receiver{wh: wh, got: make(chan struct{}, 100000), status: func() int { return 200 }}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		if err := r.wh.Verify(body, req.Header); err != nil {
			r.mu.Lock()
			r.bad++
			r.mu.Unlock()
			http.Error(w, "bad signature: "+err.Error(), 400)
			return
		}
		var ev map[string]any
		if err := json.Unmarshal(body, &ev); err != nil {
			http.Error(w, "bad json", 400)
			return
		}
		st := r.status()
		if st == 200 {
			r.mu.Lock()
			r.events = append(r.events, ev)
			r.hdrs = append(r.hdrs, req.Header.Clone())
			r.mu.Unlock()
			r.got <- struct{}{}
		}
		w.WriteHeader(st)
	}))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *receiver) wait(t testing.TB, n int, d time.Duration) {
	t.Helper()
	timeout := time.After(d)
	for {
		r.mu.Lock()
		have := len(r.events)
		r.mu.Unlock()
		if have >= n {
			return
		}
		select {
		case <-r.got:
		case <-timeout:
			t.Fatalf("webhook receiver got %d events, want %d", have, n)
		}
	}
}

const testSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

// writeConfig writes a config for a test instance.
func writeConfig(t testing.TB, dir, smtpAddr, dnsAddr, hookURL, extra string) string {
	t.Helper()
	cfg := fmt.Sprintf(`
hostname: mx.example.test
data_dir: %s
domains: [example.test]
log: {level: info, format: text}
smtp: {listen: %q, shutdown_timeout: 10s}
verify: {dns_resolver: %q, enforce_dmarc: true, lookup_timeout: 2s}
queue: {retry: {schedule: [200ms, 500ms, 1s]}}
webhooks:
  tickets: {url: %q, secret: %q, allow_private: true, timeout: 5s}
admin: {listen: ""}
routes:
  - name: tickets
    match: {rcpt: "support@example.test"}
    actions: [{webhook: tickets}]
%s`, filepath.Join(dir, "data"), smtpAddr, dnsAddr, hookURL, testSecret, extra)
	path := filepath.Join(dir, "config.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// sender.test publishes SPF for loopback, an ed25519 DKIM key and DMARC
// p=reject; bank.test publishes "-all" and p=reject and signs nothing.
func senderZone(pub ed25519.PublicKey) string {
	return fmt.Sprintf(`
sender.test.                 IN TXT "v=spf1 ip4:127.0.0.0/8 -all"
sel._domainkey.sender.test.  IN TXT "v=DKIM1; k=ed25519; p=%s"
_dmarc.sender.test.          IN TXT "v=DMARC1; p=reject; adkim=s; aspf=r"
bank.test.                   IN TXT "v=spf1 -all"
_dmarc.bank.test.            IN TXT "v=DMARC1; p=reject"
`, base64.StdEncoding.EncodeToString(pub))
}

func signed(t testing.TB, key crypto.Signer, msg string) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := dkim.Sign(&b, strings.NewReader(msg), &dkim.SignOptions{Domain: "sender.test", Selector: "sel", Signer: key}); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// sendMail is smtp.SendMail with a deadline, so that a server that stalls
// fails the test instead of hanging it.
func sendMail(addr string, _ smtp.Auth, from string, to []string, msg []byte) error {
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return err
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(30 * time.Second))
	c, err := smtp.NewClient(conn, "localhost")
	if err != nil {
		return err
	}
	if err := c.Mail(from); err != nil {
		return err
	}
	for _, r := range to {
		if err := c.Rcpt(r); err != nil {
			return err
		}
	}
	w, err := c.Data()
	if err != nil {
		return err
	}
	if _, err := w.Write(msg); err != nil {
		return err
	}
	if err := w.Close(); err != nil {
		return err
	}
	return c.Quit()
}

func smtpCode(err error) int {
	var te *textproto.Error
	if errors.As(err, &te) {
		return te.Code
	}
	return 0
}

func TestServeEndToEnd(t *testing.T) {
	pub, key, _ := ed25519.GenerateKey(rand.Reader)
	dns := dnstest.Start(t, senderZone(pub))
	rcv := newReceiver(t, testSecret)
	dir := t.TempDir()
	addr := freePort(t)
	cfg := writeConfig(t, dir, addr, dns.Addr(), rcv.srv.URL+"/hook", "")
	signingKey, _ := webhook.NewSigningKey()
	os.WriteFile(cfg, []byte(strings.Replace(mustRead(t, cfg), "allow_private: true,", fmt.Sprintf("allow_private: true, signing_keys: [%q],", signingKey), 1)), 0o600)
	p := startServe(t, cfg, addr)

	msg := "From: Alice <alice@sender.test>\r\nTo: support@example.test\r\nSubject: Printer on fire\r\n" +
		"Message-ID: <e2e-1@sender.test>\r\nDate: Sun, 29 Nov 2026 04:00:00 +0000\r\n\r\nIt is burning.\r\n"
	// Signed once: a retry resends the same bytes (a signature made a
	// second later has another t= and so another stable id).
	sent := signed(t, key, msg)
	if err := sendMail(addr, nil, "alice@sender.test", []string{"support@example.test"}, sent); err != nil {
		t.Fatalf("SendMail: %v", err)
	}
	// A forged From of a p=reject domain, from an IP its SPF does not allow
	// and without its signature: refused at end of data.
	forged := "From: Bank <security@bank.test>\r\nTo: support@example.test\r\nSubject: Verify your account\r\n\r\nClick.\r\n"
	err := sendMail(addr, nil, "security@bank.test", []string{"support@example.test"}, []byte(forged))
	if smtpCode(err) != 550 || !strings.Contains(err.Error(), "5.7.1") {
		t.Errorf("forged p=reject sender: %v, want 550 5.7.1", err)
	}
	// Unknown domain: refused at RCPT.
	err = sendMail(addr, nil, "alice@sender.test", []string{"victim@other.test"}, []byte(msg))
	if smtpCode(err) != 554 {
		t.Errorf("other domain: %v, want 554 at RCPT", err)
	}

	// The sending MTA retries the same bytes after a lost 250: the same
	// stable id, so the commit is a no-op (DESIGN.md, "Round 2 contracts":
	// the stable id is the commit key) and the receiver gets it once. A
	// second, different message follows; its delivery is the second event.
	if err := sendMail(addr, nil, "alice@sender.test", []string{"support@example.test"}, sent); err != nil {
		t.Fatalf("SendMail again: %v", err)
	}
	other := strings.Replace(msg, "e2e-1@", "e2e-2@", 1)
	if err := sendMail(addr, nil, "alice@sender.test", []string{"support@example.test"}, signed(t, key, other)); err != nil {
		t.Fatalf("SendMail of a second message: %v", err)
	}
	rcv.wait(t, 2, 20*time.Second)
	first := 0
	if rcv.events[1]["message"].(map[string]any)["message_id"] == "e2e-1@sender.test" {
		first = 1
	}
	ev, hdr := rcv.events[first], rcv.hdrs[first]
	if ev["id"] == rcv.events[1-first]["id"] || hdr.Get("webhook-id") == rcv.hdrs[1-first].Get("webhook-id") ||
		rcv.events[1-first]["message"].(map[string]any)["message_id"] != "e2e-2@sender.test" {
		t.Errorf("events: ids %v/%v, webhook-ids %s/%s; want the resent message once, then the second message",
			ev["id"], rcv.events[1-first]["id"], hdr.Get("webhook-id"), rcv.hdrs[1-first].Get("webhook-id"))
	}
	if ev["type"] != "message.received" || ev["route"] != "tickets" || ev["id"] == "" {
		t.Errorf("event head = type %v route %v id %v", ev["type"], ev["route"], ev["id"])
	}
	if sig := hdr.Get("webhook-signature"); !strings.Contains(sig, "v1,") || !strings.Contains(sig, "v1a,") {
		t.Errorf("webhook-signature %q: want a v1 and a v1a signature", sig)
	}
	if !strings.HasPrefix(hdr.Get("User-Agent"), "mailhook/") || hdr.Get("webhook-id") == "" {
		t.Errorf("headers = %v", hdr)
	}
	a := ev["auth"].(map[string]any)
	spf := a["spf"].(map[string]any)
	dk := a["dkim"].([]any)
	dm := a["dmarc"].(map[string]any)
	if spf["result"] != "pass" || spf["domain"] != "sender.test" {
		t.Errorf("spf = %v", spf)
	}
	if len(dk) != 1 || dk[0].(map[string]any)["result"] != "pass" || dk[0].(map[string]any)["domain"] != "sender.test" || dk[0].(map[string]any)["selector"] != "sel" {
		t.Errorf("dkim = %v", dk)
	}
	if dm["result"] != "pass" || dm["policy"] != "reject" || dm["domain"] != "sender.test" {
		t.Errorf("dmarc = %v", dm)
	}
	if ar, _ := a["authentication_results"].(string); !strings.HasPrefix(ar, "mx.example.test;") || !strings.Contains(ar, "dkim=pass") {
		t.Errorf("authentication_results = %q", ar)
	}
	m := ev["message"].(map[string]any)
	if m["subject"] != "Printer on fire" || m["message_id"] != "e2e-1@sender.test" || !strings.Contains(m["text"].(string), "burning") {
		t.Errorf("message = %v", m)
	}
	if from := m["from"].(map[string]any); from["address"] != "alice@sender.test" || from["name"] != "Alice" {
		t.Errorf("from = %v", from)
	}
	env := ev["envelope"].(map[string]any)
	if env["mail_from"] != "alice@sender.test" || env["client_ip"] != "127.0.0.1" {
		t.Errorf("envelope = %v", env)
	}
	// The Authentication-Results header is on the delivered message.
	var hasAR bool
	for _, h := range m["headers"].([]any) {
		if kv := h.([]any); kv[0] == "Authentication-Results" && strings.HasPrefix(kv[1].(string), "mx.example.test;") {
			hasAR = true
		}
	}
	if !hasAR {
		t.Errorf("no Authentication-Results among the headers: %v", m["headers"])
	}
	if rcv.bad != 0 {
		t.Errorf("%d requests failed signature verification", rcv.bad)
	}
	p.stop()
}

func TestCheckConfigNamesTheKey(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "bad.yaml")
	os.WriteFile(path, []byte("domains: [example.test]\nsmtp: {listen: nope, max_recipients: many}\nroutes: [{name: r, actions: [{webhook: ghost}]}]\n"), 0o600)
	checkConfigFails(t, path, "smtp.listen:", "smtp.max_recipients:", "routes[0].actions[0].webhook:", "ghost")
	out, err := exec.Command(binary(t), "check-config", "--config", filepath.Join("..", "..", "config.example.yaml")).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "smtp       127.0.0.1:2525") {
		t.Errorf("check-config on the example: %v\n%s", err, out)
	}
}

// sendOne sends one small message to support@example.test with subject
// (by which the receiver tells messages apart) and returns the error, nil
// only for a 250.
func sendOne(addr, subject string) error {
	msg := fmt.Sprintf("From: load@load.test\r\nSubject: %s\r\n\r\nbody %s\r\n", subject, subject)
	return sendMail(addr, nil, "load@load.test", []string{"support@example.test"}, []byte(msg))
}

// TestKill9LosesNothingAcknowledged: a `mailhook serve` is killed with
// SIGKILL while 500 messages are being sent; after a restart every message
// that got 250 reaches the webhook at least once.
func TestKill9LosesNothingAcknowledged(t *testing.T) {
	dns := dnstest.Start(t, "")
	rcv := newReceiver(t, testSecret)
	dir := t.TempDir()
	addr := freePort(t)
	cfg := writeConfig(t, dir, addr, dns.Addr(), rcv.srv.URL+"/hook", "")
	p := startServe(t, cfg, addr)

	const total, workers = 500, 8
	var mu sync.Mutex
	acked := map[string]bool{}
	var next int
	var wg sync.WaitGroup
	killed := make(chan struct{})
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				mu.Lock()
				if next >= total {
					mu.Unlock()
					return
				}
				subject := fmt.Sprintf("kill9-%04d", next)
				next++
				mu.Unlock()
				if err := sendOne(addr, subject); err == nil {
					mu.Lock()
					acked[subject] = true
					n := len(acked)
					mu.Unlock()
					if n == total/3 {
						close(killed)
					}
				}
			}
		}()
	}
	<-killed
	p.kill()
	wg.Wait()
	mu.Lock()
	sent, nacked := next, len(acked)
	mu.Unlock()
	t.Logf("sent %d, acknowledged %d before and around the kill", sent, nacked)

	p2 := startServe(t, cfg, addr)
	deadline := time.Now().Add(60 * time.Second)
	for {
		rcv.mu.Lock()
		seen := map[string]int{}
		for _, ev := range rcv.events {
			seen[ev["message"].(map[string]any)["subject"].(string)]++
		}
		rcv.mu.Unlock()
		var missing []string
		for s := range acked {
			if seen[s] == 0 {
				missing = append(missing, s)
			}
		}
		if len(missing) == 0 {
			dups := 0
			for _, n := range seen {
				if n > 1 {
					dups += n - 1
				}
			}
			t.Logf("all %d acknowledged messages delivered; %d duplicate deliveries; %d delivered in all", nacked, dups, len(seen))
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d acknowledged messages never delivered, e.g. %v", len(missing), missing[:min(5, len(missing))])
		}
		time.Sleep(100 * time.Millisecond)
	}
	p2.stop()
}

func TestGracefulStopWithIdleSession(t *testing.T) {
	dns := dnstest.Start(t, "")
	rcv := newReceiver(t, testSecret)
	dir := t.TempDir()
	addr := freePort(t)
	p := startServe(t, writeConfig(t, dir, addr, dns.Addr(), rcv.srv.URL, ""), addr)
	// A session in the middle of a transaction finishes before the exit.
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	conn.SetDeadline(time.Now().Add(30 * time.Second))
	c, err := smtp.NewClient(conn, "localhost")
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Mail("a@load.test"); err != nil {
		t.Fatal(err)
	}
	stopped := make(chan struct{})
	go func() { p.stop(); close(stopped) }()
	time.Sleep(100 * time.Millisecond)
	if err := c.Rcpt("support@example.test"); err != nil {
		t.Fatalf("RCPT during shutdown: %v", err)
	}
	w, err := c.Data()
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(w, "From: a@sender.test\r\nSubject: last one\r\n\r\nbye\r\n")
	if err := w.Close(); err != nil {
		t.Fatalf("DATA during shutdown: %v", err)
	}
	c.Quit()
	<-stopped
}

// TestServeStartupErrorIsReported: a failure while starting (here the
// queue backend cannot be reached) is a clear error and exit 1, not a
// panic.
func TestServeStartupErrorIsReported(t *testing.T) {
	dir := t.TempDir()
	cfg := writeConfig(t, dir, freePort(t), "127.0.0.1:1", "http://127.0.0.1:1/", "")
	os.WriteFile(cfg, []byte(strings.Replace(mustRead(t, cfg), "queue: {", `queue: {backend: redis, redis: {addr: "127.0.0.1:1"}, `, 1)), 0o600)
	out, err := exec.Command(binary(t), "serve", "--config", cfg).CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 || strings.Contains(string(out), "panic") || !strings.Contains(string(out), "cannot reach Redis") {
		t.Fatalf("serve with Redis unreachable: %v\n%s", err, out)
	}
}
