package webhook

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"reflect"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/mailhook/mailhook/deliver"
	"github.com/mailhook/mailhook/inbound"
	"github.com/mailhook/mailhook/parse"
)

// received is one request as the test receiver saw it.
type received struct {
	header        http.Header
	body          []byte
	contentLength int64
	proto         int
	remote        string
	path          string
}

// receiver starts a real HTTP server on loopback that records every request
// and answers with h (200 when h is nil).
func receiver(t *testing.T, h http.HandlerFunc) (*httptest.Server, <-chan received) {
	t.Helper()
	ch := make(chan received, 64)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		ch <- received{r.Header.Clone(), body, r.ContentLength, r.ProtoMajor, r.RemoteAddr, r.URL.Path}
		if h != nil {
			h(w, r)
		}
	}))
	t.Cleanup(srv.Close)
	return srv, ch
}

func recv(t *testing.T, ch <-chan received) received {
	t.Helper()
	select {
	case r := <-ch:
		return r
	case <-time.After(10 * time.Second):
		t.Fatal("no request reached the receiver")
		return received{}
	}
}

func testMail() *inbound.Mail {
	return &inbound.Mail{
		ID:         "m_7f3a9c",
		ReceivedAt: time.Date(2026, 11, 29, 4, 0, 0, 0, time.FixedZone("x", 3600)),
		Envelope: inbound.Envelope{MailFrom: "alice@example.org", RcptTo: []string{"support@example.test"},
			ClientIP: "192.0.2.7", Helo: "mx.example.org", TLS: true},
		Auth: &inbound.Auth{
			SPF:                   inbound.SPFResult{Result: "pass", Domain: "example.org"},
			DKIM:                  []inbound.DKIMResult{{Result: "pass", Domain: "example.org", Selector: "s1"}},
			DMARC:                 inbound.DMARCResult{Result: "pass", Policy: "reject", Domain: "example.org"},
			AuthenticationResults: "mx.example.test; spf=pass smtp.mailfrom=example.org",
		},
		Message: &parse.Message{
			MessageID: "<1@example.org>", Date: "2026-11-29T03:59:00Z", Subject: "Help <now> & soon",
			From:    &parse.Address{Name: "Alice", Address: "alice@example.org"},
			To:      []parse.Address{{Address: "support@example.test"}},
			Headers: [][2]string{{"Subject", "Help <now> & soon"}},
			Text:    "hi\n", HTML: "<p>hi</p>", StrippedText: "hi",
			Attachments: []parse.Attachment{{Filename: "a.txt", ContentType: "text/plain", Size: 2,
				Disposition: "attachment", SHA256: "ab", Content: "aGk="}},
		},
		RawSize: 42,
	}
}

var jobSeq atomic.Int64

func testJob(target string) *deliver.Job {
	return &deliver.Job{ID: "job_" + strconv.FormatInt(jobSeq.Add(1), 10), MsgID: "m_7f3a9c",
		Kind: deliver.KindWebhook, Target: target, Route: "tickets", Attempts: 1}
}

func rawOf(b []byte) deliver.RawOpener {
	return func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil }
}

func mustHandle(t *testing.T, s *Sender, job *deliver.Job, raw deliver.RawOpener) deliver.Outcome {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	return s.Handle(ctx, job, testMail(), raw)
}

