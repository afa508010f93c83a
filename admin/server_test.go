package admin

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/mailhook/mailhook/deliver"
	"github.com/mailhook/mailhook/parse"
)

func TestAuth(t *testing.T) {
	e := newEnv(t, testToken)
	accept(t, e.q, e.act, mailOpts{id: "m1"})
	for _, tc := range []struct {
		name, method, path, tok string
		want                    int
	}{
		{"healthz open", "GET", "/healthz", "", 200},
		{"readyz open", "GET", "/readyz", "", 200},
		{"metrics open", "GET", "/metrics", "", 200},
		{"no token", "GET", "/api/messages", "", 401},
		{"wrong token", "GET", "/api/messages", "wrong", 401},
		{"token prefix", "GET", "/api/messages", testToken[:5], 401},
		{"right token", "GET", "/api/messages", testToken, 200},
		{"detail no token", "GET", "/api/messages/m1", "", 401},
		{"raw no token", "GET", "/api/messages/m1/raw", "", 401},
		{"replay no token", "POST", "/api/jobs/m1-w/replay", "", 401},
		{"drop no token", "DELETE", "/api/jobs/m1-w", "", 401},
		{"pprof no token", "GET", "/debug/pprof/", "", 401},
		{"pprof token", "GET", "/debug/pprof/", testToken, 200},
		{"unknown api", "GET", "/api/nope", testToken, 404},
		{"unknown api no token", "GET", "/api/nope", "", 401},
		{"dashboard", "GET", "/", "", 200},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, hdr, body := e.do(tc.method, tc.path, tc.tok)
			if code != tc.want {
				t.Fatalf("%s %s = %d %s, want %d", tc.method, tc.path, code, body, tc.want)
			}
			if code == 401 && !strings.HasPrefix(hdr.Get("WWW-Authenticate"), "Bearer") {
				t.Fatalf("401 without a Bearer challenge: %v", hdr)
			}
		})
	}
	// Bearer with another scheme spelling is accepted (RFC 6750 §2.1 says
	// the scheme is case-insensitive); Basic is not.
	if code, _, _ := e.do("GET", "/api/queue/stats", "", "Authorization", "bearer "+testToken); code != 200 {
		t.Fatalf("lower-case bearer = %d", code)
	}
	if code, _, _ := e.do("GET", "/api/queue/stats", "", "Authorization", "Basic "+testToken); code != 401 {
		t.Fatalf("Basic = %d, want 401", code)
	}
	code, _, body := e.do("GET", "/metrics", "")
	if code != 200 || !bytesHas(body, `mailhook_failed_logins_total{proto="admin"}`) {
		t.Fatalf("failed admin logins not counted: %d", code)
	}
}

func TestDisabledWithoutToken(t *testing.T) {
	e := newEnv(t, "")
	for _, p := range []string{"/api/messages", "/api/queue/stats", "/", "/assets/app.js"} {
		for _, tok := range []string{"", "anything", " "} {
			code, _, body := e.do("GET", p, tok)
			if code != http.StatusForbidden || !bytesHas(body, "disabled") || !bytesHas(body, "admin.token") {
				t.Fatalf("GET %s with %q = %d %s, want 403 naming admin.token", p, tok, code, body)
			}
		}
	}
	code, _, _ := e.do("POST", "/login", "", "Content-Type", "application/x-www-form-urlencoded")
	if code != http.StatusForbidden {
		t.Fatalf("POST /login = %d, want 403", code)
	}
	for _, p := range []string{"/healthz", "/readyz", "/metrics"} {
		if code, _, _ := e.do("GET", p, ""); code != 200 {
			t.Fatalf("GET %s = %d, want 200", p, code)
		}
	}
	if code, _, _ := e.do("GET", "/debug/pprof/", ""); code != http.StatusForbidden {
		t.Fatalf("pprof = %d, want 403", code)
	}
}

func TestReadyz(t *testing.T) {
	e := newEnv(t, testToken)
	e.mu.Lock()
	e.ready = errors.New("redis: dial tcp 127.0.0.1:6379: connection refused")
	e.mu.Unlock()
	code, _, body := e.do("GET", "/readyz", "")
	if code != http.StatusServiceUnavailable || !bytesHas(body, "connection refused") {
		t.Fatalf("readyz = %d %s, want 503 with the failing check", code, body)
	}
	e.mu.Lock()
	e.ready = nil
	e.mu.Unlock()
	if code, _, _ := e.do("GET", "/readyz", ""); code != 200 {
		t.Fatalf("readyz = %d, want 200", code)
	}
	if err := e.act.Writable(t.Context()); err != nil {
		t.Fatalf("Writable = %v", err)
	}
}

type listResp struct {
	Messages []MessageSummary `json:"messages"`
	Next     string           `json:"next"`
}

