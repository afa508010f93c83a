package auth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-msgauth/dkim"

	"github.com/mailhook/mailhook/dns"
	"github.com/mailhook/mailhook/dns/dnstest"
	"github.com/mailhook/mailhook/header"
	"github.com/mailhook/mailhook/inbound"
)

const e2eZone = `
example.test.          300 IN TXT "v=spf1 ip4:192.0.2.0/24 -all"
mail.example.test.     300 IN TXT "v=spf1 a -all"
mail.example.test.     300 IN A   192.0.2.25
_dmarc.example.test.   300 IN TXT "v=DMARC1; p=reject"
_dmarc.quar.test.      300 IN TXT "v=DMARC1; p=quarantine"
`

func e2eSetup(t testing.TB) (*dnstest.Server, *Verifier, dkim.SignOptions) {
	rk, _ := testKeys()
	srv := dnstest.Start(t, e2eZone)
	srv.AddTXT("rsa._domainkey.example.test", 300, dkimRecord(t, rk.Public()))
	return srv, testVerifier(t, srv, nil), dkim.SignOptions{
		Domain: "example.test", Selector: "rsa", Signer: rk,
		HeaderCanonicalization: dkim.CanonicalizationRelaxed,
		BodyCanonicalization:   dkim.CanonicalizationSimple,
	}
}

func TestVerifyEndToEnd(t *testing.T) {
	_, v, so := e2eSetup(t)
	ctx := context.Background()
	signed := sign(t, crlf(plainMessage), so)

	t.Run("signed, from an SPF-allowed IP", func(t *testing.T) {
		spf := v.CheckSPF(ctx, net.ParseIP("192.0.2.10"), "mail.example.test", "<bounce@example.test>")
		if spf != (inbound.SPFResult{Result: "pass", Domain: "example.test", Identity: "mailfrom"}) {
			t.Fatalf("CheckSPF = %+v", spf)
		}
		r := verify(t, v, spf, signed)
		want := &inbound.Auth{
			SPF:   spf,
			DKIM:  []inbound.DKIMResult{{Result: "pass", Domain: "example.test", Selector: "rsa"}},
			DMARC: inbound.DMARCResult{Result: "pass", Policy: "reject", Domain: "example.test"},
			AuthenticationResults: "mx.mailhook.test; spf=pass smtp.mailfrom=example.test;" +
				" dkim=pass header.d=example.test header.s=rsa; dmarc=pass header.from=example.test",
		}
		if !reflect.DeepEqual(r, want) {
			t.Errorf("Verify =\n%+v\nwant\n%+v", r, want)
		}
		if r.Reject() {
			t.Errorf("Reject() = true, want false")
		}
		if s := r.Summary(); s["spf"] != "pass" || s["dkim"] != "pass" || s["dmarc"] != "pass" || s["dmarc_policy"] != "reject" {
			t.Errorf("Summary() = %v", s)
		}
	})

	t.Run("forged From of a p=reject domain", func(t *testing.T) {
		spf := v.CheckSPF(ctx, net.ParseIP("203.0.113.5"), "evil.test", "attacker@evil.test")
		r := verify(t, v, spf, crlf(plainMessage))
		if r.DMARC != (inbound.DMARCResult{Result: "fail", Policy: "reject", Domain: "example.test"}) || !r.Reject() {
			t.Errorf("DMARC = %+v, Reject() = %v; want fail under reject", r.DMARC, r.Reject())
		}
		if !strings.Contains(r.AuthenticationResults, "dkim=none; dmarc=fail header.from=example.test") {
			t.Errorf("AuthenticationResults = %q", r.AuthenticationResults)
		}
	})

	t.Run("signature by the domain, SPF fail", func(t *testing.T) {
		spf := v.CheckSPF(ctx, net.ParseIP("203.0.113.5"), "x", "bounce@example.test")
		if spf.Result != "fail" {
			t.Fatalf("CheckSPF = %+v, want fail", spf)
		}
		if r := verify(t, v, spf, signed); r.DMARC.Result != "pass" {
			t.Errorf("DMARC = %+v, want pass through DKIM", r.DMARC)
		}
	})

	t.Run("p=quarantine failure", func(t *testing.T) {
		msg := strings.Replace(crlf(plainMessage), "alice@example.test", "alice@quar.test", 1)
		r := verify(t, v, inbound.SPFResult{Result: "none", Domain: "evil.test", Identity: "mailfrom"}, msg)
		if r.DMARC.Result != inbound.Fail || r.DMARC.Policy != "quarantine" || r.Reject() || r.Quarantine {
			t.Errorf("DMARC = %+v, Reject() = %v, Quarantine = %v; want fail under quarantine, left to ingest to flag",
				r.DMARC, r.Reject(), r.Quarantine)
		}
	})

	t.Run("null MAIL FROM checks HELO", func(t *testing.T) {
		spf := v.CheckSPF(ctx, net.ParseIP("192.0.2.25"), "mail.example.test", "<>")
		if spf != (inbound.SPFResult{Result: "pass", Domain: "mail.example.test", Identity: "helo"}) {
			t.Fatalf("CheckSPF = %+v", spf)
		}
		r := verify(t, v, spf, signed)
		if !strings.HasPrefix(r.AuthenticationResults, "mx.mailhook.test; spf=pass smtp.helo=mail.example.test;") {
			t.Errorf("AuthenticationResults = %q", r.AuthenticationResults)
		}
		// DMARC relaxed alignment takes the HELO identity (RFC 7489 §3.1.2).
		if r.DMARC.Result != "pass" {
			t.Errorf("DMARC = %+v", r.DMARC)
		}
	})

	t.Run("malformed identities give none without lookups", func(t *testing.T) {
		for _, c := range [][2]string{{"helo", "user@[192.0.2.1]"}, {"helo", "user@nodot"}, {"A2345678", ""}, {"helo", "a@x..test"}} {
			if r := v.CheckSPF(ctx, net.ParseIP("192.0.2.1"), c[0], c[1]); r.Result != "none" {
				t.Errorf("CheckSPF(helo %q, from %q) = %+v, want none", c[0], c[1], r)
			}
		}
	})
}

