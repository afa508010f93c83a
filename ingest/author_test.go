package ingest

import (
	"bufio"
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/mailhook/mailhook/config"
	"github.com/mailhook/mailhook/dns/dnstest"
	"github.com/mailhook/mailhook/header"
	"github.com/mailhook/mailhook/ingest/auth"
	"github.com/mailhook/mailhook/internal/rawsmtp"
	"github.com/mailhook/mailhook/route"
)

// attackZone: bank.test is the p=reject domain an attacker spoofs from
// attacker.test, whose SPF fails for loopback; none.test has p=none.
const attackZone = `
attacker.test.     IN TXT "v=spf1 -all"
bank.test.         IN TXT "v=spf1 -all"
_dmarc.bank.test.  IN TXT "v=DMARC1; p=reject"
_dmarc.none.test.  IN TXT "v=DMARC1; p=none"
`

// startAuth starts the listener with the real verifier against a loopback
// DNS server, DMARC enforced, and a forwarding route for fwd@example.test.
func startAuth(t *testing.T, tweak func(*Options)) *harness {
	t.Helper()
	dns := dnstest.Start(t, attackZone)
	v, err := auth.NewVerifier(auth.Options{Resolver: dns.Addr(), AuthServID: "mx.example.test", LookupTimeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	rules := append([]config.Rule{{Name: "fwd", Match: config.RuleMatch{Rcpt: config.StringList{"fwd@example.test"}},
		Actions: []config.RuleAction{{Forward: []string{"someone@elsewhere.test"}}}}}, testRules...)
	table, err := route.Compile(rules, route.Known{Webhooks: map[string]bool{"tickets": true}})
	if err != nil {
		t.Fatal(err)
	}
	pol := &Policy{Domains: map[string]bool{"example.test": true}, Router: table}
	return start(t, func(o *Options) {
		o.Verifier = v
		o.EnforceDMARC = true
		o.Policy = func() *Policy { return pol }
		if tweak != nil {
			tweak(o)
		}
	})
}

// rawSend runs one transaction over a raw socket (rawsmtp: the bytes as
// given) and returns the replies.
func rawSend(t *testing.T, addr, from string, rcpts []string, data string) []string {
	t.Helper()
	out, err := rawsmtp.Transaction(addr, from, rcpts, data)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func last(r []string) string { return r[len(r)-1] }

// The From tricks of issue 12, each from x@attacker.test (SPF fails) for a
// p=reject domain: every one is refused, under both readings of
// verify.multiple_from.
var fromTricks = []struct{ name, header string }{
	{"control: plain", "From: CEO <ceo@bank.test>\r\n"},
	{"folded", "From: CEO\r\n <ceo@bank.test>\r\n"},
	{"trailing semicolon", "From: ceo@bank.test;\r\n"},
	{"empty From then a real one", "From:\r\nFrom: CEO <ceo@bank.test>\r\n"},
	{"null address after", "From: <ceo@bank.test>, <>\r\n"},
	{"invalid UTF-8 quoted name", "From: \"C\xff\xfeO\" <ceo@bank.test>\r\n"},
	{"invalid UTF-8 name", "From: C\xffO <ceo@bank.test>\r\n"},
	{"address in an encoded word", "From: =?utf-8?q?ceo=40bank=2Etest?=\r\n"},
	{"address as display name", "From: ceo@bank.test <x@attacker.test>\r\n"},
	{"two addresses", "From: x@attacker.test, ceo@bank.test\r\n"},
	{"two From fields", "From: x@attacker.test\r\nFrom: ceo@bank.test\r\n"},
	{"upper case and a trailing dot", "From: CEO <ceo@BANK.TEST.>\r\n"},
	{"quoted local part holding @", "From: \"ceo@bank.test\"@attacker.test\r\n"},
	{"control byte after the domain", "From: ceo@bank.test\x01\r\n"},
	{"group", "From: Staff: ceo@bank.test;\r\n"},
}

func TestFromTricksRefused(t *testing.T) {
	for _, mode := range []string{MultipleFromReject, MultipleFromStrictest} {
		h := startAuth(t, func(o *Options) { o.MultipleFrom = mode })
		for _, tc := range fromTricks {
			msg := tc.header + "To: support@example.test\r\nSubject: wire the money\r\n\r\nNow.\r\n"
			got := rawSend(t, h.addr, "x@attacker.test", []string{"support@example.test", "fwd@example.test"}, msg)
			if !strings.HasPrefix(last(got), "550 5.7.1") {
				t.Errorf("%s, %s: %q, want 550 5.7.1", mode, tc.name, got)
			}
		}
		// A header section over the limit, the From past it or before it.
		big := strings.Repeat("X-Junk: "+strings.Repeat("a", 70)+"\r\n", (header.DefaultMaxBytes/80)+10)
		for _, msg := range []string{big + "From: ceo@bank.test\r\n\r\nbody\r\n", "From: ceo@bank.test\r\n" + big + "\r\nbody\r\n"} {
			if got := rawSend(t, h.addr, "x@attacker.test", []string{"support@example.test"}, msg); !strings.HasPrefix(last(got), "552 5.3.4") {
				t.Errorf("%s, header over 1 MiB: %q, want 552 5.3.4", mode, got)
			}
		}
		if n := h.rec.count(); n != 0 {
			t.Errorf("%s: %d messages committed, want none", mode, n)
		}
	}
}

// TestAuthorShownIsJudged: under strictest, a From with several domains
// of lenient policies is accepted; the address the payload shows is one
// DMARC judged. A From after a line that is not a field is body for every
// stage: refused as a message without From under reject; under strictest
// no author shown, none judged, none in the stored copy's header.
func TestAuthorShownIsJudged(t *testing.T) {
	h := startAuth(t, func(o *Options) { o.MultipleFrom = MultipleFromStrictest })
	got := rawSend(t, h.addr, "x@attacker.test", []string{"support@example.test"},
		"From: a@none.test;\r\nSubject: s\r\n\r\nbody\r\n")
	if !strings.HasPrefix(last(got), "250 ") {
		t.Fatalf("p=none author under strictest: %q", got)
	}
	m := h.rec.mails[0]
	if m.Message.From == nil || m.Message.From.Address != "a@none.test" || m.Auth.DMARC.Domain != "none.test" || m.Auth.DMARC.Result != "fail" {
		t.Errorf("from %+v, dmarc %+v: want a@none.test judged", m.Message.From, m.Auth.DMARC)
	}

	// Under reject (the default) that message has no From at all, which
	// RFC 5322 §3.6 forbids: refused. Under strictest it is accepted with
	// no author.
	fromInBody := "Subject: s\r\nnot a field\r\nFrom: CEO <ceo@bank.test>\r\n\r\nbody\r\n"
	h = startAuth(t, nil)
	got = rawSend(t, h.addr, "x@attacker.test", []string{"support@example.test"}, fromInBody)
	if !strings.HasPrefix(last(got), "550 5.7.1") || h.rec.count() != 0 {
		t.Fatalf("From in the body under reject: %q, %d committed; want 550 5.7.1, none", got, h.rec.count())
	}
	h = startAuth(t, func(o *Options) { o.MultipleFrom = MultipleFromStrictest })
	got = rawSend(t, h.addr, "x@attacker.test", []string{"support@example.test"}, fromInBody)
	if !strings.HasPrefix(last(got), "250 ") {
		t.Fatalf("From in the body under strictest: %q", got)
	}
	m = h.rec.mails[0]
	if m.Message.From != nil || m.Auth.DMARC.Result != "none" {
		t.Errorf("From in the body: from %+v, dmarc %+v; want none", m.Message.From, m.Auth.DMARC)
	}
	stored, err := header.Read(bufio.NewReader(bytes.NewReader(h.rec.raws[0])), 0)
	if err != nil || stored.Count("From") != 0 || stored.End != header.EndBlank {
		t.Errorf("stored copy: %v, %d From fields, end %d: want none and an empty line before the body", err, stored.Count("From"), stored.End)
	}
	if !strings.Contains(string(h.rec.raws[0]), "\r\nSubject: s\r\n\r\nnot a field\r\nFrom: CEO") {
		t.Errorf("stored copy = %q", h.rec.raws[0])
	}
}

// TestForgedARRemoved: an Authentication-Results naming our host is gone
// from the stored copy (what the relay and the mailbox get) and from the
// webhook's headers, whatever follows it and however its authserv-id is
// spelled; one of another host is kept.
func TestForgedARRemoved(t *testing.T) {
	h := startAuth(t, nil)
	const forged = "dmarc=pass header.from=bank.test"
	for _, tc := range []struct{ name, hdr string }{
		{"followed by a line without colon", "Authentication-Results: mx.example.test; " + forged + "\r\nno colon here\r\n"},
		{"followed by a name with a space", "Authentication-Results: mx.example.test; " + forged + "\r\nBad Name: x\r\n"},
		{"case and trailing dot", "authentication-results: MX.Example.TEST.; " + forged + "\r\n"},
		{"space before colon and semicolon", "Authentication-Results : mx.example.test ; " + forged + "\r\n"},
		{"control byte after the id", "Authentication-Results: mx.example.test\x01; " + forged + "\r\n"},
		{"folded", "Authentication-Results:\r\n mx.example.test;\r\n\t" + forged + "\r\n"},
		{"unreadable", "Authentication-Results: (mx.example.test; " + forged + "\r\n"},
		{"encoded word", "Authentication-Results: =?us-ascii?q?mx.example.test?=; " + forged + "\r\n"},
		{"comment first", "Authentication-Results: (ours) mx.example.test; " + forged + "\r\n"},
	} {
		n := h.rec.count()
		msg := "From: Alice <alice@none.test>\r\nAuthentication-Results: other.test; spf=pass\r\n" + tc.hdr + "\r\nbody " + forged + "\r\n"
		got := rawSend(t, h.addr, "x@attacker.test", []string{"support@example.test"}, msg)
		if !strings.HasPrefix(last(got), "250 ") || h.rec.count() != n+1 {
			t.Errorf("%s: %q", tc.name, got)
			continue
		}
		stored, err := header.Read(bufio.NewReader(bytes.NewReader(h.rec.raws[n])), 0)
		if err != nil {
			t.Fatal(err)
		}
		var ars []string
		for _, f := range stored.Fields {
			if f.Is("Authentication-Results") {
				ars = append(ars, f.Value)
			}
		}
		if len(ars) != 2 || !strings.HasPrefix(ars[0], "mx.example.test;") || strings.Contains(ars[0], "bank.test") || ars[1] != "other.test; spf=pass" {
			t.Errorf("%s: stored copy has Authentication-Results %q, want ours and other.test's", tc.name, ars)
		}
		for _, kv := range h.rec.mails[n].Message.Headers {
			if strings.EqualFold(kv[0], "Authentication-Results") && strings.Contains(kv[1], "bank.test") {
				t.Errorf("%s: webhook headers keep %q", tc.name, kv)
			}
		}
	}
	got := rawSend(t, h.addr, "x@attacker.test", []string{"support@example.test"},
		"From: Alice <alice@none.test>\r\nAuthentication-Results: mx.example.test\x00; "+forged+"\r\n\r\nbody\r\n")
	if !strings.HasPrefix(last(got), "550 5.6.0") {
		t.Errorf("NUL in the authserv-id: %q, want 550 5.6.0", got)
	}
}

// TestRefusedInTheDialogue: what could never be delivered is refused in
// the SMTP dialogue, not bounced later.
func TestRefusedInTheDialogue(t *testing.T) {
	loopErr := errors.New("the message already carries X-Loop: mx.example.test")
	h := startAuth(t, func(o *Options) {
		o.CheckLoop = func(h *header.Header) error {
			for _, f := range h.Fields {
				if f.Is("X-Loop") && strings.EqualFold(f.Value, "mx.example.test") {
					return loopErr
				}
			}
			if h.Count("Received") > 30 {
				return errors.New("too many Received fields")
			}
			return nil
		}
	})
	msg := "From: Alice <alice@none.test>\r\nSubject: s\r\n\r\nbody\r\n"
	for _, tc := range []struct {
		name, from string
		rcpts      []string
		data, want string
	}{
		{"control byte in MAIL", "a\x01b@none.test", []string{"support@example.test"}, msg, "553 5.1.7"},
		{"DEL in MAIL", "ab\x7f@none.test", []string{"support@example.test"}, msg, "553 5.1.7"},
		{"NUL in MAIL", "a\x00b@none.test", []string{"support@example.test"}, msg, "553 5.1.7"},
		{"address literal sender, forwarding route", "a@[127.0.0.1]", []string{"fwd@example.test"}, msg, "553 5.1.7"},
		{"quoted local part, forwarding route", `"a b"@none.test`, []string{"fwd@example.test"}, msg, "553 5.1.7"},
		{"address literal sender, webhook route", "a@[127.0.0.1]", []string{"support@example.test"}, msg, "250 "},
		{"NUL in DATA", "a@none.test", []string{"support@example.test"}, "From: a@none.test\r\n\r\nnul\x00here\r\n", "550 5.6.0"},
		{"X-Loop, forwarding route", "a@none.test", []string{"fwd@example.test"}, "X-Loop: mx.example.test\r\n" + msg, "554 5.4.6"},
		{"X-Loop, webhook route", "a@none.test", []string{"support@example.test"}, "X-Loop: mx.example.test\r\n" + msg, "250 "},
		{"31 Received, forwarding route", "a@none.test", []string{"fwd@example.test"}, strings.Repeat("Received: x\r\n", 31) + msg, "554 5.4.6"},
		{"30 Received, forwarding route", "a@none.test", []string{"fwd@example.test"}, strings.Repeat("Received: x\r\n", 30) + msg, "250 "},
	} {
		got := rawSend(t, h.addr, tc.from, tc.rcpts, tc.data)
		if !strings.HasPrefix(last(got), tc.want) {
			t.Errorf("%s: %q, want %q", tc.name, got, tc.want)
		}
	}
}