func TestSendSignedAndVerified(t *testing.T) {
	srv, ch := receiver(t, nil)
	oldS, newS := NewSecret(), NewSecret()
	base := time.Now()
	var tick atomic.Int64
	s := NewSender(Options{
		Version: "1.2.3",
		Now:     func() time.Time { return base.Add(time.Duration(tick.Add(1)) * time.Second) },
		Endpoints: map[string]Endpoint{"tickets": {URL: srv.URL + "/hooks/mail?token=t0ps3cret",
			Secrets: []string{newS, oldS}, AllowPrivate: true,
			Headers: map[string]string{"Authorization": "Bearer abc", "X-Tenant": "7"}}},
	})
	defer s.Close()
	job := testJob("tickets")
	var stamps []string
	for attempt := range 2 {
		o := mustHandle(t, s, job, nil)
		if !o.Done || o.Permanent || o.Attempt.Status != 200 || o.Attempt.Error != "" {
			t.Fatalf("attempt %d: Handle = %+v, want done with 200", attempt, o)
		}
		if o.Attempt.At.IsZero() || o.Attempt.Latency <= 0 {
			t.Errorf("attempt %d: At %v, Latency %v not filled", attempt, o.Attempt.At, o.Attempt.Latency)
		}
		r := recv(t, ch)
		if got := r.header.Get(HeaderID); got != job.ID {
			t.Errorf("webhook-id = %q, want the job id %q", got, job.ID)
		}
		stamps = append(stamps, r.header.Get(HeaderTimestamp))
		for _, sec := range []string{oldS, newS} {
			wh, _ := standardwebhooks.NewWebhook(sec)
			if err := wh.Verify(r.body, r.header); err != nil {
				t.Errorf("attempt %d: standardwebhooks.Verify with one secret: %v (header %q)", attempt, err, r.header.Get(HeaderSignature))
			}
		}
		if n := len(strings.Fields(r.header.Get(HeaderSignature))); n != 2 {
			t.Errorf("%d signatures, want 2 (one per secret)", n)
		}
		wh, _ := standardwebhooks.NewWebhook(NewSecret())
		if err := wh.Verify(r.body, r.header); err == nil {
			t.Error("an unrelated secret verified")
		}
		for k, want := range map[string]string{
			"User-Agent": "mailhook/1.2.3", "Content-Type": "application/json",
			"Authorization": "Bearer abc", "X-Tenant": "7",
		} {
			if got := r.header.Get(k); got != want {
				t.Errorf("%s = %q, want %q", k, got, want)
			}
		}
		want, err := BuildEvent(job, testMail(), nil)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(r.body, want) {
			t.Errorf("body differs from BuildEvent:\n got %s\nwant %s", r.body, want)
		}
		if r.contentLength != int64(len(r.body)) {
			t.Errorf("Content-Length %d, body %d bytes", r.contentLength, len(r.body))
		}
	}
	if stamps[0] == stamps[1] {
		t.Errorf("webhook-timestamp %s did not change across attempts", stamps[0])
	}
}

func keys(m map[string]any) []string {
	var k []string
	for n := range m {
		k = append(k, n)
	}
	slices.Sort(k)
	return k
}

func wantKeys(t *testing.T, what string, v any, want ...string) map[string]any {
	t.Helper()
	m, ok := v.(map[string]any)
	if !ok {
		t.Fatalf("%s is %T, want an object", what, v)
	}
	slices.Sort(want)
	if got := keys(m); !slices.Equal(got, want) {
		t.Errorf("%s keys = %v, want %v", what, got, want)
	}
	return m
}

