package webhook_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/mailhook/mailhook/config"
	"github.com/mailhook/mailhook/deliver"
	"github.com/mailhook/mailhook/deliver/pebbleq"
	"github.com/mailhook/mailhook/deliver/webhook"
	"github.com/mailhook/mailhook/inbound"
	"github.com/mailhook/mailhook/ingest"
	"github.com/mailhook/mailhook/internal/rawsmtp"
	"github.com/mailhook/mailhook/parse"
	"github.com/mailhook/mailhook/route"
)

const syncSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

// endpoint is a real HTTP endpoint that verifies the signature and answers
// with its handler; it records the webhook-ids it was sent.
type endpoint struct {
	srv *httptest.Server
	mu  sync.Mutex
	ids []string
}

func newEndpoint(t *testing.T, answer func(w http.ResponseWriter, r *http.Request)) *endpoint {
	t.Helper()
	wh, err := standardwebhooks.NewWebhook(syncSecret)
	if err != nil {
		t.Fatal(err)
	}
	e := &endpoint{}
	e.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if err := wh.Verify(body, r.Header); err != nil {
			t.Errorf("bad signature: %v", err)
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		e.mu.Lock()
		e.ids = append(e.ids, r.Header.Get("webhook-id"))
		e.mu.Unlock()
		answer(w, r)
	}))
	t.Cleanup(e.srv.Close)
	return e
}

func (e *endpoint) sent() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]string(nil), e.ids...)
}

// sendRaw sends one message to rcpt over loopback and returns the reply
// the sender sees to the final dot (or to the refused RCPT).
func sendRaw(t *testing.T, addr, rcpt string) string {
	t.Helper()
	msg := fmt.Sprintf("From: Alice <alice@sender.test>\r\nTo: %s\r\nSubject: Ticket 4711\r\nMessage-ID: <%d@sender.test>\r\n\r\nHello.", rcpt, time.Now().UnixNano())
	replies, err := rawsmtp.Transaction(addr, "alice@sender.test", []string{rcpt}, msg)
	if err != nil {
		t.Fatal(err)
	}
	return replies[len(replies)-1]
}

