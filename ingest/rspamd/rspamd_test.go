package rspamd_test

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mailhook/mailhook/inbound"
	"github.com/mailhook/mailhook/ingest/rspamd"
	"github.com/mailhook/mailhook/ingest/rspamd/rspamdtest"
)

// message returns a small message whose body holds line, dated now
// (rspamd scores a Date a day old as DATE_IN_PAST).
func message(line string) string {
	return "From: Alice <alice@example.org>\r\nTo: support@example.test\r\nSubject: hello\r\n" +
		"Message-ID: <1@example.org>\r\nDate: " + time.Now().UTC().Format(time.RFC1123Z) + "\r\n\r\n" +
		"Hello, a question about my order.\r\n" + line + "\r\n"
}

func check(t *testing.T, c *rspamd.Client, req *rspamd.Request, msg string) (*inbound.Spam, error) {
	t.Helper()
	return c.Check(context.Background(), req, strings.NewReader(msg), int64(len(msg)))
}

func newClient(t *testing.T, o rspamd.Options) *rspamd.Client {
	t.Helper()
	c, err := rspamd.New(o)
	if err != nil {
		t.Fatalf("New(%+v) = %v", o, err)
	}
	return c
}

func names(r *inbound.Spam) []string {
	var n []string
	for _, s := range r.Symbols {
		n = append(n, s.Name)
	}
	return n
}

// TestCheckRealRspamd asks a real rspamd about the GTUBE strings and an
// ordinary message that passed our SPF, DKIM and DMARC.
func TestCheckRealRspamd(t *testing.T) {
	srv := rspamdtest.Start(t)
	c := newClient(t, rspamd.Options{URL: srv.URL, Timeout: time.Minute})
	req := &rspamd.Request{IP: "192.0.2.10", Helo: "mail.example.org", MailFrom: "alice@example.org",
		Rcpts: []string{"support@example.test", "sales@example.test"}, QueueID: "01testqueueid", Hostname: "mx.example.test"}

	for _, tc := range []struct{ body, action string }{
		{rspamdtest.GTUBE, inbound.SpamActionReject},
		{rspamdtest.GTUBEAddHeader, inbound.SpamActionAddHeader},
		{rspamdtest.GTUBERewriteSubject, inbound.SpamActionRewriteSubject},
	} {
		r, err := check(t, c, req, message(tc.body))
		if err != nil {
			t.Fatalf("Check(%.4s…) = %v", tc.body, err)
		}
		if !r.OK() || r.Action != tc.action || !slices.Contains(names(r), "GTUBE") {
			t.Errorf("Check(%.4s…) = %+v, want action %q with symbol GTUBE", tc.body, r, tc.action)
		}
	}

	// Our verdicts reach rspamd's http_headers module, which scores them
	// in place of its own checks.
	req.Auth = &inbound.Auth{
		SPF:   inbound.SPFResult{Result: "pass", Domain: "example.org"},
		DKIM:  []inbound.DKIMResult{{Result: "pass", Domain: "example.org", Selector: "s1"}},
		DMARC: inbound.DMARCResult{Result: "pass", Policy: "reject", Domain: "example.org"},
	}
	r, err := check(t, c, req, message("Thanks, Alice"))
	if err != nil {
		t.Fatalf("Check(ordinary) = %v", err)
	}
	got := names(r)
	for _, want := range []string{"R_SPF_ALLOW", "R_DKIM_ALLOW", "DMARC_POLICY_ALLOW"} {
		if !slices.Contains(got, want) {
			t.Errorf("Check(ordinary) symbols = %v, want %s among them", got, want)
		}
	}
	if r.Action != inbound.SpamActionNone || r.Score >= r.RequiredScore || r.RequiredScore <= 0 {
		t.Errorf("Check(ordinary) = %+v, want no action and a score under the required one", r)
	}
	for i := 1; i < len(r.Symbols); i++ {
		if r.Symbols[i-1].Score < r.Symbols[i].Score {
			t.Errorf("symbols not sorted by score: %v", r.Symbols)
			break
		}
	}

	// A failing DMARC under p=reject is rspamd's DMARC_POLICY_REJECT.
	req.Auth.DMARC.Result = "fail"
	req.Auth.SPF.Result = "fail"
	req.Auth.DKIM = nil
	r, err = check(t, c, req, message("Thanks, Alice"))
	if err != nil {
		t.Fatalf("Check(dmarc fail) = %v", err)
	}
	got = names(r)
	for _, want := range []string{"R_SPF_FAIL", "R_DKIM_NA", "DMARC_POLICY_REJECT"} {
		if !slices.Contains(got, want) {
			t.Errorf("Check(dmarc fail) symbols = %v, want %s among them", got, want)
		}
	}
}

