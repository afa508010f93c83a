package auth

import (
	"context"
	"strings"
	"testing"

	"github.com/mailhook/mailhook/dns/dnstest"
	"github.com/mailhook/mailhook/inbound"
)

// FuzzVerify feeds arbitrary messages to Verify against a loopback DNS
// server: it must not panic, must only fail on read errors (never here),
// and must always produce an Authentication-Results value led by our
// authserv-id.
func FuzzVerify(f *testing.F) {
	f.Add(crlf(plainMessage))
	f.Add(readFile(f, "testdata/rfc8463-a3.eml"))
	f.Add(readFile(f, "testdata/rfc6376-a2.eml"))
	f.Add("From: a@example.test, b@quar.test\r\nDKIM-Signature: v=1; d=example.test; s=x; b=; bh=\r\n\r\nhi\r\n")
	f.Add("DKIM-Signature: l=1;;;===\r\n From: \r\n\r\n")
	f.Add("")
	srv := dnstest.Start(f, e2eZone)
	v := testVerifier(f, srv, nil)
	f.Fuzz(func(t *testing.T, msg string) {
		r, err := v.Verify(context.Background(), inbound.SPFResult{Result: "none"}, strings.NewReader(msg))
		if err != nil {
			t.Fatalf("Verify: %v", err)
		}
		if !strings.HasPrefix(r.AuthenticationResults, "mx.mailhook.test; spf=") {
			t.Fatalf("AuthenticationResults = %q", r.AuthenticationResults)
		}
		if r.DKIM == nil || len(r.DKIM) > DefaultMaxSignatures {
			t.Fatalf("DKIM results %v", r.DKIM)
		}
	})
}

// FuzzIsForgedAR checks that IsForgedAR never panics and always spots our
// authserv-id in front of whatever follows.
func FuzzIsForgedAR(f *testing.F) {
	for _, s := range []string{"; spf=pass", " 1; dkim=fail", "", "(x) ;", ";\r\n\tdmarc=pass header.from=a"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, rest string) {
		_ = IsForgedAR(rest, "mx.mailhook.test")
		if strings.HasPrefix(rest, ";") && !IsForgedAR("mx.mailhook.test"+rest, "mx.mailhook.test") {
			t.Fatalf("IsForgedAR(%q) = false", "mx.mailhook.test"+rest)
		}
	})
}