// TestSyncWebhooks drives the real listener with a real SMTP client while
// real HTTP endpoints answer 200, 422 with a text body, 503, or sleep past
// the sync timeout, and checks the reply the sender sees and what the
// queue holds after.
func TestSyncWebhooks(t *testing.T) {
	// ok has raw: true: the raw message is read from the spool file,
	// before the queue takes it.
	ok := newEndpoint(t, func(w http.ResponseWriter, r *http.Request) {
		var ev struct {
			MsgID string `json:"msg_id"`
			Raw   []byte `json:"raw"`
		}
		if err := json.NewDecoder(r.Body).Decode(&ev); err != nil || !strings.Contains(string(ev.Raw), "Subject: Ticket 4711") ||
			!strings.Contains(string(ev.Raw), "\r\nReceived: from client.test") || ev.MsgID == "" {
			t.Errorf("sync event: %v, msg_id %q, raw %.80q", err, ev.MsgID, ev.Raw)
		}
		w.WriteHeader(200)
	})
	refuse := newEndpoint(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.WriteHeader(422)
		io.WriteString(w, "Unknown ticket number 4711 \u2013 please open a new one\r\nsecond line\n")
	})
	refuseJSON := newEndpoint(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(403)
		io.WriteString(w, `{"error":"no"}`)
	})
	down := newEndpoint(t, func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(503) })
	slow := newEndpoint(t, func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-time.After(10 * time.Second):
		}
	})
	async := newEndpoint(t, func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(200) })
	gone := "http://" + closedAddr(t) + "/hook"

	ep := func(url, onFailure string) webhook.Endpoint {
		return webhook.Endpoint{URL: url, Secrets: []string{syncSecret}, AllowPrivate: true, Mode: webhook.ModeSync,
			SyncTimeout: 300 * time.Millisecond, OnFailure: onFailure}
	}
	eps := map[string]webhook.Endpoint{
		"ok": withRaw(ep(ok.srv.URL, "")), "refuse": ep(refuse.srv.URL, ""), "refusejson": ep(refuseJSON.srv.URL, ""),
		"down": ep(down.srv.URL, ""), "slow": ep(slow.srv.URL, ""), "gone": ep(gone, ""),
		"downq": ep(down.srv.URL, webhook.OnFailureQueue), "slowq": ep(slow.srv.URL, webhook.OnFailureQueue),
		"async": {URL: async.srv.URL, Secrets: []string{syncSecret}, AllowPrivate: true},
	}
	rule := func(name string, hooks ...string) config.Rule {
		rc := config.Rule{Name: name, Match: config.RuleMatch{Rcpt: config.StringList{name + "@example.test"}}}
		for _, h := range hooks {
			rc.Actions = append(rc.Actions, config.RuleAction{Webhook: h})
		}
		return rc
	}
	rules := []config.Rule{
		rule("ok", "ok", "async"), rule("refuse", "refuse", "async"), rule("refusejson", "refusejson"),
		rule("down", "down", "async"), rule("slow", "slow"), rule("gone", "gone"),
		rule("downq", "downq", "async"), rule("slowq", "slowq"), rule("both", "ok", "refuse", "async"),
		rule("okdown", "ok", "down"),
	}
	known := route.Known{Webhooks: map[string]bool{}}
	for n := range eps {
		known.Webhooks[n] = true
	}
	table, err := route.Compile(rules, known)
	if err != nil {
		t.Fatal(err)
	}
	q, err := pebbleq.Open(t.TempDir(), pebbleq.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { q.Close() })
	sender := webhook.NewSender(webhook.Options{Endpoints: eps})
	var mu sync.Mutex
	attempts := map[string][]string{} // endpoint -> outcomes
	step := &webhook.SyncStep{Sender: func() *webhook.Sender { return sender },
		OnAttempt: func(j *deliver.Job, _ *inbound.Mail, a deliver.Attempt, outcome deliver.Settlement) {
			mu.Lock()
			attempts[j.Target] = append(attempts[j.Target], string(outcome))
			mu.Unlock()
		}}
	pol := &ingest.Policy{Domains: map[string]bool{"example.test": true}, Router: table}
	srv, err := ingest.New(ingest.Options{
		Hostname:  "mx.example.test",
		Policy:    func() *ingest.Policy { return pol },
		Parse:     func(r io.Reader) (*parse.Message, error) { return parse.Parse(r, parse.Options{}) },
		Committer: &deliver.Committer{Queue: q, Sync: step.Run},
		SpoolDir:  t.TempDir(),
	})
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })

	cases := []struct {
		rcpt  string
		reply string   // prefix of the reply to the final dot
		queue []string // endpoints with a job queued
		tried []string // endpoints POSTed to synchronously, with their outcome
	}{
		{"ok", "250 2.0.0 Ok: queued as ", []string{"async"}, []string{"ok:delivered"}},
		{"refuse", "550 5.7.1 Unknown ticket number 4711 ? please open a new one", nil, []string{"refuse:dead"}},
		{"refusejson", "550 5.7.1 " + webhook.DefaultRefusalText, nil, []string{"refusejson:dead"}},
		{"down", "451 4.3.0 ", nil, []string{"down:retry"}},
		{"slow", "451 4.3.0 ", nil, []string{"slow:retry"}},
		{"gone", "451 4.3.0 ", nil, []string{"gone:retry"}},
		{"downq", "250 2.0.0 Ok: queued as ", []string{"async", "downq"}, []string{"downq:retry"}},
		{"slowq", "250 2.0.0 Ok: queued as ", []string{"slowq"}, []string{"slowq:retry"}},
		{"both", "550 5.7.1 Unknown ticket number 4711", nil, []string{"ok:delivered", "refuse:dead"}},
		{"okdown", "451 4.3.0 ", nil, []string{"down:retry", "ok:delivered"}},
	}
	for _, c := range cases {
		t.Run(c.rcpt, func(t *testing.T) {
			mu.Lock()
			clear(attempts)
			mu.Unlock()
			before := jobIDs(t, q)
			reply := sendRaw(t, l.Addr().String(), c.rcpt+"@example.test")
			if !strings.HasPrefix(reply, c.reply) {
				t.Fatalf("reply = %q, want %q…", reply, c.reply)
			}
			var queued []string
			var jobs []*deliver.Job
			for _, j := range listJobs(t, q) {
				if !before[j.ID] {
					queued = append(queued, j.Target)
					jobs = append(jobs, j)
				}
			}
			if fmt.Sprint(sorted(queued)) != fmt.Sprint(sorted(c.queue)) {
				t.Errorf("queued jobs for %v, want %v", queued, c.queue)
			}
			if strings.HasPrefix(reply, "250") {
				id := strings.TrimPrefix(reply, c.reply)
				for _, j := range jobs {
					if j.MsgID != id {
						t.Errorf("job %s belongs to %s, want the id of the reply %s", j.ID, j.MsgID, id)
					}
				}
			}
			mu.Lock()
			var tried []string
			for ep, outs := range attempts {
				for _, o := range outs {
					tried = append(tried, ep+":"+o)
				}
			}
			mu.Unlock()
			if fmt.Sprint(sorted(tried)) != fmt.Sprint(sorted(c.tried)) {
				t.Errorf("sync attempts %v, want %v", tried, c.tried)
			}
			// A job queued after a failed sync attempt carries that
			// attempt, under the webhook-id the endpoint already saw.
			for _, j := range jobs {
				if j.Target == "downq" {
					if len(j.History) != 1 || j.History[0].Status != 503 {
						t.Errorf("downq job history = %+v, want the 503 of the sync attempt", j.History)
					}
					if ids := down.sent(); len(ids) == 0 || ids[len(ids)-1] != j.ID {
						t.Errorf("downq job id %s, sync attempt sent webhook-id %v", j.ID, ids)
					}
				}
			}
		})
	}
	if n := len(async.sent()); n != 0 {
		t.Errorf("the async endpoint was POSTed %d times during DATA", n)
	}
}