// TestEventFields checks the JSON field names against the contract in
// DESIGN.md ("Webhooks").
func TestEventFields(t *testing.T) {
	b, err := BuildEvent(testJob("x"), testMail(), nil)
	if err != nil {
		t.Fatal(err)
	}
	var ev map[string]any
	if err := json.Unmarshal(b, &ev); err != nil {
		t.Fatalf("event is not JSON: %v\n%s", err, b)
	}
	wantKeys(t, "event", ev, "type", "id", "msg_id", "received_at", "route", "envelope", "auth", "message")
	if ev["type"] != "message.received" || ev["id"] != "m_7f3a9c" || ev["route"] != "tickets" {
		t.Errorf("type, id, route = %v, %v, %v", ev["type"], ev["id"], ev["route"])
	}
	if ev["received_at"] != "2026-11-29T03:00:00Z" {
		t.Errorf("received_at = %v, want RFC 3339 UTC", ev["received_at"])
	}
	wantKeys(t, "envelope", ev["envelope"], "mail_from", "rcpt_to", "client_ip", "helo", "tls")
	a := wantKeys(t, "auth", ev["auth"], "spf", "dkim", "dmarc", "authentication_results")
	wantKeys(t, "auth.spf", a["spf"], "result", "domain")
	wantKeys(t, "auth.dkim[0]", a["dkim"].([]any)[0], "result", "domain", "selector")
	wantKeys(t, "auth.dmarc", a["dmarc"], "result", "policy", "domain")
	m := wantKeys(t, "message", ev["message"], "message_id", "in_reply_to", "references", "date", "subject",
		"from", "to", "cc", "reply_to", "headers", "text", "html", "stripped_text", "auto_submitted", "attachments",
		"stripped_signature", "stripped_html", "rcpt_tag")
	wantKeys(t, "message.from", m["from"], "name", "address")
	wantKeys(t, "message.attachments[0]", m["attachments"].([]any)[0],
		"filename", "content_type", "size", "disposition", "content_id", "sha256", "content")
	if h := m["headers"].([]any)[0].([]any); len(h) != 2 || h[0] != "Subject" {
		t.Errorf("headers[0] = %v, want [name, value]", h)
	}
	// Absent lists are [] (not null), HTML is not \u003c-escaped.
	for _, k := range []string{"references", "cc", "reply_to"} {
		if l, ok := m[k].([]any); !ok || len(l) != 0 {
			t.Errorf("message.%s = %#v, want []", k, m[k])
		}
	}
	if !bytes.Contains(b, []byte(`"<p>hi</p>"`)) {
		t.Errorf("html escaped: %s", b)
	}
	// A mail with nothing parsed still gives objects and arrays.
	b, err = BuildEvent(testJob("x"), &inbound.Mail{ID: "m"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, frag := range []string{`"rcpt_to":[]`, `"dkim":[]`, `"attachments":[]`, `"headers":[]`} {
		if !bytes.Contains(b, []byte(frag)) {
			t.Errorf("empty mail event lacks %s: %s", frag, b)
		}
	}
}

func TestRaw(t *testing.T) {
	srv, ch := receiver(t, nil)
	secret := NewSecret()
	sk, pk := NewSigningKey()
	s := NewSender(Options{Endpoints: map[string]Endpoint{
		"plain":  {URL: srv.URL, Secrets: []string{secret}, AllowPrivate: true},
		"raw":    {URL: srv.URL, Secrets: []string{secret}, AllowPrivate: true, Raw: true},
		"rawkey": {URL: srv.URL, Secrets: []string{secret}, SigningKeys: []string{sk}, AllowPrivate: true, Raw: true},
	}})
	defer s.Close()
	wh, _ := standardwebhooks.NewWebhook(secret)

	msg := []byte("Subject: hi\r\n\r\nhello\r\n")
	o := mustHandle(t, s, testJob("plain"), rawOf(msg))
	r := recv(t, ch)
	if !o.Done || bytes.Contains(r.body, []byte(`"raw"`)) {
		t.Fatalf("endpoint without raw: %+v, body %s", o, r.body)
	}

	for _, size := range []int{0, 1, 2, 3, 12<<10 - 1, 12 << 10, 12<<10 + 1, 200_001} {
		big := make([]byte, size)
		for i := range big {
			big[i] = byte(i*7 + i>>8)
		}
		for _, name := range []string{"raw", "rawkey"} {
			opens, closes := 0, 0
			var mu sync.Mutex
			opener := func() (io.ReadCloser, error) {
				mu.Lock()
				opens++
				mu.Unlock()
				return closer{bytes.NewReader(big), func() { mu.Lock(); closes++; mu.Unlock() }}, nil
			}
			job := testJob(name)
			o := mustHandle(t, s, job, opener)
			r := recv(t, ch)
			if !o.Done {
				t.Fatalf("%s %d bytes: %+v", name, size, o)
			}
			var ev struct {
				Raw *string `json:"raw"`
			}
			if err := json.Unmarshal(r.body, &ev); err != nil || ev.Raw == nil {
				t.Fatalf("%s %d bytes: no raw in %.200s: %v", name, size, r.body, err)
			}
			got, err := base64.StdEncoding.DecodeString(*ev.Raw)
			if err != nil || !bytes.Equal(got, big) {
				t.Fatalf("%s %d bytes: raw decodes to %d bytes, %v", name, size, len(got), err)
			}
			if r.contentLength != int64(len(r.body)) {
				t.Errorf("%s %d bytes: Content-Length %d, body %d", name, size, r.contentLength, len(r.body))
			}
			if err := wh.Verify(r.body, r.header); err != nil {
				t.Errorf("%s %d bytes: standardwebhooks.Verify: %v", name, size, err)
			}
			if name == "rawkey" && !verifyV1a(t, pk, r.header.Get(HeaderSignature), job.ID, r.header.Get(HeaderTimestamp), r.body) {
				t.Errorf("%s %d bytes: v1a signature does not verify", name, size)
			}
			want, err := BuildEvent(job, testMail(), bytes.NewReader(big))
			if err != nil || !bytes.Equal(want, r.body) {
				t.Errorf("%s %d bytes: body differs from BuildEvent (%v)", name, size, err)
			}
			mu.Lock()
			if opens == 0 || opens != closes {
				t.Errorf("%s: raw opened %d times, closed %d", name, opens, closes)
			}
			mu.Unlock()
		}
	}

	// No stored raw message for an endpoint that wants it: a failed attempt.
	if o := mustHandle(t, s, testJob("raw"), nil); o.Done || o.Attempt.Error == "" {
		t.Errorf("raw endpoint without raw = %+v, want a failure", o)
	}
}

type closer struct {
	io.Reader
	f func()
}

func (c closer) Close() error { c.f(); return nil }

func TestSigningKeyOnly(t *testing.T) {
	srv, ch := receiver(t, nil)
	sk, pk := NewSigningKey()
	s := NewSender(Options{Endpoints: map[string]Endpoint{
		"k": {URL: srv.URL, SigningKeys: []string{sk}, AllowPrivate: true}}})
	defer s.Close()
	job := testJob("k")
	if o := mustHandle(t, s, job, nil); !o.Done {
		t.Fatalf("Handle = %+v", o)
	}
	r := recv(t, ch)
	sig := r.header.Get(HeaderSignature)
	if strings.Contains(sig, "v1,") || !verifyV1a(t, pk, sig, job.ID, r.header.Get(HeaderTimestamp), r.body) {
		t.Errorf("signature header %q: want one v1a signature that verifies", sig)
	}
}

func TestHTTP2OverTLS(t *testing.T) {
	var proto atomic.Int32
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		proto.Store(int32(r.ProtoMajor))
		w.WriteHeader(http.StatusNoContent)
	}))
	srv.EnableHTTP2 = true
	srv.StartTLS()
	defer srv.Close()
	pool := x509.NewCertPool()
	pool.AddCert(srv.Certificate())
	s := NewSender(Options{
		Transport: TransportOptions{TLSConfig: &tls.Config{RootCAs: pool}},
		Endpoints: map[string]Endpoint{"h2": {URL: srv.URL, Secrets: []string{NewSecret()}, AllowPrivate: true}},
	})
	defer s.Close()
	if o := mustHandle(t, s, testJob("h2"), nil); !o.Done || o.Attempt.Status != 204 {
		t.Fatalf("Handle over TLS = %+v", o)
	}
	if p := proto.Load(); p != 2 {
		t.Errorf("request arrived over HTTP/%d, want HTTP/2", p)
	}
}

