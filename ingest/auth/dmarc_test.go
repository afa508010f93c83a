package auth

import (
	"bufio"
	"context"
	"strings"
	"testing"

	"github.com/mailhook/mailhook/dns/dnstest"
	"github.com/mailhook/mailhook/header"
	"github.com/mailhook/mailhook/inbound"
)

const dmarcZone = `
_dmarc.example.test.     300 IN TXT "v=DMARC1; p=reject; sp=quarantine; rua=mailto:d@example.test"
_dmarc.own.example.test. 300 IN TXT "v=DMARC1; p=none"
_dmarc.none.test.        300 IN TXT "v=DMARC1; p=none"
_dmarc.quar.test.        300 IN TXT "v=DMARC1; p=quarantine"
_dmarc.nosp.test.        300 IN TXT "v=DMARC1; p=quarantine"
_dmarc.strict.test.      300 IN TXT "v=DMARC1; p=reject; adkim=s; aspf=s"
_dmarc.pct.test.         300 IN TXT "v=DMARC1; p=reject; pct=20"
_dmarc.pctq.test.        300 IN TXT "v=DMARC1; p=quarantine; pct=0"
_dmarc.bad.test.         300 IN TXT "v=DMARC1; p=maybe"
_dmarc.junk.test.        300 IN TXT "v=spf1 -all"
_dmarc.example.co.uk.    300 IN TXT "v=DMARC1; p=reject"
_dmarc.xn--bcher-kva.test. 300 IN TXT "v=DMARC1; p=reject"
`