func TestAPIMessages(t *testing.T) {
	e := newEnv(t, testToken)
	t0 := e.clock.Now().Add(-time.Hour)
	for i := range 12 {
		rcpt, rt := "support@example.test", "tickets"
		if i%3 == 0 {
			rcpt, rt = "sales@example.test", "people"
		}
		accept(t, e.q, e.act, mailOpts{id: fmt.Sprintf("m%02d", i), rcpt: rcpt, route: rt, received: t0.Add(time.Duration(i) * time.Minute)})
	}
	list := func(q url.Values) listResp {
		t.Helper()
		var r listResp
		if err := json.Unmarshal(e.get("/api/messages?"+q.Encode()), &r); err != nil {
			t.Fatal(err)
		}
		return r
	}
	// Pages of 5 over 12 messages, newest first.
	var got []string
	q := url.Values{"limit": {"5"}}
	for n := 0; ; n++ {
		r := list(q)
		got = append(got, ids(r.Messages)...)
		if r.Next == "" {
			break
		}
		if n > 5 {
			t.Fatal("pagination does not end")
		}
		q.Set("cursor", r.Next)
	}
	var want []string
	for i := 11; i >= 0; i-- {
		want = append(want, fmt.Sprintf("m%02d", i))
	}
	if !slices.Equal(got, want) {
		t.Fatalf("paged = %v, want %v", got, want)
	}
	if r := list(url.Values{"rcpt": {"sales"}}); !slices.Equal(ids(r.Messages), []string{"m09", "m06", "m03", "m00"}) {
		t.Fatalf("rcpt filter = %v", ids(r.Messages))
	}
	if r := list(url.Values{"route": {"people"}, "limit": {"2"}}); !slices.Equal(ids(r.Messages), []string{"m09", "m06"}) || r.Next == "" {
		t.Fatalf("route filter = %v next %q", ids(r.Messages), r.Next)
	}
	since := t0.Add(10 * time.Minute).Format(time.RFC3339)
	if r := list(url.Values{"since": {since}}); !slices.Equal(ids(r.Messages), []string{"m11", "m10"}) {
		t.Fatalf("since = %v", ids(r.Messages))
	}
	until := t0.Add(time.Minute).Format(time.RFC3339)
	if r := list(url.Values{"until": {until}}); !slices.Equal(ids(r.Messages), []string{"m00"}) {
		t.Fatalf("until = %v", ids(r.Messages))
	}
	if r := list(url.Values{"status": {"partially delivered"}}); len(r.Messages) != 0 {
		t.Fatalf("status filter = %v", ids(r.Messages))
	}
	if r := list(url.Values{"limit": {"10000"}}); len(r.Messages) != 12 {
		t.Fatalf("limit clamp: %d messages", len(r.Messages))
	}
	for _, bad := range []string{"limit=-1", "limit=x", "since=yesterday", "until=1", "cursor=%21%21"} {
		if code, _, body := e.do("GET", "/api/messages?"+bad, testToken); code != 400 || !bytesHas(body, `"error"`) {
			t.Fatalf("GET /api/messages?%s = %d %s, want 400", bad, code, body)
		}
	}
}

func TestAPIMessageDetailAndRaw(t *testing.T) {
	e := newEnv(t, testToken)
	f := newFixture(t)
	accept(t, e.q, e.act, mailOpts{id: "fire", raw: f.raw})
	jobs, _ := e.q.Take(t.Context(), deliver.Kinds, 1, time.Minute)
	a := deliver.Attempt{At: time.Now(), Status: 503, Latency: 120 * time.Millisecond, Error: "webhook: 503 Service Unavailable", Response: "try later"}
	if err := e.q.Retry(t.Context(), jobs[0], time.Now().Add(time.Hour), a); err != nil {
		t.Fatal(err)
	}
	e.act.RecordAttempt(jobs[0], a, deliver.SettleRetry)
	e.act.RecordSent(jobs[0].ID, []byte(`{"type":"message.received","id":"fire"}`))

	var d MessageDetail
	if err := json.Unmarshal(e.get("/api/messages/fire"), &d); err != nil {
		t.Fatal(err)
	}
	if d.Auth == nil || d.Auth.DMARC.Result != "pass" || d.Auth.SPF.Result != "pass" {
		t.Fatalf("auth = %+v", d.Auth)
	}
	if len(d.Decisions) != 1 || d.Decisions[0].Rules[0] != "tickets" || len(d.Decisions[0].Why) == 0 {
		t.Fatalf("decisions = %+v", d.Decisions)
	}
	if len(d.Jobs) != 1 || len(d.Jobs[0].Attempts) != 1 {
		t.Fatalf("jobs = %+v", d.Jobs)
	}
	j := d.Jobs[0]
	if at := j.Attempts[0]; at.Status != 503 || at.LatencyMS != 120 || at.Response != "try later" || at.Error == "" {
		t.Fatalf("attempt = %+v", at)
	}
	var sent bytes.Buffer
	json.Compact(&sent, j.Sent)
	if j.QueueState != deliver.StateScheduled || j.NextAt == nil || sent.String() != `{"type":"message.received","id":"fire"}` {
		t.Fatalf("job = %+v", j)
	}
	if d.Status != StatusRetrying || d.Message == nil || d.Message.Subject != "Printer on fire" || !d.HasRaw {
		t.Fatalf("detail = status %q message %+v raw %v", d.Status, d.Message, d.HasRaw)
	}
	for _, att := range d.Message.Attachments {
		if att.Content != "" {
			t.Fatalf("attachment content stored: %s", att.Filename)
		}
	}

	code, hdr, raw := e.do("GET", "/api/messages/fire/raw", testToken)
	if code != 200 || hdr.Get("Content-Type") != "message/rfc822" || string(raw) != f.raw ||
		!strings.HasPrefix(hdr.Get("Content-Disposition"), "attachment") || hdr.Get("Content-Security-Policy") != "sandbox" {
		t.Fatalf("raw = %d %s (%d bytes)", code, hdr.Get("Content-Type"), len(raw))
	}
	if code, _, _ := e.do("GET", "/api/messages/nope", testToken); code != 404 {
		t.Fatalf("unknown message = %d, want 404", code)
	}
	if code, _, _ := e.do("GET", "/api/messages/nope/raw", testToken); code != 404 {
		t.Fatalf("unknown raw = %d, want 404", code)
	}

	// A message the activity store never saw is shown from the queue.
	mail, _ := accept(t, e.q, nil, mailOpts{id: "queue-only"})
	var q MessageDetail
	if err := json.Unmarshal(e.get("/api/messages/queue-only"), &q); err != nil {
		t.Fatal(err)
	}
	if q.ID != mail.ID || len(q.Jobs) != 1 || q.Jobs[0].QueueState != deliver.StateReady || q.Status != StatusQueued {
		t.Fatalf("queue-only detail = %+v", q)
	}
	if code, _, raw := e.do("GET", "/api/messages/queue-only/raw", testToken); code != 200 || !bytesHas(raw, "hello queue-only") {
		t.Fatalf("queue-only raw = %d", code)
	}
}

