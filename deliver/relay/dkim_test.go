package relay

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/emersion/go-msgauth/dkim"

	"github.com/mailhook/mailhook/dns/dnstest"
)

// writeKey generates a key with GenerateDKIMKey, writes it to a file and
// publishes its record in zone at selector._domainkey.domain.
func writeKey(t *testing.T, zone *dnstest.Server, algo, domain, selector string) string {
	t.Helper()
	pemKey, txt, err := GenerateDKIMKey(algo, 0)
	if err != nil {
		t.Fatalf("GenerateDKIMKey(%s): %v", algo, err)
	}
	if !strings.HasPrefix(txt, "v=DKIM1; k="+algo+"; p=") {
		t.Errorf("record = %q", txt)
	}
	p := filepath.Join(t.TempDir(), algo+".pem")
	if err := os.WriteFile(p, pemKey, 0o600); err != nil {
		t.Fatal(err)
	}
	zone.AddTXT(selector+"._domainkey."+domain, 300, txt)
	return p
}

func verifyOpts(zone *dnstest.Server) *dkim.VerifyOptions {
	r := NetResolver(zone.Addr()).(netResolver).r
	return &dkim.VerifyOptions{LookupTXT: func(name string) ([]string, error) {
		return r.LookupTXT(context.Background(), name)
	}}
}

// TestDKIMSignatureVerifies relays a message that already carries the
// original author's valid signature, signing it with our key, and checks
// with go-msgauth's verifier over the loopback DNS that both verify.
func TestDKIMSignatureVerifies(t *testing.T) {
	zone := dnstest.Start(t, "")
	for _, algo := range []string{"rsa", "ed25519"} {
		t.Run(algo, func(t *testing.T) {
			// The author's signature, made before the message reached us.
			_, origKey, _ := ed25519.GenerateKey(rand.Reader)
			rec, err := DKIMRecord(origKey.Public())
			if err != nil {
				t.Fatal(err)
			}
			zone.AddTXT("orig-"+algo+"._domainkey.example.org", 300, rec)
			var signed bytes.Buffer
			err = dkim.Sign(&signed, strings.NewReader(testMsg()), &dkim.SignOptions{
				Domain: "example.org", Selector: "orig-" + algo, Signer: origKey,
				HeaderCanonicalization: dkim.CanonicalizationRelaxed, BodyCanonicalization: dkim.CanonicalizationRelaxed,
			})
			if err != nil {
				t.Fatal(err)
			}

			keyFile := writeKey(t, zone, algo, "fwd.mailhook.test", "sel-"+algo)
			signer, err := LoadDKIMSigner("fwd.mailhook.test", "sel-"+algo, keyFile)
			if err != nil {
				t.Fatalf("LoadDKIMSigner: %v", err)
			}
			s := startSink(t, sinkOpts{}, nil)
			r := newRelayer(t, Options{Smarthost: s.addr, TLS: TLSNone, DKIM: signer})
			f := newFixture(t, signed.String(), "example.net", "bob@example.net")
			if out := f.handle(t, r); !out.Done {
				t.Fatalf("Handle = %+v", out)
			}
			got := s.received()
			if len(got) != 1 {
				t.Fatalf("got %d messages", len(got))
			}
			data := got[0].Data
			if !bytes.HasPrefix(data, []byte("DKIM-Signature: ")) || !bytes.HasSuffix(data, signed.Bytes()) {
				t.Fatalf("data = %q, want our signature, then the original as it was", data)
			}
			verifs, err := dkim.VerifyWithOptions(bytes.NewReader(data), verifyOpts(zone))
			if err != nil {
				t.Fatalf("Verify: %v", err)
			}
			domains := map[string]bool{}
			for _, v := range verifs {
				if v.Err != nil {
					t.Errorf("signature of %s: %v", v.Domain, v.Err)
					continue
				}
				domains[v.Domain] = true
				if v.Domain == "fwd.mailhook.test" && !containsFold(v.HeaderKeys, LoopHeader) {
					t.Errorf("our signature covers %v, want %s too", v.HeaderKeys, LoopHeader)
				}
			}
			if !domains["fwd.mailhook.test"] || !domains["example.org"] {
				t.Errorf("valid signatures from %v, want ours and the author's", domains)
			}
			if !strings.Contains(string(data), "a="+algo+"-sha256") || !strings.Contains(string(data), "c=relaxed/relaxed") {
				t.Errorf("signature header = %q", data[:200])
			}

			// Altering the signed body breaks our signature.
			tampered := bytes.Replace(data, []byte("Hello there."), []byte("Hello where."), 1)
			verifs, err = dkim.VerifyWithOptions(bytes.NewReader(tampered), verifyOpts(zone))
			if err != nil {
				t.Fatal(err)
			}
			for _, v := range verifs {
				if v.Err == nil {
					t.Errorf("tampered message: signature of %s still verifies", v.Domain)
				}
			}
		})
	}
}