// TestCheckStopped: a stopped rspamd is an error, never a verdict.
func TestCheckStopped(t *testing.T) {
	srv := rspamdtest.Start(t)
	c := newClient(t, rspamd.Options{URL: srv.URL, Timeout: time.Minute})
	if _, err := check(t, c, &rspamd.Request{IP: "192.0.2.10"}, message("x")); err != nil {
		t.Fatalf("Check before stop = %v", err)
	}
	srv.Stop()
	if r, err := check(t, c, &rspamd.Request{IP: "192.0.2.10"}, message("x")); err == nil {
		t.Fatalf("Check after stop = %+v, want an error", r)
	}
}

// TestCheckHeaders checks the request rspamd's protocol expects, on a real
// HTTP server standing in for rspamd.
func TestCheckHeaders(t *testing.T) {
	type seen struct {
		h    http.Header
		body string
		cl   int64
		path string
	}
	got := make(chan seen, 1)
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		got <- seen{r.Header.Clone(), string(b), r.ContentLength, r.URL.Path}
		io.WriteString(w, `{"is_skipped":false,"score":2.5,"required_score":15.0,"action":"no action",`+
			`"symbols":{"B":{"name":"B","score":1.0},"A":{"name":"A","score":1.0},"C":{"name":"C","score":0.5,"options":["x"]}}}`)
	}))
	defer hs.Close()
	c := newClient(t, rspamd.Options{URL: hs.URL, Password: "s3cret"})
	req := &rspamd.Request{IP: "192.0.2.10", Helo: "mail.example.org", MailFrom: "",
		Rcpts: []string{"a@example.test", "b@example.test"}, QueueID: "01q", Hostname: "mx.example.test",
		TLSVersion: "TLSv1.3", TLSCipher: "TLS_AES_128_GCM_SHA256",
		Auth: &inbound.Auth{
			SPF:   inbound.SPFResult{Result: "softfail"},
			DKIM:  []inbound.DKIMResult{{Result: "pass", Domain: "example.org"}, {Result: "permerror", Domain: "example.net"}},
			DMARC: inbound.DMARCResult{Result: "fail", Policy: "quarantine", Domain: "example.org"},
		}}
	msg := message("hi")
	r, err := check(t, c, req, msg)
	if err != nil {
		t.Fatalf("Check = %v", err)
	}
	want := &inbound.Spam{Result: "ok", Score: 2.5, RequiredScore: 15, Action: "no action",
		Symbols: []inbound.SpamSymbol{{Name: "A", Score: 1}, {Name: "B", Score: 1}, {Name: "C", Score: 0.5}}}
	if !equalJSON(r, want) {
		t.Errorf("Check = %+v, want %+v", r, want)
	}
	s := <-got
	if s.path != "/checkv2" || s.body != msg || s.cl != int64(len(msg)) {
		t.Errorf("request path %q, length %d, body %q; want /checkv2, %d, the message", s.path, s.cl, s.body, len(msg))
	}
	for k, v := range map[string]string{
		"Ip": "192.0.2.10", "Helo": "mail.example.org", "From": "<>", "Queue-Id": "01q",
		"Mta-Name": "mx.example.test", "Password": "s3cret", "Tls-Version": "TLSv1.3",
		"Spf":   `{"result":"softfail"}`,
		"Dkim":  `{"results":[{"result":"pass","domain":"example.org"},{"result":"permfail","domain":"example.net"}]}`,
		"Dmarc": `{"result":"quarantine","domain":"example.org"}`,
	} {
		if g := s.h.Get(k); g != v {
			t.Errorf("header %s = %q, want %q", k, g, v)
		}
	}
	if g := s.h.Values("Rcpt"); !slices.Equal(g, []string{"a@example.test", "b@example.test"}) {
		t.Errorf("Rcpt headers = %q, want one per recipient", g)
	}
}

