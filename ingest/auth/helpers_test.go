package auth

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-msgauth/dkim"

	"github.com/mailhook/mailhook/dns/dnstest"
	"github.com/mailhook/mailhook/inbound"
)

// testKeys are generated once per test binary: RSA generation is slow
// under -race.
var testKeys = sync.OnceValues(func() (*rsa.PrivateKey, ed25519.PrivateKey) {
	rk, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		panic(err)
	}
	_, ek, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		panic(err)
	}
	return rk, ek
})

// dkimRecord is the DKIM key record (RFC 6376 §3.6.1) for a public key.
func dkimRecord(t testing.TB, pub crypto.PublicKey) string {
	t.Helper()
	switch k := pub.(type) {
	case *rsa.PublicKey:
		der, err := x509.MarshalPKIXPublicKey(k)
		if err != nil {
			t.Fatal(err)
		}
		return "v=DKIM1; k=rsa; p=" + base64.StdEncoding.EncodeToString(der)
	case ed25519.PublicKey:
		// RFC 8463 §4: the bare 32-byte key.
		return "v=DKIM1; k=ed25519; p=" + base64.StdEncoding.EncodeToString(k)
	}
	t.Fatalf("unknown key type %T", pub)
	return ""
}

// crlf turns "\n" line ends into CRLF, as messages arrive over SMTP.
func crlf(s string) string {
	return strings.ReplaceAll(strings.ReplaceAll(s, "\r\n", "\n"), "\n", "\r\n")
}

// sign signs msg with go-msgauth/dkim.
func sign(t testing.TB, msg string, o dkim.SignOptions) string {
	t.Helper()
	var b bytes.Buffer
	if err := dkim.Sign(&b, strings.NewReader(msg), &o); err != nil {
		t.Fatalf("dkim.Sign: %v", err)
	}
	return b.String()
}

// testVerifier returns a Verifier asking srv, with a deterministic DMARC
// sampler that never selects (so pct < 100 always downgrades).
func testVerifier(t testing.TB, srv *dnstest.Server, sample func(int) bool) *Verifier {
	t.Helper()
	if sample == nil {
		sample = func(int) bool { return false }
	}
	v, err := NewVerifier(Options{
		Resolver:       srv.Addr(),
		AuthServID:     "mx.mailhook.test",
		LookupTimeout:  300 * time.Millisecond,
		MessageTimeout: 5 * time.Second,
		Sample:         sample,
	})
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func readFile(t testing.TB, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func verify(t testing.TB, v *Verifier, spf inbound.SPFResult, msg string) *inbound.Auth {
	t.Helper()
	r, err := v.Verify(context.Background(), spf, strings.NewReader(msg))
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	return r
}
