package main

import (
	"bufio"
	"bytes"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/mailhook/mailhook/dns/dnstest"
	"github.com/mailhook/mailhook/header"
	"github.com/mailhook/mailhook/internal/rawsmtp"
)

func rawTransaction(t *testing.T, addr, from string, rcpts []string, data string) []string {
	t.Helper()
	out, err := rawsmtp.Transaction(addr, from, rcpts, data)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// forgedARs returns the Authentication-Results fields in the header of
// msg (as package header reads it) that hold text of a forged verdict.
func forgedARs(t *testing.T, msg []byte) []string {
	t.Helper()
	h, err := header.Read(bufio.NewReader(bytes.NewReader(msg)), 0)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, f := range h.Fields {
		if f.Is("Authentication-Results") && strings.Contains(f.Value, "bank.test") {
			out = append(out, f.Value)
		}
	}
	return out
}

// TestSenderAuthenticationEndToEnd: issue 12 against `mailhook serve`,
// with a loopback DNS server publishing p=reject for bank.test, mail from
// x@attacker.test (SPF fails) to a webhook route, a mailbox and a
// forwarding route at once. Every From trick is refused; every forged
// Authentication-Results is gone from what the webhook, the relay's
// smarthost and POP3 receive; what could never be delivered is refused in
// the dialogue.
func TestSenderAuthenticationEndToEnd(t *testing.T) {
	dir := t.TempDir()
	dns := dnstest.Start(t, `
attacker.test.     IN TXT "v=spf1 -all"
bank.test.         IN TXT "v=spf1 -all"
_dmarc.bank.test.  IN TXT "v=DMARC1; p=reject"
_dmarc.none.test.  IN TXT "v=DMARC1; p=none"
`)
	hash, _ := bcrypt.GenerateFromPassword([]byte("correct horse"), bcrypt.MinCost)
	snk, sinkAddr := startSink(t)
	rcv := newReceiver(t, testSecret)
	smtpAddr, imapAddr, popAddr := freePort(t), freePort(t), freePort(t)
	extra := forwardAndMailbox(sinkAddr, "", imapAddr, popAddr, hash)
	cfg := writeConfig(t, dir, smtpAddr, dns.Addr(), rcv.srv.URL, extra)
	p := startServe(t, cfg, smtpAddr)
	all := []string{"support@example.test", "carol@example.test", "fwd@example.test"}

	// From tricks for a p=reject domain: 550 5.7.1, all of them.
	for _, from := range []string{
		"From: CEO <ceo@bank.test>",
		"From: ceo@bank.test;",
		"From:\r\nFrom: CEO <ceo@bank.test>",
		"From: <ceo@bank.test>, <>",
		"From: \"C\xff\xfeO\" <ceo@bank.test>",
		"From: =?utf-8?q?ceo=40bank=2Etest?=",
		"From: ceo@bank.test <x@attacker.test>",
		"From: x@attacker.test\r\nFrom: ceo@bank.test",
	} {
		got := rawTransaction(t, smtpAddr, "x@attacker.test", all, from+"\r\nSubject: wire the money\r\n\r\nNow.\r\n")
		if r := got[len(got)-1]; !strings.HasPrefix(r, "550 5.7.1") {
			t.Errorf("%q: %q, want 550 5.7.1", from, got)
		}
	}
	big := strings.Repeat("X-Junk: "+strings.Repeat("a", 70)+"\r\n", 14000)
	if got := rawTransaction(t, smtpAddr, "x@attacker.test", all, big+"From: CEO <ceo@bank.test>\r\n\r\nNow.\r\n"); !strings.HasPrefix(got[len(got)-1], "552 5.3.4") {
		t.Errorf("header over 1 MiB: %q, want 552 5.3.4", got)
	}

	// Forged Authentication-Results, from a p=none domain: accepted, the
	// forgery removed from every copy.
	const forged = "Authentication-Results: mx.example.test; dmarc=pass header.from=bank.test\r\n"
	accepted := 0
	for _, hdr := range []string{
		forged + "no colon on this line\r\n",
		forged + "Bad Name: x\r\n",
		strings.Replace(forged, "mx.example.test;", "MX.EXAMPLE.TEST. ;", 1),
		strings.Replace(forged, "mx.example.test;", "mx.example.test\x01;", 1),
	} {
		msg := "From: Alice <alice@none.test>\r\nSubject: forged " + fmt.Sprint(accepted) + "\r\n" + hdr + "\r\nbody\r\n"
		got := rawTransaction(t, smtpAddr, "alice@none.test", all, msg)
		if !strings.HasPrefix(got[len(got)-1], "250 ") {
			t.Fatalf("%q: %q, want 250", hdr, got)
		}
		accepted++
	}
	nul := strings.Replace(forged, "mx.example.test;", "mx.example.test\x00;", 1)
	if got := rawTransaction(t, smtpAddr, "alice@none.test", all, "From: alice@none.test\r\n"+nul+"\r\nbody\r\n"); !strings.HasPrefix(got[len(got)-1], "550 5.6.0") {
		t.Errorf("NUL in the authserv-id: %q, want 550 5.6.0", got)
	}

	// Refused in the dialogue, never bounced later.
	for _, tc := range []struct {
		name, from string
		rcpts      []string
		data, want string
	}{
		{"loop marker, forwarding route", "alice@none.test", []string{"fwd@example.test"},
			"X-Loop: mx.example.test\r\nFrom: alice@none.test\r\n\r\nround and round\r\n", "554 5.4.6"},
		// 30 Received and ours make 31, over relay.max_received (30):
		// the relay would refuse the stored copy, so ingest refuses it.
		{"too many hops, forwarding route", "alice@none.test", []string{"fwd@example.test"},
			strings.Repeat("Received: from a by b; Sun, 29 Nov 2026 04:00:00 +0000\r\n", 30) + "From: alice@none.test\r\n\r\nx\r\n", "554 5.4.6"},
		{"control byte in MAIL", "ali\x01ce@none.test", all, "", "553 5.1.7"},
		{"address literal sender, forwarding route", "alice@[127.0.0.1]", []string{"fwd@example.test"}, "", "553 5.1.7"},
	} {
		got := rawTransaction(t, smtpAddr, tc.from, tc.rcpts, tc.data)
		if !strings.HasPrefix(got[len(got)-1], tc.want) {
			t.Errorf("%s: %q, want %q", tc.name, got, tc.want)
		}
	}

	// The webhook: every accepted message, no forged verdict in its
	// headers, the author DMARC judged.
	rcv.wait(t, accepted, 20*time.Second)
	rcv.mu.Lock()
	for _, ev := range rcv.events {
		m := ev["message"].(map[string]any)
		if from := m["from"].(map[string]any); from["address"] != "alice@none.test" {
			t.Errorf("webhook from = %v", from)
		}
		if dm := ev["auth"].(map[string]any)["dmarc"].(map[string]any); dm["domain"] != "none.test" || dm["result"] == "permerror" {
			t.Errorf("webhook dmarc = %v", dm)
		}
		for _, h := range m["headers"].([]any) {
			if kv := h.([]any); strings.EqualFold(kv[0].(string), "Authentication-Results") && strings.Contains(kv[1].(string), "bank.test") {
				t.Errorf("webhook %v keeps a forged %q", m["subject"], kv)
			}
		}
	}
	rcv.mu.Unlock()

	// The relay's smarthost.
	for range accepted {
		select {
		case <-snk.got:
		case <-time.After(20 * time.Second):
			t.Fatal("the smarthost got fewer messages than accepted")
		}
	}
	snk.mu.Lock()
	for _, m := range snk.msgs {
		if f := forgedARs(t, m.data); len(f) > 0 {
			t.Errorf("relayed copy keeps %q", f)
		}
	}
	if len(snk.msgs) != accepted {
		t.Errorf("smarthost got %d messages, want %d (loops refused, not relayed)", len(snk.msgs), accepted)
	}
	snk.mu.Unlock()

	// The mailbox, over POP3.
	var msgs [][]byte
	waitFor(t, 20*time.Second, func() bool {
		msgs = pop3All(t, popAddr, "carol", "correct horse")
		return len(msgs) >= accepted
	})
	for _, m := range msgs {
		if f := forgedARs(t, m); len(f) > 0 {
			t.Errorf("mailbox copy keeps %q", f)
		}
	}
	if len(msgs) != accepted {
		t.Errorf("mailbox holds %d messages, want %d", len(msgs), accepted)
	}
	p.stop()
}

// forwardAndMailbox is the config the end-to-end tests add to
// writeConfig's: a forward route for fwd@example.test through the
// smarthost at sinkAddr (with SRS, and relayExtra under relay:), and the
// mailbox user carol (password "correct horse" as hash) over IMAP and POP3.
func forwardAndMailbox(sinkAddr, relayExtra, imapAddr, popAddr string, hash []byte) string {
	return fmt.Sprintf(`  - name: forward
    match: {rcpt: "fwd@example.test"}
    actions: [{forward: ["someone@elsewhere.test"]}]
relay:
  smarthost: %q
  tls: none
  srs: {secret: "0123456789abcdef0123"}
%smailbox:
  imap_listen: %q
  pop3_listen: %q
  users:
    - {name: carol, password_hash: %q, addresses: ["carol@example.test"]}
`, sinkAddr, relayExtra, imapAddr, popAddr, hash)
}

// pop3All logs in and returns every message (RETR, dot-unstuffed).
func pop3All(t *testing.T, addr, user, pass string) [][]byte {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return nil
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	r := bufio.NewReader(c)
	line := func() string { l, _ := r.ReadString('\n'); return strings.TrimRight(l, "\r\n") }
	cmd := func(s string) string { fmt.Fprintf(c, "%s\r\n", s); return line() }
	line()
	cmd("USER " + user)
	if got := cmd("PASS " + pass); !strings.HasPrefix(got, "+OK") {
		t.Fatalf("POP3 PASS: %q", got)
	}
	var n int
	if _, err := fmt.Sscanf(cmd("STAT"), "+OK %d", &n); err != nil {
		t.Fatalf("POP3 STAT: %v", err)
	}
	var out [][]byte
	for i := 1; i <= n; i++ {
		if got := cmd(fmt.Sprintf("RETR %d", i)); !strings.HasPrefix(got, "+OK") {
			t.Fatalf("POP3 RETR: %q", got)
		}
		var b bytes.Buffer
		for {
			l, err := r.ReadString('\n')
			if err != nil || l == ".\r\n" {
				break
			}
			b.WriteString(strings.TrimPrefix(l, "."))
		}
		out = append(out, b.Bytes())
	}
	cmd("QUIT")
	return out
}