func withRaw(e webhook.Endpoint) webhook.Endpoint {
	e.Raw = true
	return e
}

func jobIDs(t *testing.T, q deliver.Operator) map[string]bool {
	ids := map[string]bool{}
	for _, j := range listJobs(t, q) {
		ids[j.ID] = true
	}
	return ids
}

func listJobs(t *testing.T, q deliver.Operator) []*deliver.Job {
	t.Helper()
	jobs, err := q.List(context.Background(), deliver.ListOptions{Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	return jobs
}

func sorted(s []string) []string {
	out := append([]string{}, s...)
	for i := range out {
		for j := i + 1; j < len(out); j++ {
			if out[j] < out[i] {
				out[i], out[j] = out[j], out[i]
			}
		}
	}
	return out
}

// closedAddr is a loopback address nothing listens on.
func closedAddr(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	a := l.Addr().String()
	l.Close()
	return a
}

func TestSyncVerdict(t *testing.T) {
	h := func(ct string) http.Header { return http.Header{"Content-Type": {ct}} }
	long := strings.Repeat("x", 300)
	for _, c := range []struct {
		status int
		ct     string
		body   string
		want   webhook.Verdict
		text   string
	}{
		{200, "", "", webhook.Accepted, ""},
		{204, "", "", webhook.Accepted, ""},
		{422, "text/plain", "\n  No such ticket\r\nmore", webhook.Refused, "No such ticket"},
		{400, "text/plain", "bad\x00\x1b[31mred", webhook.Refused, "bad??[31mred"},
		{400, "text/plain", long, webhook.Refused, long[:webhook.MaxRefusalText]},
		{404, "text/html", "<h1>no</h1>", webhook.Refused, webhook.DefaultRefusalText},
		{410, "text/plain", "   ", webhook.Refused, webhook.DefaultRefusalText},
		{408, "text/plain", "slow", webhook.Failed, ""},
		{429, "text/plain", "later", webhook.Failed, ""},
		{500, "text/plain", "boom", webhook.Failed, ""},
		{302, "", "", webhook.Failed, ""},
	} {
		v, reply := webhook.SyncVerdict(c.status, h(c.ct), c.body, nil)
		if v != c.want {
			t.Errorf("SyncVerdict(%d, %q) = %v, want %v", c.status, c.body, v, c.want)
			continue
		}
		if v == webhook.Refused && (reply == nil || reply.Code != 550 || reply.EnhancedCode != (smtp.EnhancedCode{5, 7, 1}) || reply.Message != c.text) {
			t.Errorf("SyncVerdict(%d, %q) reply = %+v, want 550 5.7.1 %q", c.status, c.body, reply, c.text)
		}
	}
}
