package ingest

import (
	"bufio"
	"bytes"
	"context"
	"os"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/mailhook/mailhook/dns/dnstest"
	"github.com/mailhook/mailhook/header"
	"github.com/mailhook/mailhook/inbound"
	"github.com/mailhook/mailhook/ingest/auth"
	"github.com/mailhook/mailhook/parse"
)

// FuzzOneReader feeds random header blocks through the readers of the
// pipeline and checks that they agree: the author DMARC judged, the
// webhook's message.from and headers, and the Authentication-Results fields
// removed from the copy that is stored and delivered.
func FuzzOneReader(f *testing.F) {
	for _, tc := range fromTricks {
		f.Add(tc.header + "Subject: s")
	}
	for _, s := range []string{
		"Authentication-Results: mx.example.test; dmarc=pass\r\nno colon",
		"Authentication-Results: =?us-ascii?q?mx.example.test?=; dmarc=pass",
		"authentication-results : MX.EXAMPLE.TEST. ; x=y\r\nBad Name: 1",
		"Authentication-Results: (mx.example.test; dmarc=pass\r\nFrom: a@b.test",
		" folded first\r\nFrom: a@b.test",
		"From: a@b.test\r\n \r\nFrom: c@d.test",
		"From: =?utf-8?b?Y2VvQGJhbmsudGVzdA==?= <x@y.test>",
	} {
		f.Add(s)
	}
	dns := dnstest.Start(f, attackZone)
	v, err := auth.NewVerifier(auth.Options{Resolver: dns.Addr(), AuthServID: "mx.example.test",
		LookupTimeout: time.Second, CacheSize: -1})
	if err != nil {
		f.Fatal(err)
	}
	o := &Options{Hostname: "mx.example.test", IsForgedAR: auth.IsForgedAR}
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, block string) {
		msg := block + "\r\n\r\nbody\r\n"
		hdr, err := header.Read(bufio.NewReader(strings.NewReader(msg)), 0)
		if err != nil {
			t.Fatalf("header.Read: %v", err)
		}
		author := header.ReadAuthor(hdr)

		// DMARC judges author.Domains; its verdict names one of them.
		res, err := v.Verify(context.Background(), inbound.SPFResult{Result: "none"}, strings.NewReader(msg))
		if err != nil {
			t.Fatal(err)
		}
		if d := res.DMARC.Domain; d != "" && !contains(author.Domains, d) {
			t.Fatalf("DMARC judged %q, not among the author's domains %q", d, author.Domains)
		}
		if len(author.Domains) == 0 && res.DMARC.Result != "none" {
			t.Fatalf("DMARC %+v for a message without an author domain", res.DMARC)
		}
		if len(author.Domains) > 0 && res.DMARC.Result == "permerror" && res.DMARC.Domain == "" {
			t.Fatalf("DMARC permerror without a domain for %q", author.Domains)
		}

		// The webhook's from is the author shown, of a judged domain.
		m, err := parse.Parse(strings.NewReader(msg), parse.Options{})
		if err != nil {
			t.Fatal(err)
		}
		if len(m.Headers) != len(hdr.Fields) {
			t.Fatalf("parse lists %d fields, header read %d", len(m.Headers), len(hdr.Fields))
		}
		shown, ok := author.Shown()
		switch {
		case !ok && m.From != nil:
			t.Fatalf("from %+v for a message without From", m.From)
		case ok && shown.Domain != "" && utf8.ValidString(shown.Address):
			if m.From == nil || m.From.Address != shown.Address {
				t.Fatalf("from %+v, want the author %q that DMARC judged", m.From, shown.Address)
			}
		}
		if m.From != nil {
			if i := strings.LastIndexByte(m.From.Address, '@'); i >= 0 && utf8.ValidString(shown.Address) {
				if d := header.NormDomain(m.From.Address[i+1:]); !contains(author.Domains, d) {
					t.Fatalf("from %q: domain %q not judged (%q)", m.From.Address, d, author.Domains)
				}
			}
		}

		// The copy stored: forged A-R fields gone, every other field kept
		// in order, the same fields as the webhook's headers list.
		sp, _ := newSpool(dir)
		if err := sp.receive(strings.NewReader(msg)); err != nil {
			sp.discard()
			return // refused at DATA (bare CR or LF, NUL)
		}
		hdr2, err := sp.header(0)
		if err != nil {
			t.Fatal(err)
		}
		prepend := []Field{{"Authentication-Results", "mx.example.test; spf=none"}, {"Received", "from x by y; now"}}
		forged := o.forgedAR(hdr2, m)
		path, raw, _, dropped, err := sp.finalize(dir, "fuzz", prepend, hdr2, forged)
		if err != nil {
			t.Fatal(err)
		}
		if raw == nil {
			raw, err = os.ReadFile(path)
			os.Remove(path)
			if err != nil {
				t.Fatal(err)
			}
		}
		for i, fld := range hdr.Fields {
			want := fld.Is("Authentication-Results") && (auth.IsForgedAR(fld.Value, o.Hostname) || auth.IsForgedAR(m.Headers[i][1], o.Hostname))
			if dropped[i] != want {
				t.Fatalf("field %d %q: dropped %v, want %v", i, fld.Raw, dropped[i], want)
			}
		}
		stored, err := header.Read(bufio.NewReader(bytes.NewReader(raw)), 0)
		if err != nil || stored.End != header.EndBlank {
			t.Fatalf("stored copy: %v, end %d", err, stored.End)
		}
		hooked := deliveredHeaders(prepend, m.Headers, hdr2, dropped)
		if len(stored.Fields) != len(hooked) {
			t.Fatalf("stored copy has %d fields, the webhook lists %d", len(stored.Fields), len(hooked))
		}
		sm, err := parse.Parse(bytes.NewReader(raw), parse.Options{})
		if err != nil {
			t.Fatal(err)
		}
		for i, fld := range stored.Fields {
			if !strings.EqualFold(fld.Name, hooked[i][0]) {
				t.Fatalf("stored field %d is %q, the webhook's %q", i, fld.Name, hooked[i][0])
			}
			if i > 0 && fld.Is("Authentication-Results") &&
				(auth.IsForgedAR(fld.Value, o.Hostname) || auth.IsForgedAR(sm.Headers[i][1], o.Hostname)) {
				t.Fatalf("forged %q kept in the stored copy", fld.Raw)
			}
		}
		// The stored copy has the same author.
		if sa := header.ReadAuthor(stored); !equalStrings(sa.Domains, author.Domains) || sa.Exact != author.Exact {
			t.Fatalf("stored copy's author %+v, the message's %+v", sa, author)
		}
	})
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func equalStrings(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
