package main

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mailhook/mailhook/deliver"
	"github.com/mailhook/mailhook/dns/dnstest"
)

// TestQueueThroughAPI: while serve holds the embedded store, `mailhook
// queue list`, `show` (by every id of the message) and `retry` go through
// the admin API; a retry brings a delivery scheduled an hour away forward.
func TestQueueThroughAPI(t *testing.T) {
	dns := dnstest.Start(t, "")
	rcv := newReceiver(t, testSecret)
	var up atomic.Bool
	rcv.status = func() int {
		if up.Load() {
			return 200
		}
		return 503
	}
	dir := t.TempDir()
	smtpAddr, adminAddr := freePort(t), freePort(t)
	cfg := writeConfig(t, dir, smtpAddr, dns.Addr(), rcv.srv.URL+"/hook", "")
	body := strings.Replace(mustRead(t, cfg), "admin: {listen: \"\"}\n", fmt.Sprintf("admin: {listen: %q, token: \"t0ken\"}\n", adminAddr), 1)
	body = strings.Replace(body, "schedule: [200ms, 500ms, 1s]", "schedule: [1h]", 1)
	os.WriteFile(cfg, []byte(body), 0o600)
	startServe(t, cfg, smtpAddr)

	if err := sendMail(smtpAddr, nil, "a@sender.test", []string{"support@example.test"}, []byte("From: a@sender.test\r\nMessage-ID: <one@sender.test>\r\nSubject: retry me\r\n\r\nx\r\n")); err != nil {
		t.Fatal(err)
	}
	var jobs []deliver.Job
	waitFor(t, 20*time.Second, func() bool {
		out := run1(t, "queue", "list", "--state", "scheduled", "--json", "--config", cfg)
		return json.Unmarshal([]byte(out), &jobs) == nil && len(jobs) == 1 && jobs[0].Attempts == 1
	})
	job := jobs[0]
	out := run1(t, "queue", "show", job.ID, "--config", cfg)
	for _, want := range []string{"message     " + job.MsgID, "subject     retry me", "in the queue: scheduled, next attempt", "503", " ms", "<- " + job.ID} {
		if !strings.Contains(out, want) {
			t.Errorf("queue show JOB lacks %q:\n%s", want, out)
		}
	}

	up.Store(true)
	if out := run1(t, "queue", "retry", "--all", "--config", cfg); !strings.Contains(out, "1 scheduled job(s): next attempt now") {
		t.Errorf("queue retry --all:\n%s", out)
	}
	rcv.wait(t, 1, 20*time.Second)
	stable, _ := rcv.events[0]["id"].(string)
	if webhookID := rcv.hdrs[0].Get("webhook-id"); webhookID != job.ID {
		t.Errorf("webhook-id %q, job %q", webhookID, job.ID)
	}
	// Every id finds the message: msg_id, the JSON's id, the webhook-id
	// (the job id), and the Message-ID through the dashboard's search.
	for _, id := range []string{job.MsgID, stable, job.ID} {
		var d struct {
			ID   string `json:"id"`
			Jobs []struct {
				ID string `json:"id"`
			} `json:"jobs"`
		}
		waitFor(t, 10*time.Second, func() bool {
			out, err := exec.Command(binary(t), "queue", "show", id, "--json", "--config", cfg).Output()
			return err == nil && json.Unmarshal(out, &d) == nil && d.ID == job.MsgID && len(d.Jobs) == 1 && d.Jobs[0].ID == job.ID
		})
		if code, b := httpGet(t, "http://"+adminAddr+"/api/messages/"+id, "t0ken"); code != 200 || !strings.Contains(b, job.MsgID) {
			t.Errorf("GET /api/messages/%s = %d %s", id, code, b)
		}
	}
	for _, q := range []string{"one@sender.test", "RETRY", "a@sender.test", stable} {
		code, b := httpGet(t, "http://"+adminAddr+"/api/messages?q="+q, "t0ken")
		if code != 200 || !strings.Contains(b, job.MsgID) {
			t.Errorf("search %q = %d %s", q, code, b)
		}
	}
	if out, err := exec.Command(binary(t), "queue", "retry", job.ID, "--config", cfg).CombinedOutput(); err == nil || !strings.Contains(string(out), "no job waiting") {
		t.Errorf("queue retry of a delivered message's job: %v %s", err, out)
	}
}