func TestAPIQueueReplayDrop(t *testing.T) {
	e := newEnv(t, testToken)
	for _, id := range []string{"a", "b", "c"} {
		accept(t, e.q, e.act, mailOpts{id: id})
	}
	ctx := t.Context()
	jobs, err := e.q.Take(ctx, deliver.Kinds, 3, time.Minute)
	if err != nil || len(jobs) != 3 {
		t.Fatalf("Take = %d, %v", len(jobs), err)
	}
	var deadAt time.Time
	for i, j := range jobs {
		if i == 1 {
			e.clock.Add(time.Second) // a distinct DeadAt for ReplayAll's boundary
			deadAt = e.clock.Now()
		}
		a := deliver.Attempt{At: time.Now(), Status: 410, Error: "gone"}
		if err := e.q.Dead(ctx, j, a); err != nil {
			t.Fatal(err)
		}
		e.act.RecordAttempt(j, a, deliver.SettleDead)
	}
	var st queueStatsJSON
	json.Unmarshal(e.get("/api/queue/stats"), &st)
	if st.Dead != 3 || st.Ready != 0 {
		t.Fatalf("stats = %+v", st)
	}
	var dead struct {
		Jobs []*deliver.Job `json:"jobs"`
		Next string         `json:"next"`
	}
	json.Unmarshal(e.get("/api/queue/dead?limit=2"), &dead)
	if len(dead.Jobs) != 2 || dead.Next == "" || len(dead.Jobs[0].History) != 1 {
		t.Fatalf("dead page = %s next %q", fmtJobs(dead.Jobs), dead.Next)
	}
	if code, _, _ := e.do("GET", "/api/queue/dead?kind=fax", testToken); code != 400 {
		t.Fatalf("bad kind = %d", code)
	}

	// Replay one dead job through the API.
	target := jobs[0].ID
	code, _, body := e.do("POST", "/api/jobs/"+target+"/replay", testToken)
	if code != 200 {
		t.Fatalf("replay = %d %s", code, body)
	}
	j, err := e.q.Get(ctx, target)
	if err != nil || j.StateAt(e.clock.Now()) != deliver.StateReady || len(j.History) != 1 {
		t.Fatalf("after replay: %+v, %v", j, err)
	}
	if d, _ := e.act.Message(jobs[0].MsgID); d.Status != StatusQueued {
		t.Fatalf("activity status after replay = %q", d.Status)
	}
	if code, _, _ := e.do("POST", "/api/jobs/"+target+"/replay", testToken); code != http.StatusConflict {
		t.Fatalf("replay of a ready job = %d, want 409", code)
	}
	if code, _, _ := e.do("POST", "/api/jobs/nope/replay", testToken); code != 404 {
		t.Fatalf("replay unknown = %d, want 404", code)
	}

	// Replay all since deadAt: jobs[1] and jobs[2].
	if code, _, _ := e.do("POST", "/api/queue/replay", testToken); code != 400 {
		t.Fatalf("replay all without since = %d, want 400", code)
	}
	code, _, body = e.do("POST", "/api/queue/replay?since="+url.QueryEscape(deadAt.UTC().Format(time.RFC3339Nano)), testToken)
	if code != 200 {
		t.Fatalf("replay all = %d %s", code, body)
	}
	var ra struct{ Replayed int }
	json.Unmarshal(body, &ra)
	if ra.Replayed != 2 {
		t.Fatalf("replayed %d, want 2 (%s)", ra.Replayed, body)
	}
	if st, _ := e.q.Stats(ctx); st.Dead != 0 || st.Ready != 3 {
		t.Fatalf("stats after replay all = %+v", st)
	}

	// Drop.
	if code, _, _ := e.do("DELETE", "/api/jobs/"+target, testToken); code != 200 {
		t.Fatalf("drop = %d", code)
	}
	if _, err := e.q.Get(ctx, target); !errors.Is(err, deliver.ErrNotFound) {
		t.Fatalf("Get after drop = %v", err)
	}
	if d, _ := e.act.Message(jobs[0].MsgID); d.Status != StatusDropped {
		t.Fatalf("activity status after drop = %q", d.Status)
	}
	if code, _, _ := e.do("DELETE", "/api/jobs/"+target, testToken); code != 404 {
		t.Fatalf("drop again = %d, want 404", code)
	}
}

