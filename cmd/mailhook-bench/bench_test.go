package main

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emersion/go-msgauth/dkim"
	"github.com/emersion/go-smtp"
	"github.com/miekg/dns"

	"github.com/mailhook/mailhook/internal/testenv"
)

// The tests run the tool's own pieces over loopback: the client against
// the no-op sink and against a server that refuses some recipients, the
// same for smtp-source (when installed), the webhook receiver with good and
// bad signatures, and the DNS server. None needs the mailhook binary.

func TestClientAgainstSink(t *testing.T) {
	sk, err := startSink()
	if err != nil {
		t.Fatal(err)
	}
	defer sk.Close()
	for _, tc := range []struct {
		size    string
		perConn int
		count   int64
	}{{"2k", 1, 60}, {"2k", 7, 100}, {"20k", 0, 40}} {
		t.Run(fmt.Sprintf("%s/per-conn=%d", tc.size, tc.perConn), func(t *testing.T) {
			msgs, err := newMessageSet(tc.size, "ed25519")
			if err != nil {
				t.Fatal(err)
			}
			var acks atomic.Int64
			st := runClient(context.Background(), clientOptions{
				Addr: sk.Addr(), Sessions: 4, PerConn: tc.perConn, Count: tc.count, Msgs: msgs, RunID: "t",
				Timeout: 10 * time.Second, OnAccept: func(int64, time.Time) { acks.Add(1) },
			})
			if got := st.Accepted.Load(); got != tc.count || st.Attempted.Load() != tc.count || acks.Load() != tc.count {
				t.Errorf("accepted %d, attempted %d, OnAccept %d; want %d each", got, st.Attempted.Load(), acks.Load(), tc.count)
			}
			if errs := st.Errors(); len(errs) != 0 {
				t.Errorf("errors = %v, want none", errs)
			}
			if st.NoPipelining.Load() != 0 {
				t.Errorf("%d connections without PIPELINING; the sink advertises it", st.NoPipelining.Load())
			}
			wantConns := int64(4)
			if tc.perConn > 0 {
				wantConns = (tc.count + int64(tc.perConn) - 1) / int64(tc.perConn)
			}
			if c := st.Connections.Load(); tc.perConn == 1 && c != wantConns || c < wantConns || c > wantConns+4 {
				t.Errorf("connections = %d, want about %d", c, wantConns)
			}
			size := int64(msgs.tmpls[0].size())
			if b := st.AcceptedBytes.Load(); b < tc.count*size || b > tc.count*(size+200) {
				t.Errorf("accepted bytes = %d for %d messages of %d bytes", b, tc.count, size)
			}
		})
	}
}

// refusingSession refuses every third recipient with 451 and every
// seventh message at end of data with 554.
type refusingSession struct{ n *atomic.Int64 }

func (refusingSession) Reset()                               {}
func (refusingSession) Logout() error                        { return nil }
func (refusingSession) Mail(string, *smtp.MailOptions) error { return nil }
func (s refusingSession) Rcpt(string, *smtp.RcptOptions) error {
	if s.n.Add(1)%3 == 0 {
		return &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "try later"}
	}
	return nil
}
func (s refusingSession) Data(r io.Reader) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	if bytes.Contains(b, []byte("-7\r\n")) || bytes.Contains(b, []byte("-14\r\n")) {
		return &smtp.SMTPError{Code: 554, EnhancedCode: smtp.EnhancedCode{5, 6, 0}, Message: "no"}
	}
	return nil
}

func TestClientCountsRefusals(t *testing.T) {
	var n atomic.Int64
	srv := smtp.NewServer(smtp.BackendFunc(func(*smtp.Conn) (smtp.Session, error) { return refusingSession{&n}, nil }))
	srv.Domain = "refuse.test"
	srv.ErrorLog = log.New(io.Discard, "", 0)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(l)
	defer srv.Close()
	msgs, err := newMessageSet("2k", "none")
	if err != nil {
		t.Fatal(err)
	}
	const count = 60
	st := runClient(context.Background(), clientOptions{Addr: l.Addr().String(), Sessions: 3, PerConn: 0, Count: count,
		Msgs: msgs, RunID: "r", Timeout: 10 * time.Second})
	errs := st.Errors()
	if errs["RCPT 451"] != count/3 {
		t.Errorf("RCPT 451 × %d, want %d (errors %v)", errs["RCPT 451"], count/3, errs)
	}
	var failed int64
	for k, v := range errs {
		if k != "RCPT 451" && k != "DOT 554" {
			t.Errorf("unexpected error %q × %d", k, v)
		}
		failed += v
	}
	if st.Accepted.Load()+failed != count || st.Attempted.Load() != count {
		t.Errorf("accepted %d + failed %d (attempted %d), want %d", st.Accepted.Load(), failed, st.Attempted.Load(), count)
	}
}