func TestResponseBody(t *testing.T) {
	size := make(chan int, 1)
	srv, ch := receiver(t, func(w http.ResponseWriter, r *http.Request) {
		w.Write(bytes.Repeat([]byte("ab\xff"), <-size/3))
	})
	s := NewSender(Options{Endpoints: map[string]Endpoint{
		"e": {URL: srv.URL, Secrets: []string{NewSecret()}, AllowPrivate: true}}})
	defer s.Close()
	send := func(n int) (deliver.Outcome, string) {
		size <- n
		o := mustHandle(t, s, testJob("e"), nil)
		return o, recv(t, ch).remote
	}
	o, _ := send(30)
	if want := strings.Repeat("ab\uFFFD", 10); o.Attempt.Response != want {
		t.Errorf("Response = %q, want %q", o.Attempt.Response, want)
	}
	// 10 KiB: the first KiB kept, the rest drained, the connection reused.
	o, c1 := send(10 << 10)
	// 1024 = 341*3 + 1; each invalid \xff shows as U+FFFD.
	if n := strings.Count(o.Attempt.Response, "ab"); n != 341 || !strings.HasSuffix(o.Attempt.Response, "\uFFFDa") || !o.Done {
		t.Errorf("Response holds %d pieces (%d bytes), want the first 1 KiB", n, len(o.Attempt.Response))
	}
	_, c2 := send(10 << 10)
	if c1 != c2 {
		t.Errorf("connection not reused after a drained 10 KiB response (%s, then %s)", c1, c2)
	}
	// 1 MiB: past the drain limit the connection is dropped, not read.
	o, _ = send(1 << 20)
	if strings.Count(o.Attempt.Response, "ab") != 341 || !o.Done {
		t.Errorf("1 MiB response: recorded %d bytes, done %v", len(o.Attempt.Response), o.Done)
	}
	_, c4 := send(10)
	if c4 == c2 {
		t.Errorf("connection %s reused after an undrained 1 MiB response", c4)
	}
}