func TestSessionCookie(t *testing.T) {
	e := newEnv(t, testToken)
	accept(t, e.q, e.act, mailOpts{id: "m"})
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	login := func(tok string) *http.Response {
		res, err := noRedirect.PostForm(e.base+"/login", url.Values{"token": {tok}})
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		return res
	}
	res := login("wrong")
	if res.StatusCode != http.StatusSeeOther || len(res.Cookies()) != 0 || !strings.Contains(res.Header.Get("Location"), "login=failed") {
		t.Fatalf("wrong login = %d cookies %v location %q", res.StatusCode, res.Cookies(), res.Header.Get("Location"))
	}
	res = login(testToken)
	if res.StatusCode != http.StatusSeeOther || len(res.Cookies()) != 1 {
		t.Fatalf("login = %d cookies %v", res.StatusCode, res.Cookies())
	}
	c := res.Cookies()[0]
	if !c.HttpOnly || c.SameSite != http.SameSiteStrictMode || strings.Contains(c.Value, testToken) || c.Value == "" {
		t.Fatalf("cookie = %+v", c)
	}
	withCookie := func(method, path, cookie string, hdr ...string) int {
		return func() int {
			code, _, _ := e.do(method, path, "", append([]string{"Cookie", sessionName + "=" + cookie}, hdr...)...)
			return code
		}()
	}
	if code := withCookie("GET", "/api/messages", c.Value); code != 200 {
		t.Fatalf("GET with session = %d", code)
	}
	// Writes with the cookie need the custom header (CSRF).
	accept(t, e.q, e.act, mailOpts{id: "m2"})
	if code := withCookie("DELETE", "/api/jobs/m2-w", c.Value); code != http.StatusForbidden {
		t.Fatalf("DELETE with cookie, no header = %d, want 403", code)
	}
	if code := withCookie("DELETE", "/api/jobs/m2-w", c.Value, csrfHeader, "1"); code != 200 {
		t.Fatalf("DELETE with cookie and header = %d, want 200", code)
	}
	// Tampered and expired sessions.
	b := []byte(c.Value)
	b[3] ^= 1
	if code := withCookie("GET", "/api/messages", string(b)); code != 401 {
		t.Fatalf("tampered cookie = %d, want 401", code)
	}
	if code := withCookie("GET", "/api/messages", testToken); code != 401 {
		t.Fatalf("token as cookie = %d, want 401", code)
	}
	e.clock.Add(13 * time.Hour)
	if code := withCookie("GET", "/api/messages", c.Value); code != 401 {
		t.Fatalf("expired cookie = %d, want 401", code)
	}
	// A server with another token does not take the cookie.
	other := NewServer(ServerOptions{Token: "other", Now: e.clock.Now})
	if other.validSession(c.Value) {
		t.Fatal("session valid under another token")
	}
	res, err := noRedirect.Post(e.base+"/logout", "application/x-www-form-urlencoded", nil)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if len(res.Cookies()) != 1 || res.Cookies()[0].MaxAge >= 0 {
		t.Fatalf("logout cookies = %v", res.Cookies())
	}
	// The dashboard is served with a strict CSP.
	code, hdr, body := e.do("GET", "/", "")
	if code != 200 || !strings.Contains(hdr.Get("Content-Security-Policy"), "default-src 'none'") || !bytesHas(body, "/assets/app.js") {
		t.Fatalf("dashboard = %d %v", code, hdr)
	}
	if code, _, body := e.do("GET", "/assets/app.js", ""); code != 200 || !bytesHas(body, "X-Mailhook-Request") {
		t.Fatalf("app.js = %d", code)
	}
}