func sign(key []byte, id, ts string, body []byte) string {
	mac := hmac.New(sha256.New, key)
	fmt.Fprintf(mac, "%s.%s.%s", id, ts, body)
	return "v1," + base64.StdEncoding.EncodeToString(mac.Sum(nil))
}

func TestReceiverVerifiesSignatures(t *testing.T) {
	r, err := startReceiver(benchSecret, "run1", true, false)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	key, _ := parseSecret(benchSecret)
	body := []byte(`{"type":"message.received","message":{"subject":"mhb run1-7"},` +
		`"auth":{"spf":{"result":"pass"},"dkim":[{"result":"pass"}],"dmarc":{"result":"pass"}}}`)
	now := strconv.FormatInt(time.Now().Unix(), 10)
	old := strconv.FormatInt(time.Now().Add(-time.Hour).Unix(), 10)
	r.accepted(7, time.Now())
	for _, tc := range []struct {
		name, ts, sig string
		want          int
	}{
		{"good", now, sign(key, "msg_1", now, body), http.StatusNoContent},
		{"good among several", now, "v1,AAAA " + sign(key, "msg_1", now, body), http.StatusNoContent},
		{"wrong key", now, sign([]byte("another key of enough bytes!!"), "msg_1", now, body), http.StatusUnauthorized},
		{"other body", now, sign(key, "msg_1", now, append(body, ' ')), http.StatusUnauthorized},
		{"stale timestamp", old, sign(key, "msg_1", old, body), http.StatusUnauthorized},
		{"no signature", now, "", http.StatusUnauthorized},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest(http.MethodPost, r.URL(), bytes.NewReader(body))
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("webhook-id", "msg_1")
			req.Header.Set("webhook-timestamp", tc.ts)
			req.Header.Set("webhook-signature", tc.sig)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tc.want {
				t.Errorf("status %d, want %d", resp.StatusCode, tc.want)
			}
		})
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.bad != 4 || r.dups != 1 || len(r.arriveAt) != 1 || r.authFail != 0 || r.malformed != 0 {
		t.Errorf("bad %d dups %d arrived %d authFail %d malformed %d; want 4 1 1 0 0", r.bad, r.dups, len(r.arriveAt), r.authFail, r.malformed)
	}
	if _, ok := r.arriveAt[7]; !ok {
		t.Errorf("message 7 not recorded: %v", r.arriveAt)
	}
}

func TestDNSServerAnswers(t *testing.T) {
	msgs, err := newMessageSet("2k", "rsa")
	if err != nil {
		t.Fatal(err)
	}
	s, err := startDNS(msgs.txtRecords())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	lookup := func(net, name string, qtype uint16) (*dns.Msg, error) {
		m := new(dns.Msg)
		m.SetQuestion(dns.Fqdn(name), qtype)
		c := &dns.Client{Net: net, Timeout: 5 * time.Second}
		r, _, err := c.Exchange(m, s.Addr())
		return r, err
	}
	txt := func(r *dns.Msg) string {
		var out []string
		for _, rr := range r.Answer {
			if t, ok := rr.(*dns.TXT); ok {
				out = append(out, strings.Join(t.Txt, ""))
			}
		}
		return strings.Join(out, "|")
	}
	for _, proto := range []string{"udp", "tcp"} {
		for _, tc := range []struct {
			name  string
			qtype uint16
			rcode int
			want  string
		}{
			{"bench.test", dns.TypeTXT, dns.RcodeSuccess, "v=spf1 ip4:127.0.0.1 -all"},
			{"_dmarc.bench.test", dns.TypeTXT, dns.RcodeSuccess, "v=DMARC1; p=reject; adkim=r; aspf=r"},
			{"mhb._domainkey.bench.test", dns.TypeTXT, dns.RcodeSuccess, "v=DKIM1; k=rsa; p=" + msgs.dkimPub},
			{"bench.test", dns.TypeMX, dns.RcodeSuccess, ""},
			{"other.bench.test", dns.TypeTXT, dns.RcodeNameError, ""},
		} {
			r, err := lookup(proto, tc.name, tc.qtype)
			if err != nil {
				t.Fatalf("%s %s: %v", proto, tc.name, err)
			}
			if r.Rcode != tc.rcode || txt(r) != tc.want {
				t.Errorf("%s %s %s = rcode %d %q, want %d %q", proto, tc.name, dns.TypeToString[tc.qtype], r.Rcode, txt(r), tc.rcode, tc.want)
			}
		}
	}
	if s.TotalQueries() != 10 {
		t.Errorf("queries = %d, want 10", s.TotalQueries())
	}
	// The message the client sends verifies against the published key.
	fields := []byte("Message-ID: <x.1@bench.test>\r\nSubject: mhb x-1\r\n")
	tm := msgs.tmpls[0]
	raw := append(append(append([]byte(nil), tm.head...), fields...), tm.tail[:len(tm.tail)-3]...)
	vs, err := dkim.VerifyWithOptions(bytes.NewReader(raw), &dkim.VerifyOptions{LookupTXT: func(domain string) ([]string, error) {
		r, err := lookup("udp", domain, dns.TypeTXT)
		if err != nil {
			return nil, err
		}
		return []string{txt(r)}, nil
	}})
	if err != nil || len(vs) != 1 || vs[0].Err != nil || vs[0].Domain != senderDomain {
		t.Errorf("dkim.Verify = %v, %v; want one pass for %s", vs, err, senderDomain)
	}
}