func TestUnknownAndBadEndpoint(t *testing.T) {
	s := NewSender(Options{Endpoints: map[string]Endpoint{
		"bad": {URL: "ftp://example.com/", Secrets: []string{"whsec_short"}},
	}})
	defer s.Close()
	o := mustHandle(t, s, testJob("gone"), nil)
	if !o.Permanent || o.Done || !strings.Contains(o.Attempt.Error, `"gone"`) || o.Attempt.At.IsZero() {
		t.Errorf("unknown endpoint: %+v, want permanent naming it", o)
	}
	o = mustHandle(t, s, testJob("bad"), nil)
	if !o.Permanent || !strings.Contains(o.Attempt.Error, "webhooks.bad.url") ||
		!strings.Contains(o.Attempt.Error, "webhooks.bad.secrets[0]") || strings.Contains(o.Attempt.Error, "whsec_short") {
		t.Errorf("bad endpoint: %+v, want permanent naming every bad key without the secret", o)
	}
}

func TestBadJobID(t *testing.T) {
	srv, ch := receiver(t, nil)
	s := NewSender(Options{Endpoints: map[string]Endpoint{
		"e": {URL: srv.URL, Secrets: []string{NewSecret()}, AllowPrivate: true}}})
	defer s.Close()
	for _, id := range []string{"", "a.b", "a b", "a\r\nX-Evil: 1"} {
		job := testJob("e")
		job.ID = id
		o := mustHandle(t, s, job, nil)
		if !o.Permanent || !strings.Contains(o.Attempt.Error, "bad job") {
			t.Errorf("job id %q: %+v, want permanent bad job", id, o)
		}
	}
	select {
	case r := <-ch:
		t.Errorf("a bad job reached the receiver (webhook-id %q)", r.header.Get(HeaderID))
	default:
	}
}