func TestAttachmentURLs(t *testing.T) {
	e := newEnv(t, testToken)
	f := newFixture(t)
	mail, _ := accept(t, e.q, e.act, mailOpts{id: "fire", raw: f.raw})
	// Let the queue forget the message: the activity copy serves it.
	jobs, _ := e.q.Take(t.Context(), deliver.Kinds, 1, time.Minute)
	if err := e.q.Ack(t.Context(), jobs[0]); err != nil {
		t.Fatal(err)
	}
	msg := mail.Message
	var names []string
	for _, a := range msg.Attachments {
		names = append(names, a.Filename)
	}
	if want := []string{"big.bin", "Manual.eml", "inner.pdf", "notes.txt"}; !slices.Equal(names, want) {
		t.Fatalf("fixture attachments = %v, want %v", names, want)
	}
	exp := e.clock.Now().Add(time.Hour)
	AttachmentKey(testKey).FillAttachmentURLs(msg, e.base+"/", mail.ID, exp)
	for i, a := range msg.Attachments {
		if (a.Content == "") != (a.URL != "") {
			t.Fatalf("attachment %d (%s): content %d bytes, url %q", i, a.Filename, len(a.Content), a.URL)
		}
	}
	if msg.Attachments[0].URL == "" || msg.Attachments[2].URL == "" {
		t.Fatal("large attachments without URL")
	}
	if msg.Attachments[3].URL != "" {
		t.Fatal("small inline attachment got a URL")
	}

	fetch := func(u string) (int, http.Header, []byte) {
		t.Helper()
		res, err := http.Get(u)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res.StatusCode, res.Header, b
	}
	for i, a := range msg.Attachments {
		u := e.srv.SignAttachmentURL(e.base, mail.ID, i, exp)
		code, hdr, body := fetch(u)
		sum := sha256.Sum256(body)
		if code != 200 || hex.EncodeToString(sum[:]) != a.SHA256 || int64(len(body)) != a.Size {
			t.Fatalf("attachment %d (%s) = %d, %d bytes, want %d bytes with sha256 %s", i, a.Filename, code, len(body), a.Size, a.SHA256)
		}
		if !strings.Contains(hdr.Get("Content-Disposition"), a.Filename) || !strings.HasPrefix(hdr.Get("Content-Disposition"), "attachment") {
			t.Fatalf("attachment %d disposition %q", i, hdr.Get("Content-Disposition"))
		}
		if !strings.HasPrefix(hdr.Get("Content-Type"), a.ContentType) || hdr.Get("Content-Security-Policy") != "sandbox" {
			t.Fatalf("attachment %d headers %v", i, hdr)
		}
	}
	if code, _, body := fetch(msg.Attachments[0].URL); code != 200 || !bytes.Equal(body, f.big) {
		t.Fatalf("big.bin via FillAttachmentURLs = %d, equal %v", code, bytes.Equal(body, f.big))
	}
	if _, _, body := fetch(msg.Attachments[2].URL); !bytes.Equal(body, f.inner) {
		t.Fatal("inner.pdf differs")
	}
	if _, _, body := fetch(e.srv.SignAttachmentURL(e.base, mail.ID, 3, exp)); string(body) != "café crème" {
		t.Fatalf("notes.txt = %q, want UTF-8", body)
	}

	good := msg.Attachments[0].URL
	tamper := func(fn func(u *url.URL)) string {
		u, _ := url.Parse(good)
		fn(u)
		return u.String()
	}
	for _, tc := range []struct {
		name string
		url  string
		want int
	}{
		{"other index", tamper(func(u *url.URL) { u.Path = strings.Replace(u.Path, "/0", "/2", 1) }), 403},
		{"later expiry", tamper(func(u *url.URL) {
			q := u.Query()
			q.Set("exp", strconv.FormatInt(exp.Unix()+3600, 10))
			u.RawQuery = q.Encode()
		}), 403},
		{"flipped signature", tamper(func(u *url.URL) {
			q := u.Query()
			s := []byte(q.Get("sig"))
			if s[0] == 'A' {
				s[0] = 'B'
			} else {
				s[0] = 'A'
			}
			q.Set("sig", string(s))
			u.RawQuery = q.Encode()
		}), 403},
		{"no signature", tamper(func(u *url.URL) { u.RawQuery = "exp=" + strconv.FormatInt(exp.Unix(), 10) }), 403},
		{"other message", tamper(func(u *url.URL) { u.Path = strings.Replace(u.Path, "fire", "fire2", 1) }), 403},
		{"index past the end", e.srv.SignAttachmentURL(e.base, mail.ID, 9, exp), 404},
		{"unknown message", e.srv.SignAttachmentURL(e.base, "nope", 0, exp), 404},
		{"signed with another key", AttachmentKey("another key another key another!!").SignAttachmentURL(e.base, mail.ID, 0, exp), 403},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if code, _, body := fetch(tc.url); code != tc.want {
				t.Fatalf("GET %s = %d %s, want %d", tc.url, code, body, tc.want)
			}
		})
	}
	// After the expiry the same URL is gone.
	e.clock.Add(time.Hour)
	if code, _, body := fetch(good); code != http.StatusGone {
		t.Fatalf("expired = %d %s, want 410", code, body)
	}
	// An expired URL with a bad signature is still a 403.
	if code, _, _ := fetch(good + "x"); code != http.StatusForbidden {
		t.Fatalf("expired and tampered = %d, want 403", code)
	}
}