func TestParseSizeAndSummarize(t *testing.T) {
	for in, want := range map[string]int{"2k": 2048, "100K": 102400, "10m": 10 << 20, "512": 512, "2kb": 2048} {
		got, _, err := parseSize(in)
		if err != nil || len(got) != 1 || got[0] != want {
			t.Errorf("parseSize(%q) = %v, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "k", "-1", "two", "5000m"} {
		if _, _, err := parseSize(in); err == nil {
			t.Errorf("parseSize(%q) gave no error", in)
		}
	}
	var d []time.Duration
	for i := 100; i >= 1; i-- {
		d = append(d, time.Duration(i)*time.Millisecond)
	}
	slices.Sort(d)
	if l := summarize(d); l.N != 100 || l.P50 != 50 || l.P95 != 95 || l.P99 != 99 || l.Max != 100 {
		t.Errorf("summarize(1..100 ms) = %+v", l)
	}
	m, err := newMessageSet("mixed", "none")
	if err != nil {
		t.Fatal(err)
	}
	seen := map[*template]bool{}
	for i := range int64(1000) {
		seen[m.pick(i)] = true
	}
	if len(seen) < 4 {
		t.Errorf("mixed: %d of %d sizes picked in 1000 messages", len(seen), len(m.tmpls))
	}
}

// capturingSession records each accepted message's recipients and data,
// and refuses every refuseRcpt-th recipient with 451 and every
// refuseData-th message at end of data with 554 (0: none).
type capturingSession struct {
	c    *capture
	rcpt []string
}

type capture struct {
	mu                     sync.Mutex
	nRcpt, nData           int
	refuseRcpt, refuseData int
	msgs                   map[string][]byte // by Subject and recipient
	dups                   int
}

func (s *capturingSession) Reset()                               { s.rcpt = nil }
func (s *capturingSession) Logout() error                        { return nil }
func (s *capturingSession) Mail(string, *smtp.MailOptions) error { return nil }
func (s *capturingSession) Rcpt(to string, _ *smtp.RcptOptions) error {
	s.c.mu.Lock()
	defer s.c.mu.Unlock()
	s.c.nRcpt++
	if s.c.refuseRcpt > 0 && s.c.nRcpt%s.c.refuseRcpt == 0 {
		return &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "try later"}
	}
	s.rcpt = append(s.rcpt, to)
	return nil
}
func (s *capturingSession) Data(r io.Reader) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	s.c.mu.Lock()
	defer s.c.mu.Unlock()
	s.c.nData++
	if s.c.refuseData > 0 && s.c.nData%s.c.refuseData == 0 {
		return &smtp.SMTPError{Code: 554, EnhancedCode: smtp.EnhancedCode{5, 6, 0}, Message: "no"}
	}
	subject := ""
	if _, rest, ok := bytes.Cut(b, []byte("\r\nSubject: ")); ok {
		subject, _, _ = strings.Cut(string(rest), "\r\n")
	}
	key := subject + " " + strings.Join(s.rcpt, ",")
	if _, dup := s.c.msgs[key]; dup {
		s.c.dups++
	}
	s.c.msgs[key] = b
	return nil
}