// TestVerifyConcurrent runs SPF and DKIM/DMARC checks of many messages at
// once through one Verifier, as the SMTP server does (run with -race).
func TestVerifyConcurrent(t *testing.T) {
	_, v, so := e2eSetup(t)
	signed := sign(t, crlf(plainMessage), so)
	errs := make(chan error, 16)
	for i := range cap(errs) {
		go func() {
			ctx := context.Background()
			spf := v.CheckSPF(ctx, net.IPv4(192, 0, 2, byte(i)), "mail.example.test", "bounce@example.test")
			r, err := v.Verify(ctx, spf, strings.NewReader(signed))
			if err == nil && (r.DMARC.Result != "pass" || spf.Result != "pass") {
				err = fmt.Errorf("message %d: spf %s, dmarc %s", i, spf.Result, r.DMARC.Result)
			}
			errs <- err
		}()
	}
	for range cap(errs) {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
}

func TestResultsJSON(t *testing.T) {
	_, v, so := e2eSetup(t)
	spf := v.CheckSPF(context.Background(), net.ParseIP("192.0.2.10"), "h.example.test", "b@example.test")
	r := verify(t, v, spf, sign(t, crlf(plainMessage), so))
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	keys := func(v any) []string {
		var ks []string
		for k := range v.(map[string]any) {
			ks = append(ks, k)
		}
		sort.Strings(ks)
		return ks
	}
	// DESIGN.md's "auth" object (identity is an added field).
	checks := map[string][]string{
		"":      {"authentication_results", "dkim", "dmarc", "spf"},
		"spf":   {"domain", "identity", "result"},
		"dmarc": {"domain", "policy", "result"},
		"dkim":  {"domain", "result", "selector"},
	}
	for path, want := range checks {
		var obj any = m
		switch path {
		case "dkim":
			obj = m["dkim"].([]any)[0]
		case "":
		default:
			obj = m[path]
		}
		if got := keys(obj); !reflect.DeepEqual(got, want) {
			t.Errorf("JSON %q keys = %v, want %v (%s)", path, got, want, b)
		}
	}
	// An unsigned message has "dkim": [], not null.
	r = verify(t, v, spf, crlf(plainMessage))
	if b, _ := json.Marshal(r); !strings.Contains(string(b), `"dkim":[]`) {
		t.Errorf("unsigned message JSON: %s", b)
	}
}

type failingReader struct{ r io.Reader }

var errDisk = errors.New("disk on fire")

func (f failingReader) Read(p []byte) (int, error) {
	n, err := f.r.Read(p)
	if err == io.EOF {
		return n, errDisk
	}
	return n, err
}

func TestVerifyInputs(t *testing.T) {
	_, v, so := e2eSetup(t)
	ctx := context.Background()
	signed := sign(t, crlf(plainMessage), so)

	if _, err := v.Verify(ctx, inbound.SPFResult{}, failingReader{strings.NewReader(signed)}); !errors.Is(err, errDisk) {
		t.Errorf("Verify with a failing reader: %v, want %v", err, errDisk)
	}
	if _, err := v.Verify(ctx, inbound.SPFResult{}, failingReader{strings.NewReader("From: a@example.test\r\n")}); !errors.Is(err, errDisk) {
		t.Errorf("Verify with a failing reader in the header: %v, want %v", err, errDisk)
	}

	// The whole message is consumed, so a caller can tee it to storage.
	rd := strings.NewReader(crlf(plainMessage))
	if _, err := v.Verify(ctx, inbound.SPFResult{}, rd); err != nil || rd.Len() != 0 {
		t.Errorf("Verify left %d bytes unread (err %v)", rd.Len(), err)
	}

	// Header only, no body.
	r := verify(t, v, inbound.SPFResult{Result: "none"}, "From: a@example.test\r\nSubject: x\r\n")
	if r.DMARC.Result != "fail" {
		t.Errorf("header-only message: DMARC %+v", r.DMARC)
	}

	// LF line ends (a message handed in from a file): still verified.
	lf := strings.ReplaceAll(signed, "\r\n", "\n")
	r = verify(t, v, inbound.SPFResult{Result: "none"}, lf)
	if len(r.DKIM) != 1 || r.DMARC.Domain != "example.test" {
		t.Errorf("LF message: %+v", r)
	}

	// A hostile header larger than the bound: no verdicts, no error.
	huge := "X-Junk: " + strings.Repeat("a", 100) + "\r\n"
	big := strings.Repeat(huge, header.DefaultMaxBytes/len(huge)+10) + signed
	r = verify(t, v, inbound.SPFResult{Result: "none"}, big)
	if r.DMARC.Result != "permerror" || len(r.DKIM) != 1 || r.DKIM[0].Result != "permerror" {
		t.Errorf("oversized header: DKIM %+v DMARC %+v, want permerror", r.DKIM, r.DMARC)
	}
}

func TestVerifyMessageTimeout(t *testing.T) {
	srv, _, so := e2eSetup(t)
	srv.Timeout("_dmarc.example.test")
	srv.Timeout("rsa._domainkey.example.test")
	v, err := NewVerifier(Options{
		Resolver: srv.Addr(), AuthServID: "mx.mailhook.test",
		LookupTimeout: 5 * time.Second, MessageTimeout: 200 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	r := verify(t, v, inbound.SPFResult{Result: "none"}, sign(t, crlf(plainMessage), so))
	if r.DKIM[0].Result != "temperror" || r.DMARC.Result != "temperror" {
		t.Errorf("with DNS timing out: DKIM %+v DMARC %+v, want temperror", r.DKIM, r.DMARC)
	}
}

func TestNewVerifier(t *testing.T) {
	if _, err := NewVerifier(Options{Resolver: "127.0.0.1:53"}); err == nil {
		t.Error("NewVerifier without AuthServID: no error")
	}
	v, err := NewVerifier(Options{Resolver: "127.0.0.1:53", AuthServID: "mx.test"})
	if err != nil {
		t.Fatal(err)
	}
	if v.msgTimeout != DefaultMessageTimeout || v.maxSigs != DefaultMaxSignatures {
		t.Errorf("defaults not applied: %+v", v)
	}
	// A resolver given in Options is the one used, so the relay can share
	// it and its cache.
	res, err := dns.NewResolver(dns.ResolverOptions{Server: "127.0.0.1:53"})
	if err != nil {
		t.Fatal(err)
	}
	if v, err = NewVerifier(Options{DNS: res, Resolver: "192.0.2.1:53", AuthServID: "mx.test"}); err != nil || v.Resolver() != res {
		t.Errorf("NewVerifier with Options.DNS: resolver %p, want %p (%v)", v.Resolver(), res, err)
	}
}

func TestAuthenticationResultsFormat(t *testing.T) {
	v := &Verifier{authServID: "mx.mailhook.test"}
	tests := []struct {
		res  inbound.Auth
		want string
	}{
		{inbound.Auth{
			SPF: inbound.SPFResult{Result: "softfail", Domain: "example.org", Identity: "mailfrom"},
			DKIM: []inbound.DKIMResult{
				{Result: "pass", Domain: "example.org", Selector: "s1"},
				{Result: "fail", Domain: "list.example.net", Selector: "2026"},
			},
			DMARC: inbound.DMARCResult{Result: "pass", Policy: "none", Domain: "example.org"},
		}, "mx.mailhook.test; spf=softfail smtp.mailfrom=example.org;" +
			" dkim=pass header.d=example.org header.s=s1; dkim=fail header.d=list.example.net header.s=2026;" +
			" dmarc=pass header.from=example.org"},
		{inbound.Auth{
			SPF:   inbound.SPFResult{Result: "none", Domain: "h.example", Identity: "helo"},
			DMARC: inbound.DMARCResult{Result: "none", Policy: "none"},
		}, "mx.mailhook.test; spf=none smtp.helo=h.example; dkim=none; dmarc=none"},
		{inbound.Auth{}, "mx.mailhook.test; spf=none; dkim=none; dmarc=none"},
	}
	for _, tc := range tests {
		if got := v.formatAR(&tc.res); got != tc.want {
			t.Errorf("formatAR(%+v) =\n%q\nwant\n%q", tc.res, got, tc.want)
		}
	}
	r := &inbound.Auth{AuthenticationResults: "mx.mailhook.test; spf=pass smtp.mailfrom=a.example; dkim=none; dmarc=none"}
	want := "Authentication-Results: mx.mailhook.test;\r\n\tspf=pass smtp.mailfrom=a.example;\r\n\tdkim=none;\r\n\tdmarc=none\r\n"
	if got := r.HeaderField(); got != want {
		t.Errorf("HeaderField() = %q, want %q", got, want)
	}
}

func TestIsForgedAR(t *testing.T) {
	const us = "mx.mailhook.test"
	tests := []struct {
		value string
		want  bool
	}{
		{"mx.mailhook.test; spf=pass smtp.mailfrom=example.com", true},
		{"MX.MailHook.Test; dkim=pass header.d=example.com", true},
		{"mx.mailhook.test 1; spf=pass smtp.mailfrom=example.com", true},
		{"mx.mailhook.test 2; future=stuff", true}, // unknown version: still ours
		{"mx.mailhook.test.; none", true},
		{"mx.mailhook.test; none", true},
		{"mx.mailhook.test", true},
		{" (forged) mx.mailhook.test; dmarc=pass header.from=bank.example", true},
		{"(a (nested) comment)\r\n\tmx.mailhook.test;\r\n\tdkim=pass", true},
		{`"mx.mailhook.test"; spf=pass`, true},
		{"mx.mailhook.test;spf=pass", true},
		{"mx.mailhook.test(comment); spf=pass", true},
		{"other.example; spf=pass smtp.mailfrom=mx.mailhook.test", false},
		{"mx.mailhook.test.evil.example; spf=pass", false},
		{"evil.mx.mailhook.test; spf=pass", false},
		{"mx.mailhook.testing; spf=pass", false},
		{"", false},
		{"(unterminated comment mx.mailhook.test; spf=pass", true}, // unreadable and names us: removed (issue 12)
		{"mx.mailhook.test\x00; dmarc=pass", true},
		{"MX.Mailhook.Test.\x01 ; dmarc=pass", true},
		{"other.test; spf=pass smtp.mailfrom=mx.mailhook.test", false},
	}
	for _, tc := range tests {
		if got := IsForgedAR(tc.value, us); got != tc.want {
			t.Errorf("IsForgedAR(%q, %q) = %v, want %v", tc.value, us, got, tc.want)
		}
	}
	if IsForgedAR("mx.mailhook.test; none", "") {
		t.Error("IsForgedAR with an empty authserv-id = true")
	}
}