// scrape returns the metrics as "name{labels}" -> value, from the text
// exposition format.
func scrape(t *testing.T, e *env) map[string]float64 {
	t.Helper()
	code, hdr, body := e.do("GET", "/metrics", "")
	if code != 200 || !strings.HasPrefix(hdr.Get("Content-Type"), "text/plain") {
		t.Fatalf("/metrics = %d %s", code, hdr.Get("Content-Type"))
	}
	m := map[string]float64{}
	sc := bufio.NewScanner(bytes.NewReader(body))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			t.Fatalf("bad exposition line %q", line)
		}
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("bad value in %q: %v", line, err)
		}
		m[line[:i]] = v
	}
	return m
}

func TestMetricsMove(t *testing.T) {
	e := newEnv(t, testToken)
	before := scrape(t, e)
	if before[`mailhook_queue_jobs{backend="embedded",state="ready"}`] != 0 {
		t.Fatalf("ready before = %v", before[`mailhook_queue_jobs{backend="embedded",state="ready"}`])
	}
	accept(t, e.q, e.act, mailOpts{id: "m1"})
	accept(t, e.q, e.act, mailOpts{id: "m2"})
	m := e.m
	m.SMTPConnection()
	m.SMTPConnection()
	m.MessageAccepted([]string{"tickets"})
	m.MessageRefused("relay_denied")
	m.MessageRefused("unknown_user")
	m.MessageRefused("unknown_user")
	m.VerifyResult("dmarc", "pass")
	m.ParseWarnings(3)
	m.RouteMatch("tickets")
	m.Attempt("webhook", "tickets-hook", 503, 250*time.Millisecond, string(deliver.SettleRetry))
	m.Attempt("webhook", "tickets-hook", 0, time.Second, string(deliver.SettleRetry))
	m.Attempt("webhook", "tickets-hook", 200, 40*time.Millisecond, string(deliver.SettleDelivered))
	m.Delivered("webhook", 90*time.Second)
	m.IMAPSession()
	m.POP3Session()
	m.FailedLogin("imap")
	var nilM *Metrics
	nilM.MessageAccepted([]string{"x"}) // a nil *Metrics is a no-op

	after := scrape(t, e)
	for _, tc := range []struct {
		series string
		want   float64
	}{
		{`mailhook_smtp_connections_total`, 2},
		{`mailhook_messages_accepted_total{route="tickets"}`, 1},
		{`mailhook_messages_refused_total{reason="unknown_user"}`, 2},
		{`mailhook_messages_refused_total{reason="relay_denied"}`, 1},
		{`mailhook_verify_results_total{method="dmarc",result="pass"}`, 1},
		{`mailhook_parse_warnings_total`, 3},
		{`mailhook_route_matches_total{rule="tickets"}`, 1},
		{`mailhook_delivery_attempts_total{kind="webhook",outcome="retry",status_class="5xx",target="tickets-hook"}`, 1},
		{`mailhook_delivery_attempts_total{kind="webhook",outcome="retry",status_class="error",target="tickets-hook"}`, 1},
		{`mailhook_delivery_attempts_total{kind="webhook",outcome="delivered",status_class="2xx",target="tickets-hook"}`, 1},
		{`mailhook_delivery_attempt_duration_seconds_count{kind="webhook",target="tickets-hook"}`, 3},
		{`mailhook_delivery_attempt_duration_seconds_bucket{kind="webhook",target="tickets-hook",le="0.05"}`, 1},
		{`mailhook_accept_to_delivered_seconds_count{kind="webhook"}`, 1},
		{`mailhook_accept_to_delivered_seconds_bucket{kind="webhook",le="60"}`, 0},
		{`mailhook_accept_to_delivered_seconds_bucket{kind="webhook",le="300"}`, 1},
		{`mailhook_imap_sessions_total`, 1},
		{`mailhook_pop3_sessions_total`, 1},
		{`mailhook_failed_logins_total{proto="imap"}`, 1},
		{`mailhook_queue_jobs{backend="embedded",state="ready"}`, 2},
		{`mailhook_queue_jobs{backend="embedded",state="dead"}`, 0},
	} {
		got, ok := after[tc.series]
		if !ok || got != tc.want {
			t.Errorf("%s = %v (present %v), want %v", tc.series, got, ok, tc.want)
		}
	}
	if _, ok := after[`mailhook_queue_oldest_age_seconds{backend="embedded"}`]; !ok {
		t.Error("queue oldest age gauge missing")
	}
	if _, ok := after[`go_goroutines`]; !ok {
		t.Error("Go runtime collector missing")
	}
	// The queue gauge follows the queue.
	jobs, _ := e.q.Take(context.Background(), deliver.Kinds, 1, time.Minute)
	e.q.Dead(context.Background(), jobs[0], deliver.Attempt{Status: 410})
	again := scrape(t, e)
	if again[`mailhook_queue_jobs{backend="embedded",state="dead"}`] != 1 || again[`mailhook_queue_jobs{backend="embedded",state="ready"}`] != 1 {
		t.Errorf("queue gauges after a death: ready %v dead %v", again[`mailhook_queue_jobs{backend="embedded",state="ready"}`], again[`mailhook_queue_jobs{backend="embedded",state="dead"}`])
	}
}