func TestDMARC(t *testing.T) {
	srv := dnstest.Start(t, dmarcZone)
	srv.Timeout("_dmarc.slow.test")
	never := testVerifier(t, srv, func(int) bool { return false })
	always := testVerifier(t, srv, func(int) bool { return true })

	pass := func(d string) inbound.SPFResult {
		return inbound.SPFResult{Result: "pass", Domain: d, Identity: "mailfrom"}
	}
	dk := func(res inbound.Verdict, d string) []inbound.DKIMResult {
		return []inbound.DKIMResult{{Result: res, Domain: d, Selector: "s"}}
	}
	none := inbound.SPFResult{Result: "none"}

	tests := []struct {
		name   string
		header string // header block; From field(s)
		spf    inbound.SPFResult
		dkim   []inbound.DKIMResult
		v      *Verifier
		want   inbound.DMARCResult
	}{
		// Alignment, relaxed (the default) and strict (RFC 7489 §3.1).
		{"spf aligned, same domain", "From: a@example.test", pass("example.test"), nil, never,
			inbound.DMARCResult{Result: "pass", Policy: "reject", Domain: "example.test"}},
		{"spf aligned relaxed, subdomain", "From: a@example.test", pass("bounce.example.test"), nil, never,
			inbound.DMARCResult{Result: "pass", Policy: "reject", Domain: "example.test"}},
		{"spf pass, unaligned", "From: a@example.test", pass("other.test"), nil, never,
			inbound.DMARCResult{Result: "fail", Policy: "reject", Domain: "example.test"}},
		{"spf fail, aligned domain", "From: a@example.test", inbound.SPFResult{Result: "fail", Domain: "example.test"}, nil, never,
			inbound.DMARCResult{Result: "fail", Policy: "reject", Domain: "example.test"}},
		{"dkim aligned", "From: a@example.test", none, dk("pass", "example.test"), never,
			inbound.DMARCResult{Result: "pass", Policy: "reject", Domain: "example.test"}},
		{"dkim aligned relaxed, subdomain", "From: a@example.test", none, dk("pass", "mail.example.test"), never,
			inbound.DMARCResult{Result: "pass", Policy: "reject", Domain: "example.test"}},
		{"dkim fail, aligned domain", "From: a@example.test", none, dk("fail", "example.test"), never,
			inbound.DMARCResult{Result: "fail", Policy: "reject", Domain: "example.test"}},
		{"dkim pass, unaligned", "From: a@example.test", none, dk("pass", "example.org"), never,
			inbound.DMARCResult{Result: "fail", Policy: "reject", Domain: "example.test"}},
		{"dkim pass, public suffix is not alignment", "From: a@shop.example.co.uk", none, dk("pass", "other.co.uk"), never,
			inbound.DMARCResult{Result: "fail", Policy: "reject", Domain: "shop.example.co.uk"}},
		{"strict spf, subdomain", "From: a@strict.test", pass("mail.strict.test"), nil, never,
			inbound.DMARCResult{Result: "fail", Policy: "reject", Domain: "strict.test"}},
		{"strict dkim, subdomain", "From: a@strict.test", none, dk("pass", "mail.strict.test"), never,
			inbound.DMARCResult{Result: "fail", Policy: "reject", Domain: "strict.test"}},
		{"strict dkim, exact", "From: a@strict.test", none, dk("pass", "strict.test"), never,
			inbound.DMARCResult{Result: "pass", Policy: "reject", Domain: "strict.test"}},
		{"IDN From domain, looked up as A-label", "From: Bücher <info@bücher.test>", none, nil, never,
			inbound.DMARCResult{Result: "fail", Policy: "reject", Domain: "xn--bcher-kva.test"}},
		{"IDN aligned with its A-label", "From: info@bücher.test", none, dk("pass", "xn--bcher-kva.test"), never,
			inbound.DMARCResult{Result: "pass", Policy: "reject", Domain: "xn--bcher-kva.test"}},
		{"case and trailing dot", "From: Alice <A@EXAMPLE.Test>", pass("Example.TEST."), nil, never,
			inbound.DMARCResult{Result: "pass", Policy: "reject", Domain: "example.test"}},

		// Policy discovery and the org-domain fallback (RFC 7489 §6.6.3).
		{"subdomain: sp= of the org domain", "From: a@sub.example.test", none, nil, never,
			inbound.DMARCResult{Result: "fail", Policy: "quarantine", Domain: "sub.example.test"}},
		{"subdomain passes, sp= reported", "From: a@sub.example.test", pass("example.test"), nil, never,
			inbound.DMARCResult{Result: "pass", Policy: "quarantine", Domain: "sub.example.test"}},
		{"subdomain with its own record", "From: a@own.example.test", none, nil, never,
			inbound.DMARCResult{Result: "fail", Policy: "none", Domain: "own.example.test"}},
		{"subdomain, no sp=: p= applies", "From: a@deep.sub.nosp.test", none, nil, never,
			inbound.DMARCResult{Result: "fail", Policy: "quarantine", Domain: "deep.sub.nosp.test"}},
		{"public suffix list: example.co.uk", "From: a@shop.example.co.uk", pass("example.co.uk"), nil, never,
			inbound.DMARCResult{Result: "pass", Policy: "reject", Domain: "shop.example.co.uk"}},
		{"p=none", "From: a@none.test", none, nil, never, inbound.DMARCResult{Result: "fail", Policy: "none", Domain: "none.test"}},
		{"p=quarantine", "From: a@quar.test", none, nil, never, inbound.DMARCResult{Result: "fail", Policy: "quarantine", Domain: "quar.test"}},
		{"p=reject", "From: a@example.test", none, nil, never, inbound.DMARCResult{Result: "fail", Policy: "reject", Domain: "example.test"}},
		{"missing record", "From: a@nodmarc.test", none, nil, never, inbound.DMARCResult{Result: "none", Policy: "none", Domain: "nodmarc.test"}},
		{"non-DMARC TXT only", "From: a@junk.test", none, nil, never, inbound.DMARCResult{Result: "none", Policy: "none", Domain: "junk.test"}},
		{"bad record", "From: a@bad.test", none, nil, never, inbound.DMARCResult{Result: "permerror", Policy: "none", Domain: "bad.test"}},
		{"record lookup times out", "From: a@slow.test", none, nil, never, inbound.DMARCResult{Result: "temperror", Policy: "none", Domain: "slow.test"}},
		{"aligned spf temperror", "From: a@example.test", inbound.SPFResult{Result: "temperror", Domain: "example.test"}, nil, never,
			inbound.DMARCResult{Result: "temperror", Policy: "reject", Domain: "example.test"}},
		{"aligned dkim temperror", "From: a@example.test", none, dk("temperror", "example.test"), never,
			inbound.DMARCResult{Result: "temperror", Policy: "reject", Domain: "example.test"}},
		{"unaligned temperror is a fail", "From: a@example.test", inbound.SPFResult{Result: "temperror", Domain: "other.test"}, nil, never,
			inbound.DMARCResult{Result: "fail", Policy: "reject", Domain: "example.test"}},

		// pct sampling (RFC 7489 §6.6.4).
		{"pct=20, not sampled: next policy down", "From: a@pct.test", none, nil, never,
			inbound.DMARCResult{Result: "fail", Policy: "quarantine", Domain: "pct.test"}},
		{"pct=20, sampled", "From: a@pct.test", none, nil, always, inbound.DMARCResult{Result: "fail", Policy: "reject", Domain: "pct.test"}},
		{"pct=0 quarantine, not sampled", "From: a@pctq.test", none, nil, never, inbound.DMARCResult{Result: "fail", Policy: "none", Domain: "pctq.test"}},
		{"pct does not touch a pass", "From: a@pct.test", pass("pct.test"), nil, never,
			inbound.DMARCResult{Result: "pass", Policy: "reject", Domain: "pct.test"}},

		// RFC 7489 §6.6.1: zero or several author domains.
		{"no From field", "Subject: hi", pass("example.test"), nil, never, inbound.DMARCResult{Result: "none", Policy: "none", Domain: ""}},
		{"From without a domain", "From: undisclosed-recipients:;", none, nil, never, inbound.DMARCResult{Result: "none", Policy: "none", Domain: ""}},
		{"unparseable From without a domain", "From: <<<@>", none, nil, never, inbound.DMARCResult{Result: "none", Policy: "none", Domain: ""}},
		// Issue 12: a From only a lenient reading understands is judged
		// for what that reading shows, never permerror.
		{"trailing semicolon", "From: a@example.test;", none, nil, never, inbound.DMARCResult{Result: "fail", Policy: "reject", Domain: "example.test"}},
		{"empty From then a real one", "From:\r\nFrom: CEO <a@example.test>", none, nil, never, inbound.DMARCResult{Result: "fail", Policy: "reject", Domain: "example.test"}},
		{"null address after", "From: <a@example.test>, <>", none, nil, never, inbound.DMARCResult{Result: "fail", Policy: "reject", Domain: "example.test"}},
		{"invalid UTF-8 display name", "From: C\xffO <a@example.test>", none, nil, never, inbound.DMARCResult{Result: "fail", Policy: "reject", Domain: "example.test"}},
		{"address in an encoded word", "From: =?utf-8?q?a=40example=2Etest?=", none, nil, never, inbound.DMARCResult{Result: "fail", Policy: "reject", Domain: "example.test"}},
		{"two addresses, one fails: strictest", "From: a@none.test, b@example.test", pass("none.test"), nil, never,
			inbound.DMARCResult{Result: "fail", Policy: "reject", Domain: "example.test"}},
		{"two addresses, both fail: strictest policy", "From: a@quar.test, b@example.test, c@none.test", none, nil, never,
			inbound.DMARCResult{Result: "fail", Policy: "reject", Domain: "example.test"}},
		{"two From fields, spoofed one fails", "From: a@evil.test\r\nFrom: b@example.test", pass("evil.test"), nil, never,
			inbound.DMARCResult{Result: "fail", Policy: "reject", Domain: "example.test"}},
		{"two addresses, same domain", "From: a@example.test, b@EXAMPLE.test", pass("example.test"), nil, never,
			inbound.DMARCResult{Result: "pass", Policy: "reject", Domain: "example.test"}},
		{"two addresses, one without a record", "From: a@example.test, b@nodmarc.test", pass("example.test"), nil, never,
			inbound.DMARCResult{Result: "none", Policy: "none", Domain: "nodmarc.test"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h, err := header.Read(bufio.NewReader(strings.NewReader(crlf(tc.header+"\n\n"))), 0)
			if err != nil {
				t.Fatal(err)
			}
			author := header.ReadAuthor(h)
			got := tc.v.checkDMARC(context.Background(), &author, tc.spf, tc.dkim)
			if got != tc.want {
				t.Errorf("checkDMARC(%q, spf %+v, dkim %+v) = %+v, want %+v", tc.header, tc.spf, tc.dkim, got, tc.want)
			}
		})
	}
}

func TestOrgDomain(t *testing.T) {
	for in, want := range map[string]string{
		"example.test":        "example.test",
		"a.b.example.test":    "example.test",
		"mail.example.co.uk":  "example.co.uk",
		"co.uk":               "co.uk",
		"user.github.io":      "user.github.io", // private PSL section
		"deep.user.github.io": "user.github.io",
	} {
		if got := orgDomain(in); got != want {
			t.Errorf("orgDomain(%q) = %q, want %q", in, got, want)
		}
	}
}
