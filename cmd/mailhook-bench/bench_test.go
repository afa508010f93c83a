package main

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emersion/go-msgauth/dkim"
	"github.com/emersion/go-smtp"
	"github.com/miekg/dns"
)

// The tests run the tool's own pieces over loopback: the client against
// the no-op sink and against a server that refuses some recipients, the
// webhook receiver with good and bad signatures, and the DNS server. None
// needs the mailhook binary.

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
	r, err := startReceiver(benchSecret, "run1", true)
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
