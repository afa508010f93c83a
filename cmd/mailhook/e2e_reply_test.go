package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/mailhook/mailhook/dns/dnstest"
	"github.com/mailhook/mailhook/internal/rawsmtp"
	"github.com/mailhook/mailhook/replyaddr"
)

const (
	replyNew = "reply-secret-new-0123456789abcdef"
	replyOld = "reply-secret-old-0123456789abcdef"
)

// TestReplyAddressesAndSyncEndToEnd runs the binary with signed reply
// addresses and a sync webhook: addresses minted by the command line, the
// admin API and the Go package (under the secret being rotated out) arrive
// with reply {thread, valid} in the JSON; tampered, expired, wrong-domain
// and unknown-secret ones are refused at RCPT; plus-addressing still
// works; the sync endpoint's refusal is the sender's 550, and its attempts
// show in the metrics and the message history.
func TestReplyAddressesAndSyncEndToEnd(t *testing.T) {
	dns := dnstest.Start(t, "")
	rcv := newReceiver(t, testSecret)
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		if strings.Contains(string(b), "refuse me") {
			w.Header().Set("Content-Type", "text/plain")
			w.WriteHeader(422)
			io.WriteString(w, "No such ticket: 4711\n")
			return
		}
		w.WriteHeader(204)
	}))
	t.Cleanup(app.Close)
	dir := t.TempDir()
	smtpAddr, adminAddr := freePort(t), freePort(t)
	cfg := writeConfig(t, dir, smtpAddr, dns.Addr(), rcv.srv.URL+"/hook", `  - name: bad-replies
    match: {rcpt: ["reply@example.test", "reply@other.test"], reply: invalid}
    actions: [{reject: "550 5.1.1 This reply address is not valid"}]
  - name: replies
    match: {rcpt: "reply@example.test", reply: valid}
    actions: [{webhook: tickets}]
  - name: app
    match: {rcpt: "app@example.test"}
    actions: [{webhook: app}]
`)
	body := mustRead(t, cfg)
	body = strings.Replace(body, "domains: [example.test]", "domains: [example.test, other.test]", 1)
	body = strings.Replace(body, "admin: {listen: \"\"}\n", "", 1)
	body = strings.Replace(body, "webhooks:\n", fmt.Sprintf("webhooks:\n  app: {url: %q, secret: %q, allow_private: true, mode: sync, sync_timeout: 5s}\n", app.URL, testSecret), 1)
	body += fmt.Sprintf("admin: {listen: %q, token: \"t0ken\"}\nreply: {secrets: [%q, %q], domain: example.test, ttl: 720h}\n", adminAddr, replyNew, replyOld)
	if err := os.WriteFile(cfg, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	startServe(t, cfg, smtpAddr)

	// Minted three ways.
	cliAddr := strings.TrimSpace(run1(t, "reply-address", "--config", cfg, "--thread", "cli-1", "--ttl", "30d"))
	req, _ := http.NewRequest("POST", "http://"+adminAddr+"/api/reply-addresses", strings.NewReader(`{"thread": "api-1", "ttl": "2w"}`))
	req.Header.Set("Authorization", "Bearer t0ken")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var minted replyaddr.Minted
	json.NewDecoder(resp.Body).Decode(&minted)
	resp.Body.Close()
	if resp.StatusCode != 201 || minted.ExpiresAt.IsZero() {
		t.Fatalf("POST /api/reply-addresses = %d %+v", resp.StatusCode, minted)
	}
	apiAddr := minted.Address
	pkg := func(secret string, now time.Time) *replyaddr.Signer {
		s, err := replyaddr.New(replyaddr.Options{Secrets: []string{secret}, Domain: "example.test", Now: func() time.Time { return now }})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	mint := func(s *replyaddr.Signer, thread string, ttl time.Duration) string {
		m, err := s.Mint(thread, ttl)
		if err != nil {
			t.Fatal(err)
		}
		return m.Address
	}
	pkgAddr := mint(pkg(replyOld, time.Now()), "pkg-1", 0) // the secret being rotated out still verifies

	// send returns the replies to RCPT and to the end of data ("" when
	// the recipient was refused).
	type result struct {
		Rcpt []string
		Data string
	}
	send := func(rcpt, subject string) result {
		t.Helper()
		msg := fmt.Sprintf("From: a@sender.test\r\nTo: %s\r\nSubject: %s\r\nMessage-ID: <%d@sender.test>\r\n\r\nThanks!", rcpt, subject, time.Now().UnixNano())
		replies, err := rawsmtp.Transaction(smtpAddr, "a@sender.test", []string{rcpt}, msg)
		if err != nil || len(replies) < 2 {
			t.Fatalf("%v %q", err, replies)
		}
		res := result{Rcpt: replies[1:2]}
		if len(replies) > 2 {
			res.Data = replies[2]
		}
		return res
	}
	queuedAs := regexp.MustCompile(`^250 2\.0\.0 Ok: queued as (\S+)$`)
	valid := []struct{ addr, thread string }{{cliAddr, "cli-1"}, {apiAddr, "api-1"}, {pkgAddr, "pkg-1"}}
	ids := map[string]string{} // msg_id -> thread
	for _, v := range valid {
		res := send(v.addr, "reply to "+v.thread)
		m := queuedAs.FindStringSubmatch(res.Data)
		if m == nil {
			t.Fatalf("%s (%s): rcpt %q, data %q; want 250 queued as", v.thread, v.addr, res.Rcpt, res.Data)
		}
		ids[m[1]] = v.thread
	}
	plus := send("support+billing@example.test", "plus")
	if queuedAs.FindStringSubmatch(plus.Data) == nil {
		t.Fatalf("plus address: %q", plus.Data)
	}

	tampered := strings.Replace(cliAddr, "cli-1", "cli-2", 1)
	expired := mint(pkg(replyNew, time.Now().Add(-48*time.Hour)), "old-1", 24*time.Hour)
	wrongDomain := strings.Replace(apiAddr, "@example.test", "@other.test", 1)
	unknownSecret := mint(pkg("some-other-secret-0123456789", time.Now()), "pkg-1", 0)
	for name, a := range map[string]string{"tampered": tampered, "expired": expired, "wrong domain": wrongDomain, "unknown secret": unknownSecret} {
		res := send(a, name)
		if len(res.Rcpt) != 1 || res.Rcpt[0] != "550 5.1.1 This reply address is not valid" || res.Data != "" {
			t.Errorf("%s (%s): rcpt %q, data %q; want 550 5.1.1 at RCPT", name, a, res.Rcpt, res.Data)
		}
	}

	rcv.wait(t, 4, 20*time.Second)
	rcv.mu.Lock()
	events := append([]map[string]any(nil), rcv.events...)
	hookID := rcv.hdrs[0].Get("webhook-id")
	rcv.mu.Unlock()
	// The API finds a message by the webhook-id of a delivery and by the
	// JSON id, as by the msg_id of the SMTP reply.
	for _, id := range []string{hookID, events[0]["id"].(string)} {
		waitFor(t, 10*time.Second, func() bool {
			code, detail := httpGet(t, "http://"+adminAddr+"/api/messages/"+id, "t0ken")
			return code == 200 && strings.Contains(detail, fmt.Sprintf(`"id": %q`, events[0]["msg_id"]))
		})
	}
	if len(events) != 4 {
		t.Errorf("receiver got %d events, want 4 (3 replies, 1 plus address)", len(events))
	}
	for _, ev := range events {
		msg := ev["message"].(map[string]any)
		id, _ := ev["msg_id"].(string)
		if msg["subject"] == "plus" {
			if msg["rcpt_tag"] != "billing" || ev["reply"] != nil {
				t.Errorf("plus address event: rcpt_tag %v, reply %v", msg["rcpt_tag"], ev["reply"])
			}
			continue
		}
		thread, ok := ids[id]
		if !ok {
			t.Errorf("event msg_id %q is none of the ids in the 250 replies %v", id, ids)
			continue
		}
		want := map[string]any{"thread": thread, "valid": true, "expired": false}
		if fmt.Sprint(ev["reply"]) != fmt.Sprint(want) {
			t.Errorf("%s: reply = %v, want %v", thread, ev["reply"], want)
		}
		if tag, _ := msg["rcpt_tag"].(string); !strings.HasPrefix(tag, thread+".") {
			t.Errorf("%s: rcpt_tag = %q", thread, tag)
		}
	}

	// The sync endpoint: its refusal is the sender's reply, nothing queued.
	if res := send("app@example.test", "refuse me"); res.Data != "550 5.7.1 No such ticket: 4711" {
		t.Errorf("sync refusal: data %q", res.Data)
	}
	res := send("app@example.test", "hello")
	m := queuedAs.FindStringSubmatch(res.Data)
	if m == nil {
		t.Fatalf("sync 204: %q", res.Data)
	}
	waitFor(t, 10*time.Second, func() bool {
		_, metrics := httpGet(t, "http://"+adminAddr+"/metrics", "")
		return strings.Contains(metrics, `mailhook_delivery_attempts_total{kind="webhook",outcome="dead",status_class="4xx",target="app"} 1`) &&
			strings.Contains(metrics, `mailhook_delivery_attempts_total{kind="webhook",outcome="delivered",status_class="2xx",target="app"} 1`)
	})
	waitFor(t, 10*time.Second, func() bool {
		code, refused := httpGet(t, "http://"+adminAddr+"/api/refused", "t0ken")
		return code == 200 && strings.Contains(refused, `"reason": "No such ticket: 4711"`) && strings.Contains(refused, `"stage": "data"`)
	})
	waitFor(t, 10*time.Second, func() bool {
		code, detail := httpGet(t, "http://"+adminAddr+"/api/messages/"+m[1], "t0ken")
		return code == 200 && strings.Contains(detail, `"target": "app"`) && regexp.MustCompile(`"status":\s*204`).MatchString(detail) &&
			strings.Contains(detail, `"status": "delivered"`)
	})
}