// TestAttachmentURLWithoutPublicURL: without admin.public_url, an
// attachment over the inline limit gets a URL under the admin listener
// (and startup and check-config warn); without an admin listener either,
// the payload's parse_warnings says the attachment has no url.
func TestAttachmentURLWithoutPublicURL(t *testing.T) {
	dns := dnstest.Start(t, "")
	attachment := strings.Repeat("0123456789abcdef", 512) // 8 KiB
	msg := "From: a@sender.test\r\nTo: support@example.test\r\nSubject: big\r\nMIME-Version: 1.0\r\n" +
		"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nsee attached\r\n" +
		"--b\r\nContent-Type: application/octet-stream\r\nContent-Disposition: attachment; filename=\"data.bin\"\r\nContent-Transfer-Encoding: base64\r\n\r\n" +
		wrap76(base64.StdEncoding.EncodeToString([]byte(attachment))) + "--b--\r\n"
	for _, withAdmin := range []bool{true, false} {
		t.Run(fmt.Sprintf("admin=%v", withAdmin), func(t *testing.T) {
			rcv := newReceiver(t, testSecret)
			dir := t.TempDir()
			smtpAddr, adminAddr := freePort(t), freePort(t)
			cfg := writeConfig(t, dir, smtpAddr, dns.Addr(), rcv.srv.URL+"/hook", "parse: {inline_limit: 1024}\n")
			if withAdmin {
				os.WriteFile(cfg, []byte(strings.Replace(mustRead(t, cfg), "admin: {listen: \"\"}\n", fmt.Sprintf("admin: {listen: %q}\n", adminAddr), 1)), 0o600)
			}
			out := run1(t, "check-config", "--config", cfg)
			p := startServe(t, cfg, smtpAddr)
			if err := sendMail(smtpAddr, nil, "a@sender.test", []string{"support@example.test"}, []byte(msg)); err != nil {
				t.Fatal(err)
			}
			rcv.wait(t, 1, 20*time.Second)
			m := rcv.events[0]["message"].(map[string]any)
			att := m["attachments"].([]any)[0].(map[string]any)
			url, _ := att["url"].(string)
			warnings := fmt.Sprint(m["parse_warnings"])
			if withAdmin {
				if !strings.HasPrefix(url, "http://"+adminAddr+"/attachments/") {
					t.Fatalf("attachment url %q, want one under the admin listener %s", url, adminAddr)
				}
				if code, got := httpGet(t, url, ""); code != 200 || got != attachment {
					t.Errorf("GET %s = %d, %d bytes", url, code, len(got))
				}
				if !strings.Contains(out, "admin.public_url is not set") || !strings.Contains(p.out.String(), "admin.public_url is not set") {
					t.Errorf("no warning in check-config or the log:\n%s\n%s", out, p.out.String())
				}
			} else {
				if url != "" || !strings.Contains(warnings, `attachment 0 ("data.bin", 8192 bytes) is over parse.inline_limit and has no url`) {
					t.Errorf("url %q, parse_warnings %s", url, warnings)
				}
				if !strings.Contains(out, "neither content nor url") {
					t.Errorf("check-config does not warn:\n%s", out)
				}
			}
			p.stop()
		})
	}
}

// TestReloadNamesRestartKeys: a reload applies routes and logs the changed
// keys it cannot apply; check-config, asking the running server, says
// which keys of the file differ from what runs.
func TestReloadNamesRestartKeys(t *testing.T) {
	dns := dnstest.Start(t, "")
	rcv := newReceiver(t, testSecret)
	dir := t.TempDir()
	smtpAddr, adminAddr := freePort(t), freePort(t)
	cfg := writeConfig(t, dir, smtpAddr, dns.Addr(), rcv.srv.URL+"/hook", "")
	body := strings.Replace(mustRead(t, cfg), "admin: {listen: \"\"}\n", fmt.Sprintf("admin: {listen: %q, token: \"t0ken\"}\n", adminAddr), 1)
	os.WriteFile(cfg, []byte(body), 0o600)
	if out := run1(t, "check-config", "--config", cfg); !strings.Contains(out, "no server answers") {
		t.Errorf("check-config without a server:\n%s", out)
	}
	p := startServe(t, cfg, smtpAddr)
	if out := run1(t, "check-config", "--config", cfg); !strings.Contains(out, "runs this config") {
		t.Errorf("check-config of the running file:\n%s", out)
	}
	// A new route (reloadable) and a new recipient limit (restart).
	body = strings.Replace(body, "smtp: {listen:", "smtp: {max_recipients: 7, listen:", 1) +
		"  - name: sales\n    match: {rcpt: \"sales@example.test\"}\n    actions: [{webhook: tickets}]\n"
	os.WriteFile(cfg, []byte(body), 0o600)
	waitFor(t, 10*time.Second, func() bool { return strings.Contains(p.out.String(), "need a restart") })
	if log := p.out.String(); !strings.Contains(log, "keys=smtp.max_recipients") {
		t.Errorf("the reload log does not name smtp.max_recipients:\n%s", log)
	}
	out := run1(t, "check-config", "--config", cfg)
	if !strings.Contains(out, "differs in 1 key(s)") || !strings.Contains(out, "need a restart: smtp.max_recipients") || strings.Contains(out, "routes") && strings.Contains(out, "reload (SIGHUP") {
		t.Errorf("check-config after the reload:\n%s", out)
	}
	// The token changed in the file: the server still has the old one.
	os.WriteFile(cfg, []byte(strings.Replace(body, "t0ken", "n3w-t0ken", 1)), 0o600)
	if out := run1(t, "check-config", "--config", cfg); !strings.Contains(out, "refuses this file's admin.token") {
		t.Errorf("check-config with a new token:\n%s", out)
	}
	p.stop()
}