func containsFold(ss []string, s string) bool {
	for _, x := range ss {
		if strings.EqualFold(x, s) {
			return true
		}
	}
	return false
}

func TestLoadDKIMSignerFormats(t *testing.T) {
	dir := t.TempDir()
	rsaKey, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	_, edKey, _ := ed25519.GenerateKey(rand.Reader)
	pkcs8 := func(k any) []byte {
		der, err := x509.MarshalPKCS8PrivateKey(k)
		if err != nil {
			t.Fatal(err)
		}
		return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
	}
	for _, tc := range []struct {
		name   string
		pem    []byte
		wantOK bool
	}{
		{"rsa pkcs1", pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(rsaKey)}), true},
		{"rsa pkcs8", pkcs8(rsaKey), true},
		{"ed25519 pkcs8", pkcs8(edKey), true},
		{"not pem", []byte("hello"), false},
		{"certificate", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: []byte{1}}), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "_"))
			if err := os.WriteFile(p, tc.pem, 0o600); err != nil {
				t.Fatal(err)
			}
			s, err := LoadDKIMSigner("example.net", "sel", p)
			if (err == nil) != tc.wantOK {
				t.Fatalf("LoadDKIMSigner = %v, %v; want ok=%v", s, err, tc.wantOK)
			}
		})
	}
	if _, err := LoadDKIMSigner("example.net", "sel", filepath.Join(dir, "missing")); err == nil {
		t.Error("LoadDKIMSigner(missing file) = nil error")
	}
	if _, _, err := GenerateDKIMKey("dsa", 0); err == nil {
		t.Error("GenerateDKIMKey(dsa) = nil error")
	}
	if _, _, err := GenerateDKIMKey("rsa", 512); err == nil {
		t.Error("GenerateDKIMKey(rsa, 512) = nil error")
	}
}

// TestDKIMUnparseableSentUnsigned: a message without a header/body
// separator cannot be signed; it is forwarded unsigned, not retried
// forever.
func TestDKIMUnparseableSentUnsigned(t *testing.T) {
	_, key, _ := ed25519.GenerateKey(rand.Reader)
	signer, err := NewDKIMSigner("fwd.mailhook.test", "sel", key)
	if err != nil {
		t.Fatal(err)
	}
	s := startSink(t, sinkOpts{}, nil)
	r := newRelayer(t, Options{Smarthost: s.addr, TLS: TLSNone, DKIM: signer})
	f := newFixture(t, "From: a@example.org\r\nSubject: header only", "example.net", "bob@example.net")
	if out := f.handle(t, r); !out.Done {
		t.Fatalf("Handle = %+v, want done", out)
	}
	if got := s.received(); len(got) != 1 || bytes.Contains(got[0].Data, []byte("DKIM-Signature")) {
		t.Errorf("received %+v, want one unsigned message", got)
	}
}