func startCapture(t *testing.T, c *capture) string {
	c.msgs = map[string][]byte{}
	srv := smtp.NewServer(smtp.BackendFunc(func(*smtp.Conn) (smtp.Session, error) { return &capturingSession{c: c}, nil }))
	srv.Domain = "capture.test"
	srv.MaxMessageBytes = 64 << 20
	srv.ErrorLog = log.New(io.Discard, "", 0)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	return l.Addr().String()
}

// smtpSource finds smtp-source, or skips (fails under
// MAILHOOK_REQUIRE_ALL).
func smtpSource(t *testing.T) string {
	t.Helper()
	bin := testenv.Tool(t, smtpSourceHint, "smtp-source", "/usr/sbin/smtp-source")
	if p, err := findSMTPSource(); err != nil || p == "" {
		t.Fatalf("testenv found %s, findSMTPSource: %q, %v", bin, p, err)
	}
	return bin
}

func TestSMTPSourceAgainstSink(t *testing.T) {
	bin := smtpSource(t)
	sk, err := startSink()
	if err != nil {
		t.Fatal(err)
	}
	defer sk.Close()
	msgs, err := newMessageSet("2k", "ed25519")
	if err != nil {
		t.Fatal(err)
	}
	for _, perConn := range []int{1, 0} {
		t.Run(fmt.Sprintf("per-conn=%d", perConn), func(t *testing.T) {
			const count = 50
			var sent atomic.Int64
			st := runSMTPSource(context.Background(), clientOptions{Addr: sk.Addr(), Sessions: 4, PerConn: perConn, Count: count,
				Msgs: msgs, RunID: "s", Timeout: 10 * time.Second, Binary: bin, OnSent: func(n int64) { sent.Store(n) }})
			if st.Accepted.Load() != count || st.Attempted.Load() != count || sent.Load() != count {
				t.Errorf("accepted %d, attempted %d, sent %d; want %d each", st.Accepted.Load(), st.Attempted.Load(), sent.Load(), count)
			}
			if errs := st.Errors(); len(errs) != 0 || st.Fatal != "" {
				t.Errorf("errors %v, fatal %q; want none", errs, st.Fatal)
			}
			wantConns := int64(count)
			if perConn == 0 {
				wantConns = 4
			}
			if c := st.Connections.Load(); c != wantConns {
				t.Errorf("connections = %d, want %d", c, wantConns)
			}
			if b := st.AcceptedBytes.Load(); b < count*int64(msgs.tmpls[0].size()) {
				t.Errorf("accepted bytes = %d for %d messages of %d bytes", b, count, msgs.tmpls[0].size())
			}
		})
	}
	// A run bounded by time is rounds of smtp-source: every message of
	// each round counted once.
	st := runSMTPSource(context.Background(), clientOptions{Addr: sk.Addr(), Sessions: 3, PerConn: 1, Duration: 300 * time.Millisecond,
		Msgs: msgs, RunID: "d", Timeout: 10 * time.Second, Binary: bin})
	if st.Accepted.Load() == 0 || st.Accepted.Load() != st.Attempted.Load() || len(st.Errors()) != 0 || st.Fatal != "" {
		t.Errorf("duration run: accepted %d, attempted %d, errors %v, fatal %q", st.Accepted.Load(), st.Attempted.Load(), st.Errors(), st.Fatal)
	}
}

// Every message smtp-source sends is a different message to mailhook (its
// stable id is envelope + content) and carries the bench's DKIM-signed
// template intact; refusals are counted under the builtin client's keys.
func TestSMTPSourceMessagesAndRefusals(t *testing.T) {
	bin := smtpSource(t)
	msgs, err := newMessageSet("20k", "ed25519")
	if err != nil {
		t.Fatal(err)
	}
	c := &capture{refuseRcpt: 5, refuseData: 7}
	addr := startCapture(t, c)
	const count = 70
	o := clientOptions{Addr: addr, Sessions: 3, PerConn: 1, Count: count, Msgs: msgs, RunID: "m", Timeout: 10 * time.Second, Binary: bin}
	st := runSMTPSource(context.Background(), o)
	errs := st.Errors()
	// 14 recipients refused; of the 56 messages sent, 8 refused at the dot.
	if errs["RCPT 451"] != 14 || errs["DOT 554"] != 8 || len(errs) != 2 || st.Fatal != "" {
		t.Errorf("errors %v, fatal %q; want RCPT 451×14, DOT 554×8", errs, st.Fatal)
	}
	if st.Accepted.Load() != count-14-8 || st.Attempted.Load() != count {
		t.Errorf("accepted %d, attempted %d; want %d, %d", st.Accepted.Load(), st.Attempted.Load(), count-14-8, count)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.msgs) != count-14-8 || c.dups != 0 {
		t.Errorf("%d distinct messages (%d repeated), want %d", len(c.msgs), c.dups, count-14-8)
	}
	want := sourceMessage(msgs.tmpls[0], "m-r0")
	for key, b := range c.msgs {
		if !strings.HasPrefix(key, "mhb m-r0 ") || !strings.HasSuffix(key, rcptTo) {
			t.Errorf("message %q: want Subject mhb m-r0 and a numbered %s", key, rcptTo)
		}
		// smtp-source ends the data with one more CRLF; relaxed body
		// canonicalization (RFC 6376 §3.4.4) ignores it.
		if !bytes.Equal(bytes.TrimSuffix(b, []byte("\r\n")), want) {
			t.Errorf("message %q is not the template as sent (%d bytes, want %d)", key, len(b), len(want))
			break
		}
	}
}