func TestSeriesAPI(t *testing.T) {
	e := newEnv(t, testToken)
	accept(t, e.q, e.act, mailOpts{id: "m1", received: e.clock.Now()})
	e.act.SampleQueue(4)
	var r struct {
		Step   int     `json:"step_seconds"`
		Points []Point `json:"points"`
	}
	if err := json.Unmarshal(e.get("/api/series?hours=3"), &r); err != nil {
		t.Fatal(err)
	}
	if r.Step != 60 || len(r.Points) < 180 || len(r.Points) > 182 {
		t.Fatalf("series: step %d, %d points", r.Step, len(r.Points))
	}
	last := r.Points[len(r.Points)-1]
	if last.Accepted != 1 || last.QueueDepth == nil || *last.QueueDepth != 4 {
		t.Fatalf("last point = %+v", last)
	}
	for _, bad := range []string{"0", "-1", "x", "1000"} {
		if code, _, _ := e.do("GET", "/api/series?hours="+bad, testToken); code != 400 {
			t.Fatalf("hours=%s = %d, want 400", bad, code)
		}
	}
	if err := json.Unmarshal(e.get("/api/series?hours=24"), &r); err != nil || r.Step != 480 {
		t.Fatalf("24h step = %d, %v", r.Step, err)
	}
}

func TestSignAttachmentURLShape(t *testing.T) {
	k := AttachmentKey(testKey)
	exp := time.Unix(1900000000, 0)
	u := k.SignAttachmentURL("https://mx.example.test:8025/", "a b/c", 2, exp)
	p, err := url.Parse(u)
	if err != nil {
		t.Fatal(err)
	}
	if p.EscapedPath() != "/attachments/a%20b%2Fc/2" || p.Query().Get("exp") != "1900000000" {
		t.Fatalf("url = %s", u)
	}
	if err := k.Check("a b/c", 2, "1900000000", p.Query().Get("sig"), exp.Add(-time.Second)); err != nil {
		t.Fatalf("Check = %v", err)
	}
	if err := k.Check("a b/c", 2, "1900000000", p.Query().Get("sig"), exp); !errors.Is(err, ErrExpired) {
		t.Fatalf("Check at expiry = %v, want ErrExpired", err)
	}
	var empty AttachmentKey
	if err := empty.Check("a b/c", 2, "1900000000", p.Query().Get("sig"), exp); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("Check with no key = %v", err)
	}
	m := &parse.Message{Attachments: []parse.Attachment{{Size: 10, Content: "QUJD"}, {Size: 10 << 20}}}
	empty.FillAttachmentURLs(m, "https://x", "id", exp)
	if m.Attachments[1].URL != "" {
		t.Fatal("no key, but a URL")
	}
}

func TestPprofOffByDefault(t *testing.T) {
	s := NewServer(ServerOptions{Token: testToken})
	req, _ := http.NewRequest("GET", "/debug/pprof/", nil)
	req.Header.Set("Authorization", "Bearer "+testToken)
	w := &recorder{h: http.Header{}}
	s.ServeHTTP(w, req)
	if w.code != http.StatusNotFound {
		t.Fatalf("pprof without EnablePprof = %d, want 404", w.code)
	}
	// Without a queue or activity store the API says so rather than panics.
	for _, p := range []string{"/api/messages", "/api/queue/stats", "/api/series", "/api/messages/x"} {
		req, _ := http.NewRequest("GET", p, nil)
		req.Header.Set("Authorization", "Bearer "+testToken)
		w := &recorder{h: http.Header{}}
		s.ServeHTTP(w, req)
		if w.code != http.StatusServiceUnavailable && w.code != http.StatusNotFound {
			t.Fatalf("GET %s without stores = %d", p, w.code)
		}
	}
}

// recorder is a minimal http.ResponseWriter.
type recorder struct {
	h    http.Header
	code int
	body bytes.Buffer
}

func (r *recorder) Header() http.Header { return r.h }
func (r *recorder) WriteHeader(code int) {
	if r.code == 0 {
		r.code = code
	}
}
func (r *recorder) Write(b []byte) (int, error) {
	if r.code == 0 {
		r.code = 200
	}
	return r.body.Write(b)
}