func TestValidate(t *testing.T) {
	ok := Endpoint{Name: "e", URL: "https://hooks.example.com/x", Secrets: []string{NewSecret()}}
	if err := ok.Validate(); err != nil {
		t.Fatalf("Validate(good) = %v", err)
	}
	for _, tc := range []struct {
		mod  func(*Endpoint)
		want string
	}{
		{func(e *Endpoint) { e.URL = "" }, "webhooks.e.url: missing"},
		{func(e *Endpoint) { e.URL = "https:///x" }, "no host"},
		{func(e *Endpoint) { e.URL = "http://127.0.0.1:8080/" }, "127.0.0.1 is a loopback address; set allow_private"},
		{func(e *Endpoint) { e.URL = "http://169.254.169.254/latest" }, "cloud metadata"},
		{func(e *Endpoint) { e.URL = "http://[::1]/" }, "loopback"},
		{func(e *Endpoint) { e.Secrets = nil }, "webhooks.e.secret: missing"},
		{func(e *Endpoint) { e.SigningKeys = []string{"whsk_x"} }, "signing_keys[0]"},
		{func(e *Endpoint) { e.Timeout = -1 }, "timeout"},
		{func(e *Endpoint) { e.Concurrency = -1 }, "concurrency"},
		{func(e *Endpoint) { e.Headers = map[string]string{"Webhook-Signature": "x"} }, "set by mailhook"},
		{func(e *Endpoint) { e.Headers = map[string]string{"Bad Name": "x"} }, "not a valid header field name"},
		{func(e *Endpoint) { e.Headers = map[string]string{"X-A": "a\r\nb"} }, "invalid characters"},
	} {
		e := ok
		e.Secrets = slices.Clone(ok.Secrets)
		tc.mod(&e)
		err := e.Validate()
		if err == nil || !errors.Is(err, ErrBadEndpoint) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Validate(%+v) = %v, want an error containing %q", e, err, tc.want)
		}
	}
	e := ok
	e.URL, e.AllowPrivate = "http://127.0.0.1:8080/", true
	if err := e.Validate(); err != nil {
		t.Errorf("Validate(loopback with allow_private) = %v", err)
	}
}

// TestRefusePrivateAtDial checks that without allow_private the dialer
// itself refuses internal addresses, after DNS: a name resolving to
// loopback is refused though the configuration holds no address.
func TestRefusePrivateAtDial(t *testing.T) {
	hits := make(chan struct{}, 10)
	srv := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { hits <- struct{}{} }))
	defer srv.Close()
	_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
	s := NewSender(Options{Endpoints: map[string]Endpoint{
		"byname": {URL: "http://localhost:" + port + "/hook", Secrets: []string{NewSecret()}},
	}})
	defer s.Close()
	o := mustHandle(t, s, testJob("byname"), nil)
	if o.Done || o.Permanent || !strings.Contains(o.Attempt.Error, "loopback address; set allow_private") {
		t.Errorf("localhost without allow_private: %+v, want a refused (retried) attempt", o)
	}
	// The guarded transport refuses literal addresses at dial time too, the
	// metadata service included, before any packet leaves.
	c := newClient(s.guarded)
	for _, u := range []string{srv.URL, "http://[::1]:" + port, "http://169.254.169.254/latest/meta-data/", "http://10.1.2.3/"} {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
		resp, err := c.Do(req)
		cancel()
		var re *RefusedError
		if err == nil {
			resp.Body.Close()
		}
		if !errors.As(err, &re) {
			t.Errorf("guarded GET %s = %v, want a *RefusedError", u, err)
		}
	}
	select {
	case <-hits:
		t.Error("a refused request reached the server")
	default:
	}
	// With allow_private the same name is reached.
	s2 := NewSender(Options{Endpoints: map[string]Endpoint{
		"byname": {URL: "http://localhost:" + port + "/hook", Secrets: []string{NewSecret()}, AllowPrivate: true},
	}})
	defer s2.Close()
	if o := mustHandle(t, s2, testJob("byname"), nil); !o.Done {
		t.Errorf("localhost with allow_private: %+v", o)
	}
}