func TestSMTPSourceErrorLines(t *testing.T) {
	for line, want := range map[string]string{
		"smtp-source: warning: recipient rejected: 451 4.3.0 try later":  "RCPT 451",
		"smtp-source: warning: end of data rejected: 554 5.6.0 no":       "DOT 554",
		"smtp-source: warning: data rejected: 421 4.4.2 bye":             "DATA 421",
		"smtp-source: warning: sender rejected: 550 5.7.1 no":            "MAIL 550",
		"smtp-source: fatal: connect to 127.0.0.1:1: Connection refused": "smtp-source: connect to 127.0.0.1:1: Connection refused",
		"1\r2\r": "",
	} {
		if got, _ := sourceError(line); got != want {
			t.Errorf("sourceError(%q) = %q, want %q", line, got, want)
		}
	}
	for _, s := range []runSpec{{Rate: 10}, {PerConn: 5}, {Nodes: 2, PerConn: 1}, {Size: "mixed", PerConn: 1}} {
		if smtpSourceUnfit(s) == "" {
			t.Errorf("smtpSourceUnfit(%+v) = \"\", want a reason", s)
		}
	}
	if u := smtpSourceUnfit(runSpec{Size: "2k", PerConn: 1, Nodes: 1}); u != "" {
		t.Errorf("smtpSourceUnfit(2k, per-conn 1) = %q", u)
	}
}

// msgID makes an id as mailhook's ingest does: 48 bits of milliseconds,
// then random bits.
func msgID(at time.Time) string {
	var b [16]byte
	binary.BigEndian.PutUint64(b[:8], uint64(at.UnixMilli())<<16)
	copy(b[6:], "0123456789")
	return msgIDEncoding.EncodeToString(b[:])
}

