package main

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"reflect"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mailhook/mailhook/dns/dnstest"
)

func httpGet(t *testing.T, url, token string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	c := &http.Client{Timeout: 10 * time.Second}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestAdminEndToEnd: /metrics moves under traffic, the API shows the
// message with its rule and attempts, an attachment over the inline limit
// arrives as a signed URL that works, and a bad config on SIGHUP is refused
// while the old one keeps serving.
func TestAdminEndToEnd(t *testing.T) {
	dns := dnstest.Start(t, "")
	rcv := newReceiver(t, testSecret)
	dir := t.TempDir()
	smtpAddr, adminAddr := freePort(t), freePort(t)
	extra := fmt.Sprintf("admin: {listen: %q, token: \"t0ken\", public_url: \"http://%s\"}\nparse: {inline_limit: 1024}\n", adminAddr, adminAddr)
	cfg := writeConfig(t, dir, smtpAddr, dns.Addr(), rcv.srv.URL+"/hook", "")
	body := strings.Replace(mustRead(t, cfg), "admin: {listen: \"\"}\n", "", 1) + extra
	os.WriteFile(cfg, []byte(body), 0o600)
	p := startServe(t, cfg, smtpAddr)

	if code, _ := httpGet(t, "http://"+adminAddr+"/readyz", ""); code != 200 {
		t.Errorf("/readyz = %d", code)
	}
	attachment := strings.Repeat("0123456789abcdef", 512) // 8 KiB, over the 1 KiB inline limit
	msg := "From: a@sender.test\r\nTo: support@example.test\r\nSubject: with a big attachment\r\nMIME-Version: 1.0\r\n" +
		"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nsee attached\r\n" +
		"--b\r\nContent-Type: application/octet-stream\r\nContent-Disposition: attachment; filename=\"data.bin\"\r\nContent-Transfer-Encoding: base64\r\n\r\n" +
		wrap76(base64.StdEncoding.EncodeToString([]byte(attachment))) + "--b--\r\n"
	if err := sendMail(smtpAddr, nil, "a@sender.test", []string{"support@example.test"}, []byte(msg)); err != nil {
		t.Fatal(err)
	}
	sendMail(smtpAddr, nil, "a@sender.test", []string{"victim@other.test"}, []byte(msg)) // refused
	rcv.wait(t, 1, 20*time.Second)

	atts := rcv.events[0]["message"].(map[string]any)["attachments"].([]any)
	if len(atts) != 1 {
		t.Fatalf("attachments = %v", atts)
	}
	att := atts[0].(map[string]any)
	url, _ := att["url"].(string)
	if _, inline := att["content"]; inline || !strings.HasPrefix(url, "http://"+adminAddr+"/attachments/") {
		t.Fatalf("attachment over the inline limit: content present %v, url %q", inline, url)
	}
	if code, got := httpGet(t, url, ""); code != 200 || got != attachment {
		t.Errorf("GET attachment url = %d, %d bytes", code, len(got))
	}
	if code, _ := httpGet(t, url+"0", ""); code != 403 {
		t.Errorf("tampered attachment url = %d, want 403", code)
	}

	// Metrics moved.
	waitFor(t, 10*time.Second, func() bool {
		_, m := httpGet(t, "http://"+adminAddr+"/metrics", "")
		return strings.Contains(m, `mailhook_messages_accepted_total{route="tickets"} 1`) &&
			strings.Contains(m, `mailhook_messages_refused_total{reason="relay_denied"} 1`) &&
			strings.Contains(m, "mailhook_delivery_attempts_total{")
	})
	// The API: refused without the token, the message with the token.
	if code, _ := httpGet(t, "http://"+adminAddr+"/api/messages", ""); code != 401 {
		t.Errorf("API without token = %d, want 401", code)
	}
	var page struct {
		Messages []map[string]any `json:"messages"`
	}
	waitFor(t, 10*time.Second, func() bool {
		code, b := httpGet(t, "http://"+adminAddr+"/api/messages", "t0ken")
		if code != 200 || json.Unmarshal([]byte(b), &page) != nil || len(page.Messages) == 0 {
			return false
		}
		return page.Messages[0]["status"] == "delivered"
	})
	id, _ := page.Messages[0]["id"].(string)
	code, detail := httpGet(t, "http://"+adminAddr+"/api/messages/"+id, "t0ken")
	if code != 200 || !strings.Contains(detail, `"tickets"`) || !regexp.MustCompile(`"status":\s*200`).MatchString(detail) {
		t.Errorf("message detail = %d %s", code, detail[:min(500, len(detail))])
	}
	// The webhook body the history shows is the one the receiver got
	// (recorded by the attempt, after it).
	var sent map[string]any
	waitFor(t, 10*time.Second, func() bool {
		var d struct {
			Jobs []struct {
				Sent map[string]any `json:"sent"`
			} `json:"jobs"`
		}
		_, b := httpGet(t, "http://"+adminAddr+"/api/messages/"+id, "t0ken")
		if json.Unmarshal([]byte(b), &d) != nil || len(d.Jobs) != 1 {
			return false
		}
		sent = d.Jobs[0].Sent
		return sent != nil
	})
	if !reflect.DeepEqual(sent, rcv.events[0]) {
		t.Errorf("history's webhook body = %v\nwant what the receiver got: %v", sent, rcv.events[0])
	}

	// `mailhook queue` while the server holds the embedded store: through
	// the admin API.
	if out := run1(t, "queue", "stats", "--config", cfg); !strings.Contains(out, "ready 0") || !strings.Contains(out, "dead 0") {
		t.Errorf("queue stats through the API:\n%s", out)
	}
	if out, err := exec.Command(binary(t), "queue", "list", "--config", cfg).CombinedOutput(); err != nil || !strings.Contains(string(out), "JOB") {
		t.Errorf("queue list through the API: %v\n%s", err, out)
	}

	// A bad config on SIGHUP is refused; the old one keeps serving.
	os.WriteFile(cfg, []byte(body+"routes: [{name: broken, actions: [{webhook: ghost}]}]\n"), 0o600)
	p.cmd.Process.Signal(syscall.SIGHUP)
	waitFor(t, 10*time.Second, func() bool { return strings.Contains(p.out.String(), "reload refused") })
	if err := sendMail(smtpAddr, nil, "a@sender.test", []string{"support@example.test"}, []byte("From: a@sender.test\r\nSubject: after reload\r\n\r\nx\r\n")); err != nil {
		t.Errorf("after a refused reload: %v", err)
	}
	rcv.wait(t, 2, 20*time.Second)
	p.stop()
}

func wrap76(s string) string {
	var b strings.Builder
	for len(s) > 76 {
		b.WriteString(s[:76] + "\r\n")
		s = s[76:]
	}
	return b.String() + s + "\r\n"
}

// TestReloadOnFileChange: editing the config file (no signal) swaps the
// webhook endpoint and the routes; mail goes to the new endpoint.
func TestReloadOnFileChange(t *testing.T) {
	dns := dnstest.Start(t, "")
	first, second := newReceiver(t, testSecret), newReceiver(t, testSecret)
	dir := t.TempDir()
	addr := freePort(t)
	cfg := writeConfig(t, dir, addr, dns.Addr(), first.srv.URL+"/hook", "")
	p := startServe(t, cfg, addr)
	if err := sendMail(addr, nil, "a@sender.test", []string{"support@example.test"}, []byte("From: a@sender.test\r\nSubject: one\r\n\r\nx\r\n")); err != nil {
		t.Fatal(err)
	}
	first.wait(t, 1, 20*time.Second)
	// New endpoint, and a new route for sales@.
	body := strings.Replace(mustRead(t, cfg), first.srv.URL, second.srv.URL, 1) +
		"  - name: sales\n    match: {rcpt: \"sales@example.test\"}\n    actions: [{webhook: tickets}]\n"
	os.WriteFile(cfg, []byte(body), 0o600)
	waitFor(t, 10*time.Second, func() bool { return strings.Contains(p.out.String(), "config reloaded") })
	if err := sendMail(addr, nil, "a@sender.test", []string{"sales@example.test"}, []byte("From: a@sender.test\r\nSubject: two\r\n\r\nx\r\n")); err != nil {
		t.Fatalf("the new route: %v", err)
	}
	second.wait(t, 1, 20*time.Second)
	if got := second.events[0]["route"]; got != "sales" {
		t.Errorf("route = %v, want sales", got)
	}
	p.stop()
}