// TestCheckAddr checks that CheckAddr refuses what specialip says is not
// public (its test has the ranges), with a *RefusedError naming the kind.
func TestCheckAddr(t *testing.T) {
	var re *RefusedError
	if err := CheckAddr(netip.MustParseAddr("::ffff:127.0.0.1")); !errors.As(err, &re) || re.Reason != "loopback address" {
		t.Errorf("CheckAddr(::ffff:127.0.0.1) = %v, want a *RefusedError for a loopback address", err)
	}
	if err := CheckAddr(netip.MustParseAddr("2606:4700::1111")); err != nil {
		t.Errorf("CheckAddr(2606:4700::1111) = %v, want nil", err)
	}
}

func TestConcurrencyLimit(t *testing.T) {
	var inflight, peak atomic.Int32
	arrived := make(chan struct{}, 16)
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := inflight.Add(1)
		for {
			p := peak.Load()
			if n <= p || peak.CompareAndSwap(p, n) {
				break
			}
		}
		arrived <- struct{}{}
		<-release
		inflight.Add(-1)
	}))
	defer srv.Close()
	defer func() {
		select {
		case <-release:
		default:
			close(release)
		}
	}()
	s := NewSender(Options{Endpoints: map[string]Endpoint{
		"e": {URL: srv.URL, Secrets: []string{NewSecret()}, AllowPrivate: true, Concurrency: 2}}})
	defer s.Close()

	var wg sync.WaitGroup
	outcomes := make(chan deliver.Outcome, 5)
	for range 5 {
		wg.Go(func() { outcomes <- mustHandle(t, s, testJob("e"), nil) })
	}
	for range 2 {
		<-arrived
	}
	// Both slots are held: one more attempt waits for a slot, and gives up
	// there when its context ends.
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan deliver.Outcome, 1)
	go func() { done <- s.Handle(ctx, testJob("e"), testMail(), nil) }()
	cancel()
	if o := <-done; o.Done || !strings.Contains(o.Attempt.Error, "waiting for a free slot") {
		t.Errorf("attempt past the limit = %+v, want it to wait for a slot", o)
	}
	close(release)
	wg.Wait()
	close(outcomes)
	for o := range outcomes {
		if !o.Done {
			t.Errorf("Handle = %+v", o)
		}
	}
	if p := peak.Load(); p != 2 {
		t.Errorf("peak concurrent requests %d, want 2", p)
	}
}

func TestTimestampFromClock(t *testing.T) {
	srv, ch := receiver(t, nil)
	at := time.Unix(1_800_000_000, 0)
	s := NewSender(Options{Now: func() time.Time { return at },
		Endpoints: map[string]Endpoint{"e": {URL: srv.URL, Secrets: []string{vecSecret}, AllowPrivate: true}}})
	defer s.Close()
	job := testJob("e")
	o := mustHandle(t, s, job, nil)
	r := recv(t, ch)
	if got := r.header.Get(HeaderTimestamp); got != "1800000000" || !o.Attempt.At.Equal(at) {
		t.Fatalf("webhook-timestamp %q, At %v; want the clock's", got, o.Attempt.At)
	}
	key, _ := ParseSecret(vecSecret)
	if got, want := r.header.Get(HeaderSignature), Sign(key, job.ID, at, r.body); got != want {
		t.Errorf("signature %q, want Sign() = %q", got, want)
	}
}