func TestReceiverByKey(t *testing.T) {
	r, err := startReceiver(benchSecret, "run2", true, true)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	key, _ := parseSecret(benchSecret)
	acc := time.Now().Add(-1500 * time.Millisecond).Truncate(time.Millisecond)
	post := func(subject, rcpt, id string, at time.Time) int {
		body := fmt.Appendf(nil, `{"type":"message.received","msg_id":%q,"received_at":%q,"envelope":{"rcpt_to":[%q]},"message":{"subject":%q},`+
			`"auth":{"spf":{"result":"pass"},"dkim":[{"result":"pass"}],"dmarc":{"result":"pass"}}}`,
			id, at.UTC().Format(time.RFC3339), rcpt, subject)
		now := strconv.FormatInt(time.Now().Unix(), 10)
		req, _ := http.NewRequest(http.MethodPost, r.URL(), bytes.NewReader(body))
		req.Header.Set("webhook-id", "msg_"+id)
		req.Header.Set("webhook-timestamp", now)
		req.Header.Set("webhook-signature", sign(key, "msg_"+id, now, body))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	r.setAccepted(3)
	for _, p := range []struct{ subject, rcpt, id string }{
		{"mhb run2-r0", "1support@example.test", msgID(acc)},
		{"mhb run2-r0", "2support@example.test", msgID(acc)},
		{"mhb run2-r1", "1support@example.test", "not-an-id"}, // received_at alone
		{"mhb run2-r0", "1support@example.test", msgID(acc)},  // again
		{"mhb other-r0", "1support@example.test", msgID(acc)}, // not this run's
	} {
		if code := post(p.subject, p.rcpt, p.id, acc); code != http.StatusNoContent {
			t.Errorf("%v: status %d", p, code)
		}
	}
	if a, d := r.counts(); a != 3 || d != 3 {
		t.Errorf("counts = %d accepted, %d delivered; want 3, 3", a, d)
	}
	lats, inWindow := r.latencies(time.Now())
	if len(lats) != 3 || inWindow != 3 {
		t.Fatalf("latencies %v, %d in window; want 3", lats, inWindow)
	}
	// Two from msg_id's milliseconds: at least the 1.5 s since acc. One
	// from received_at's whole second: at least as long.
	for _, l := range lats {
		if l < 1500*time.Millisecond {
			t.Errorf("latency %v, want ≥ 1.5 s (accepted at %v)", l, acc)
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.dups != 1 || r.malformed != 1 || r.coarse != 1 || r.bad != 0 || r.authFail != 0 {
		t.Errorf("dups %d malformed %d coarse %d bad %d authFail %d; want 1 1 1 0 0", r.dups, r.malformed, r.coarse, r.bad, r.authFail)
	}
}

func TestPayloadAccepted(t *testing.T) {
	at := time.Date(2026, 12, 5, 3, 4, 5, 678e6, time.UTC)
	sec := at.Truncate(time.Second).Format(time.RFC3339)
	for _, tc := range []struct {
		name, receivedAt, id string
		want                 time.Time
		fine                 bool
	}{
		{"msg_id refines", sec, msgID(at), at, true},
		{"msg_id of another second", sec, msgID(at.Add(time.Second)), at.Truncate(time.Second), false},
		{"no msg_id", sec, "", at.Truncate(time.Second), false},
		{"fractional received_at", at.Format(time.RFC3339Nano), "", at, true},
	} {
		got, fine, err := payloadAccepted(tc.receivedAt, tc.id)
		if err != nil || !got.Equal(tc.want) || fine != tc.fine {
			t.Errorf("%s: payloadAccepted(%q, %q) = %v, %v, %v; want %v, %v", tc.name, tc.receivedAt, tc.id, got, fine, err, tc.want, tc.fine)
		}
	}
	if _, _, err := payloadAccepted("yesterday", ""); err == nil {
		t.Error("payloadAccepted(\"yesterday\") gave no error")
	}
}

// timedSession is a sink session that notes when it has read each
// message's data, after a pause (the margin for the client's noting of
// its own time after the write), and only then lets the 250 go.
type timedSession struct {
	sinkSession
	mu   *sync.Mutex
	read *[]time.Time
}

func (s timedSession) Data(r io.Reader) error {
	if _, err := io.Copy(io.Discard, r); err != nil {
		return err
	}
	time.Sleep(50 * time.Millisecond)
	s.mu.Lock()
	*s.read = append(*s.read, time.Now())
	s.mu.Unlock()
	return nil
}

// TestClientAcceptTime: the time the client gives OnAccept, where the
// accept→webhook latency starts, is when it had sent the data's end:
// before the server had read it (and so before any webhook could leave),
// not when the client read the 250, which a webhook may beat.
func TestClientAcceptTime(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var read []time.Time
	srv := smtp.NewServer(smtp.BackendFunc(func(*smtp.Conn) (smtp.Session, error) {
		return timedSession{mu: &mu, read: &read}, nil
	}))
	srv.Domain = "timed.bench.test"
	srv.ErrorLog = log.New(io.Discard, "", 0)
	go srv.Serve(l)
	defer srv.Close()
	msgs, err := newMessageSet("2k", "ed25519")
	if err != nil {
		t.Fatal(err)
	}
	var at []time.Time
	st := runClient(context.Background(), clientOptions{
		Addr: l.Addr().String(), Sessions: 1, Count: 5, Msgs: msgs, RunID: "t", Timeout: 10 * time.Second,
		OnAccept: func(_ int64, sent time.Time) { at = append(at, sent) }, // one session: one goroutine
	})
	if errs := st.Errors(); len(errs) != 0 {
		t.Fatalf("errors = %v", errs)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(at) != 5 || len(read) != 5 {
		t.Fatalf("OnAccept called %d times, server read %d messages; want 5 each", len(at), len(read))
	}
	for i := range at {
		if !at[i].Before(read[i]) {
			t.Errorf("message %d: OnAccept at %v, not before the server read it at %v", i, at[i], read[i])
		}
		if i > 0 && !at[i].After(read[i-1]) {
			t.Errorf("message %d: OnAccept at %v, before the previous message was read at %v", i, at[i], read[i-1])
		}
	}
}