func equalJSON(a, b any) bool {
	x, _ := json.Marshal(a)
	y, _ := json.Marshal(b)
	return string(x) == string(y)
}

// TestCheckErrors: every way of not getting a verdict is an error.
func TestCheckErrors(t *testing.T) {
	reply := func(status int, body string) string {
		hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			io.Copy(io.Discard, r.Body)
			w.WriteHeader(status)
			io.WriteString(w, body)
		}))
		t.Cleanup(hs.Close)
		return hs.URL
	}
	// A listener that accepts and never answers: the timeout ends it.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()
	closed, _ := net.Listen("tcp", "127.0.0.1:0")
	closedURL := "http://" + closed.Addr().String()
	closed.Close()
	for name, url := range map[string]string{
		"500":        reply(500, "oops"),
		"not json":   reply(200, "<html>"),
		"error":      reply(200, `{"error":"bad request"}`),
		"no action":  reply(200, `{"score":1}`),
		"odd action": reply(200, `{"score":1,"action":"<b>drop</b>"}`),
		"silent":     "http://" + l.Addr().String(),
		"refused":    closedURL,
	} {
		c := newClient(t, rspamd.Options{URL: url, Timeout: 300 * time.Millisecond})
		if r, err := check(t, c, nil, message("x")); err == nil {
			t.Errorf("%s: Check = %+v, want an error", name, r)
		}
	}
}

func TestCheckURL(t *testing.T) {
	for in, want := range map[string]string{
		"http://127.0.0.1:11333":          "http://127.0.0.1:11333/checkv2",
		"http://127.0.0.1:11333/":         "http://127.0.0.1:11333/checkv2",
		"https://rspamd.internal/checkv2": "https://rspamd.internal/checkv2",
		"127.0.0.1:11333":                 "",
		"ftp://x":                         "",
		"http://":                         "",
		"http://x/?a=b":                   "",
	} {
		got, err := rspamd.CheckURL(in)
		if (err != nil) != (want == "") || got != want {
			t.Errorf("CheckURL(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
}

// TestCheckStreams: a 10 MB message goes from its file to rspamd without
// being held in memory; what Check allocates stays far under the message's
// size.
func TestCheckStreams(t *testing.T) {
	srv := rspamdtest.Start(t)
	c := newClient(t, rspamd.Options{URL: srv.URL, Timeout: 2 * time.Minute})
	const size = 10 << 20
	path := filepath.Join(t.TempDir(), "big.eml")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(f, "From: a@example.org\r\nTo: b@example.test\r\nSubject: big\r\n\r\n")
	line := strings.Repeat("abcdefghij", 7) + "\r\n"
	for st, _ := f.Stat(); st.Size() < size; st, _ = f.Stat() {
		io.WriteString(f, strings.Repeat(line, 1000))
	}
	st, _ := f.Stat()
	f.Close()

	run := func() uint64 {
		f, err := os.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		if _, err := c.Check(context.Background(), &rspamd.Request{IP: "192.0.2.10"}, f, st.Size()); err != nil {
			t.Fatalf("Check(10 MB) = %v", err)
		}
		runtime.ReadMemStats(&after)
		return after.TotalAlloc - before.TotalAlloc
	}
	run() // the first connection's buffers
	if alloc := run(); alloc > size/10 {
		t.Errorf("Check(10 MB) allocated %d bytes, want under %d: the body must stream", alloc, size/10)
	}
}