func TestPublicHandler(t *testing.T) {
	e := newEnv(t, testToken)
	f := newFixture(t)
	mail, _ := accept(t, e.q, e.act, mailOpts{id: "fire", raw: f.raw})
	h := e.srv.PublicHandler()
	u := e.srv.SignAttachmentURL("", mail.ID, 0, e.clock.Now().Add(time.Hour))
	w := &recorder{h: http.Header{}}
	h.ServeHTTP(w, must(http.NewRequest("GET", u, nil)))
	if w.code != 200 || !bytes.Equal(w.body.Bytes(), f.big) {
		t.Fatalf("public attachment = %d, %d bytes", w.code, w.body.Len())
	}
	for _, p := range []string{"/api/messages", "/metrics", "/", "/debug/pprof/"} {
		req := must(http.NewRequest("GET", p, nil))
		req.Header.Set("Authorization", "Bearer "+testToken)
		w := &recorder{h: http.Header{}}
		h.ServeHTTP(w, req)
		if w.code != http.StatusNotFound {
			t.Fatalf("public %s = %d, want 404", p, w.code)
		}
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

func TestAttachmentOnce(t *testing.T) {
	e := newEnv(t, testToken)
	f := newFixture(t)
	mail, _ := accept(t, e.q, e.act, mailOpts{id: "fire", raw: f.raw})
	once := NewServer(ServerOptions{Token: testToken, Queue: e.q, Activity: e.act, AttachmentKey: testKey, AttachmentOnce: true, Now: e.clock.Now})
	get := func(u string) int {
		w := &recorder{h: http.Header{}}
		once.ServeHTTP(w, must(http.NewRequest("GET", u, nil)))
		return w.code
	}
	exp := e.clock.Now().Add(time.Hour)
	u0 := once.SignAttachmentURL("", mail.ID, 0, exp)
	u2 := once.SignAttachmentURL("", mail.ID, 2, exp)
	head := &recorder{h: http.Header{}}
	once.ServeHTTP(head, must(http.NewRequest("HEAD", u0, nil)))
	if head.code != 200 || head.h.Get("Content-Length") != strconv.Itoa(len(f.big)) {
		t.Fatalf("HEAD = %d, length %q", head.code, head.h.Get("Content-Length"))
	}
	if code := get(u0); code != 200 {
		t.Fatalf("first fetch = %d", code)
	}
	if code := get(u0); code != http.StatusGone {
		t.Fatalf("second fetch = %d, want 410", code)
	}
	if code := get(u2); code != 200 {
		t.Fatalf("another attachment's link = %d", code)
	}
	// A link that failed its checks is not burnt.
	if code := get(strings.Replace(once.SignAttachmentURL("", mail.ID, 3, exp), "sig=", "sig=x", 1)); code != 403 {
		t.Fatalf("bad signature = %d", code)
	}
	if code := get(once.SignAttachmentURL("", mail.ID, 3, exp)); code != 200 {
		t.Fatalf("fetch after a bad try = %d", code)
	}
	// Claims go with the purge once expired.
	e.clock.Add(DefaultRetention + 2*time.Hour)
	if _, err := e.act.PurgeOnce(); err != nil {
		t.Fatal(err)
	}
	if err := e.act.Claim("att:x", e.clock.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	var n int
	e.act.db.View(func(tx *bolt.Tx) error { n = tx.Bucket(bClaims).Stats().KeyN; return nil })
	if n != 1 {
		t.Fatalf("claims after purge = %d, want 1", n)
	}
}

// TestAttachmentLinker: with a base, each attachment left out of the
// payload gets a URL that verifies, valid for the TTL; without one, a
// parse warning names it; inline attachments are left alone.
func TestAttachmentLinker(t *testing.T) {
	now := time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)
	msg := func() *parse.Message {
		return &parse.Message{Attachments: []parse.Attachment{
			{Filename: "small.txt", Size: 3, Content: "aGk="},
			{Filename: "big.bin", Size: 8192},
		}}
	}
	m := msg()
	l := &AttachmentLinker{Key: AttachmentKey(testKey), Base: "https://mx.example.test/", TTL: time.Hour, Now: func() time.Time { return now }}
	l.Link(m, "msg1")
	if m.Attachments[0].URL != "" || len(m.Warnings) != 0 {
		t.Errorf("inline attachment got url %q, warnings %v", m.Attachments[0].URL, m.Warnings)
	}
	want := AttachmentKey(testKey).SignAttachmentURL("https://mx.example.test", "msg1", 1, now.Add(time.Hour))
	if m.Attachments[1].URL != want {
		t.Errorf("url = %q, want %q", m.Attachments[1].URL, want)
	}
	m = msg()
	(&AttachmentLinker{Key: AttachmentKey(testKey)}).Link(m, "msg1")
	if m.Attachments[1].URL != "" || len(m.Warnings) != 1 || !strings.Contains(m.Warnings[0], `attachment 1 ("big.bin", 8192 bytes) is over parse.inline_limit and has no url`) {
		t.Errorf("without a base: url %q, warnings %v", m.Attachments[1].URL, m.Warnings)
	}
}