// TestRawStreams checks that a large raw message is streamed, not held: the
// whole attempt (sender and a receiver that only hashes what it gets)
// allocates a small fraction of the message's size.
func TestRawStreams(t *testing.T) {
	const size = 8 << 20
	type got struct {
		sum []byte
		n   int64
	}
	ch := make(chan got, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := sha256.New()
		n, _ := io.Copy(h, r.Body)
		ch <- got{h.Sum(nil), n}
	}))
	defer srv.Close()
	s := NewSender(Options{Endpoints: map[string]Endpoint{
		"raw": {URL: srv.URL, Secrets: []string{NewSecret()}, AllowPrivate: true, Raw: true}}})
	defer s.Close()
	// The message is generated on the fly, never stored.
	opener := func() (io.ReadCloser, error) {
		return io.NopCloser(io.LimitReader(&pattern{}, size)), nil
	}
	job := testJob("raw")
	body, err := BuildEvent(job, testMail(), io.LimitReader(&pattern{}, size))
	if err != nil {
		t.Fatal(err)
	}
	want := sha256.Sum256(body)
	wantLen := int64(len(body))
	body = nil

	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	o := mustHandle(t, s, job, opener)
	g := <-ch
	runtime.ReadMemStats(&after)
	if !o.Done {
		t.Fatalf("Handle = %+v", o)
	}
	if g.n != wantLen || !bytes.Equal(g.sum, want[:]) {
		t.Fatalf("receiver got %d bytes, want BuildEvent's %d bytes", g.n, wantLen)
	}
	alloc := after.TotalAlloc - before.TotalAlloc
	t.Logf("allocated %d KiB to send a %d MiB raw message (receiver included)", alloc>>10, size>>20)
	if limit := uint64(size) / 8; alloc > limit {
		t.Errorf("allocated %d bytes, more than %d: the message seems to be held in memory", alloc, limit)
	}
}

// pattern is an endless reader of varied bytes.
type pattern struct{ off int }

var patternBlock = func() []byte {
	b := make([]byte, 64<<10+1) // odd length: the pattern does not align to base64's 3 bytes
	x := byte(1)
	for i := range b {
		b[i] = x
		x = x*31 + 7
	}
	return b
}()

func (p *pattern) Read(b []byte) (int, error) {
	n := copy(b, patternBlock[p.off:])
	p.off = (p.off + n) % len(patternBlock)
	return n, nil
}

// TestAttemptBody: an attempt reports the event it sent, without the raw
// message, as BuildEvent makes it for the history; for an endpoint with
// raw: true it is what the receiver got less the "raw" member.
func TestAttemptBody(t *testing.T) {
	srv, ch := receiver(t, nil)
	secret := NewSecret()
	s := NewSender(Options{Endpoints: map[string]Endpoint{
		"plain": {URL: srv.URL, Secrets: []string{secret}, AllowPrivate: true},
		"raw":   {URL: srv.URL, Secrets: []string{secret}, AllowPrivate: true, Raw: true},
	}})
	defer s.Close()
	msg := []byte("Subject: hi\r\n\r\nhello\r\n")
	for _, name := range []string{"plain", "raw"} {
		job := testJob(name)
		o := mustHandle(t, s, job, rawOf(msg))
		r := recv(t, ch)
		if !o.Done {
			t.Fatalf("%s: %+v", name, o)
		}
		want, err := BuildEvent(job, testMail(), nil)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(o.Attempt.Body, want) {
			t.Errorf("%s: Attempt.Body = %s\nwant %s", name, o.Attempt.Body, want)
		}
		var sent, body map[string]any
		if err := json.Unmarshal(r.body, &sent); err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(o.Attempt.Body, &body); err != nil {
			t.Fatalf("%s: Attempt.Body is not JSON: %v", name, err)
		}
		if _, ok := sent["raw"]; ok != (name == "raw") {
			t.Errorf("%s: receiver's body has raw = %v", name, ok)
		}
		delete(sent, "raw")
		if !reflect.DeepEqual(sent, body) {
			t.Errorf("%s: Attempt.Body differs from what was sent (less raw):\n%v\n%v", name, body, sent)
		}
		job.AddAttempt(o.Attempt)
		if job.History[len(job.History)-1].Body != nil {
			t.Errorf("%s: the job's history keeps the body", name)
		}
	}
}
