package main

import (
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mailhook/mailhook/dns/dnstest"
	"github.com/mailhook/mailhook/ingest/rspamd/rspamdtest"
)

// TestServeRspamd runs `mailhook serve` with a real rspamd behind it: the
// verdict reaches the webhook JSON, GTUBE is refused at DATA, a rule routes
// by score, and a stopped rspamd leaves mail flowing with spam.result
// "error" (on_error: accept).
func TestServeRspamd(t *testing.T) {
	rs := rspamdtest.Start(t)
	pub, key, _ := ed25519.GenerateKey(rand.Reader)
	dns := dnstest.Start(t, senderZone(pub))
	rcv := newReceiver(t, testSecret)
	dir := t.TempDir()
	addr := freePort(t)
	cfg := writeConfig(t, dir, addr, dns.Addr(), rcv.srv.URL+"/hook", `  - name: spammy
    match: {rcpt: "sales@example.test", spam_score: ">= 6"}
    actions: [{webhook: tickets}]
  - name: sales
    match: {rcpt: "sales@example.test"}
    actions: [{webhook: tickets}]
`)
	adminAddr := freePort(t)
	body := strings.Replace(mustRead(t, cfg), "lookup_timeout: 2s}",
		`lookup_timeout: 2s, rspamd: {url: "`+rs.URL+`", timeout: 30s}}`, 1)
	body = strings.Replace(body, `admin: {listen: ""}`, `admin: {listen: "`+adminAddr+`"}`, 1)
	os.WriteFile(cfg, []byte(body), 0o600)
	p := startServe(t, cfg, addr)

	msg := func(id, body string) string {
		return "From: Alice <alice@sender.test>\r\nTo: support@example.test\r\nSubject: Printer on fire\r\n" +
			"Message-ID: <" + id + "@sender.test>\r\nDate: " + time.Now().UTC().Format(time.RFC1123Z) + "\r\n\r\nIt is burning.\r\n" + body + "\r\n"
	}
	// An ordinary signed message: a low score in the payload, with the
	// symbols our own SPF, DKIM and DMARC verdicts gave.
	if err := sendMail(addr, nil, "alice@sender.test", []string{"support@example.test"}, signed(t, key, msg("ham", "Regards, Alice"))); err != nil {
		t.Fatalf("ordinary message: %v", err)
	}
	rcv.wait(t, 1, 30*time.Second)
	spam, _ := rcv.events[0]["spam"].(map[string]any)
	if spam["result"] != "ok" || spam["action"] != "no action" {
		t.Fatalf("ordinary message: spam = %v, want result ok, no action", spam)
	}
	if score, _ := spam["score"].(float64); score >= 6 || spam["required_score"].(float64) != 15 {
		t.Errorf("ordinary message: score %v of %v, want low", spam["score"], spam["required_score"])
	}
	var symbols []string
	for _, s := range spam["symbols"].([]any) {
		symbols = append(symbols, s.(map[string]any)["name"].(string))
	}
	for _, want := range []string{"R_SPF_ALLOW", "R_DKIM_ALLOW", "DMARC_POLICY_ALLOW"} {
		if !slices.Contains(symbols, want) {
			t.Errorf("symbols %v lack %s (our verdicts, passed to rspamd)", symbols, want)
		}
	}

	// GTUBE: refused in the dialogue.
	err := sendMail(addr, nil, "alice@sender.test", []string{"support@example.test"}, signed(t, key, msg("gtube", rspamdtest.GTUBE)))
	if smtpCode(err) != 550 || !strings.Contains(err.Error(), "5.7.1") {
		t.Errorf("GTUBE: %v, want 550 5.7.1", err)
	}

	// Routing by score: rspamd's add-header test string scores 6.
	if err := sendMail(addr, nil, "alice@sender.test", []string{"sales@example.test"}, signed(t, key, msg("score6", rspamdtest.GTUBEAddHeader))); err != nil {
		t.Fatalf("score 6 message: %v", err)
	}
	if err := sendMail(addr, nil, "alice@sender.test", []string{"sales@example.test"}, signed(t, key, msg("score-low", "Regards"))); err != nil {
		t.Fatalf("low score message: %v", err)
	}
	rcv.wait(t, 3, 30*time.Second)
	routes := map[string]string{}
	for _, ev := range rcv.events[1:3] {
		routes[ev["message"].(map[string]any)["message_id"].(string)] = ev["route"].(string)
	}
	if routes["score6@sender.test"] != "spammy" || routes["score-low@sender.test"] != "sales" {
		t.Errorf("routes by message = %v, want score6 → spammy, score-low → sales", routes)
	}

	// The metrics count rspamd's actions and the refusal.
	_, metrics := httpGet(t, "http://"+adminAddr+"/metrics", "")
	for _, want := range []string{
		`mailhook_spam_checks_total{action="no action",result="ok"} 2`,
		`mailhook_spam_checks_total{action="reject",result="ok"} 1`,
		`mailhook_spam_checks_total{action="add header",result="ok"} 1`,
		`mailhook_messages_refused_total{reason="spam_reject"} 1`,
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}

	// rspamd stops: mail still flows, flagged spam.result error.
	rs.Stop()
	if err := sendMail(addr, nil, "alice@sender.test", []string{"support@example.test"}, signed(t, key, msg("down", "Regards"))); err != nil {
		t.Fatalf("rspamd down, on_error accept: %v", err)
	}
	rcv.wait(t, 4, 30*time.Second)
	if spam, _ := rcv.events[3]["spam"].(map[string]any); spam["result"] != "error" {
		t.Errorf("rspamd down: spam = %v, want result error", spam)
	}
	if !strings.Contains(p.out.String(), "spam check failed") {
		t.Errorf("no log line for the failed check:\n%s", p.out.String())
	}
	p.stop()
}

func TestCheckConfigNamesBadRspamdURL(t *testing.T) {
	path := filepath.Join(t.TempDir(), "bad.yaml")
	os.WriteFile(path, []byte(`domains: [example.test]
verify: {rspamd: {url: "localhost:11333", on_error: drop}}
routes: [{name: r, match: {spam_score: "about 6"}, actions: [{drop: true}]}]
`), 0o600)
	checkConfigFails(t, path, "verify.rspamd.url:", "localhost:11333", "verify.rspamd.on_error:", "routes[0].match.spam_score:")
}

// checkConfigFails runs check-config on path and wants exit 1 and every
// one of want in its output.
func checkConfigFails(t *testing.T, path string, want ...string) {
	t.Helper()
	out, err := exec.Command(binary(t), "check-config", "--config", path).CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 {
		t.Fatalf("check-config on a bad file: %v, want exit 1\n%s", err, out)
	}
	for _, w := range want {
		if !strings.Contains(string(out), w) {
			t.Errorf("check-config output lacks %q:\n%s", w, out)
		}
	}
}
