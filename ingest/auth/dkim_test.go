package auth

import (
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/emersion/go-msgauth/dkim"

	"github.com/mailhook/mailhook/dns/dnstest"
	"github.com/mailhook/mailhook/inbound"
)

func TestDKIMRFCVectors(t *testing.T) {
	srv := dnstest.Start(t, readFile(t, "testdata/dkim-keys.zone"))
	v := testVerifier(t, srv, nil)

	// RFC 8463 A.1's secret key gives A.2's public key: the test data is
	// the RFC's.
	seed, _ := base64.StdEncoding.DecodeString("nWGxne/9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A=")
	pub := ed25519.NewKeyFromSeed(seed).Public().(ed25519.PublicKey)
	if got := base64.StdEncoding.EncodeToString(pub); got != "11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=" {
		t.Fatalf("RFC 8463 A.1 seed gives public key %s", got)
	}

	rfc8463 := readFile(t, "testdata/rfc8463-a3.eml")
	tests := []struct {
		name string
		msg  string
		want []inbound.DKIMResult
	}{
		{"RFC 8463 A.3 (ed25519 and rsa)", rfc8463, []inbound.DKIMResult{
			{Result: "pass", Domain: "football.example.com", Selector: "brisbane"},
			{Result: "pass", Domain: "football.example.com", Selector: "test"},
		}},
		{"RFC 6376 A.2", readFile(t, "testdata/rfc6376-a2.eml"), []inbound.DKIMResult{
			{Result: "pass", Domain: "example.com", Selector: "brisbane"},
		}},
		{"RFC 8463 A.3, body changed", strings.Replace(rfc8463, "hungry", "thirsty", 1), []inbound.DKIMResult{
			{Result: "fail", Domain: "football.example.com", Selector: "brisbane"},
			{Result: "fail", Domain: "football.example.com", Selector: "test"},
		}},
		{"RFC 8463 A.3, From changed", strings.Replace(rfc8463, "From: Joe SixPack", "From: Joe Sixpack", 1), []inbound.DKIMResult{
			{Result: "fail", Domain: "football.example.com", Selector: "brisbane"},
			{Result: "fail", Domain: "football.example.com", Selector: "test"},
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := verify(t, v, inbound.SPFResult{Result: "none"}, tc.msg)
			for i := range r.DKIM {
				r.DKIM[i].Error = ""
			}
			if !reflect.DeepEqual(r.DKIM, tc.want) {
				t.Errorf("DKIM = %+v, want %+v", r.DKIM, tc.want)
			}
		})
	}
}

const plainMessage = `Received: from client.example.test by mx.example.test; Sun, 29 Nov 2026 04:00:00 +0000
From: Alice <alice@example.test>
To: support@mailhook.test
Subject: Help with my order
Date: Sun, 29 Nov 2026 03:59:00 +0000
Message-ID: <order-1@example.test>

Hello,

my order has not arrived.   Can you check?

Alice
`

func TestDKIMSignedAndTampered(t *testing.T) {
	rk, ek := testKeys()
	srv := dnstest.Start(t, "")
	srv.AddTXT("rsa._domainkey.example.test", 300, dkimRecord(t, rk.Public()))
	srv.AddTXT("ed._domainkey.example.test", 300, dkimRecord(t, ek.Public()))
	v := testVerifier(t, srv, nil)
	hdrs := []string{"From", "To", "Subject", "Date", "Message-ID"}

	variants := []struct {
		name     string
		sel      string
		signer   crypto.Signer
		hdr, bod dkim.Canonicalization
	}{
		{"rsa-sha256 relaxed/simple", "rsa", rk, dkim.CanonicalizationRelaxed, dkim.CanonicalizationSimple},
		{"rsa-sha256 simple/simple", "rsa", rk, dkim.CanonicalizationSimple, dkim.CanonicalizationSimple},
		{"rsa-sha256 relaxed/relaxed", "rsa", rk, dkim.CanonicalizationRelaxed, dkim.CanonicalizationRelaxed},
		{"ed25519-sha256 relaxed/relaxed", "ed", ek, dkim.CanonicalizationRelaxed, dkim.CanonicalizationRelaxed},
	}
	for _, vr := range variants {
		signed := sign(t, crlf(plainMessage), dkim.SignOptions{
			Domain: "example.test", Selector: vr.sel, Signer: vr.signer,
			HeaderCanonicalization: vr.hdr, BodyCanonicalization: vr.bod, HeaderKeys: hdrs,
		})
		relaxedBody := vr.bod == dkim.CanonicalizationRelaxed
		relaxedHdr := vr.hdr == dkim.CanonicalizationRelaxed
		pick := func(relaxed bool) inbound.Verdict {
			if relaxed {
				return "pass"
			}
			return "fail"
		}
		tampers := []struct {
			name   string
			tamper func(string) string
			want   inbound.Verdict
		}{
			{"untouched", func(s string) string { return s }, "pass"},
			{"body word changed", func(s string) string { return strings.Replace(s, "arrived", "arrives", 1) }, "fail"},
			{"body line appended", func(s string) string { return s + "P.S. send it to my new address\r\n" }, "fail"},
			{"signed header changed", func(s string) string {
				return strings.Replace(s, "Subject: Help with my order", "Subject: Help with my refund", 1)
			}, "fail"},
			// RFC 6376 §5.4.2: the signature covers the last From, so a
			// second From on top does not break it (DMARC sees both
			// author domains, see TestDMARC).
			{"second From added on top", func(s string) string { return "From: mallory@evil.test\r\n" + s }, "pass"},
			{"unsigned header added", func(s string) string { return "X-Spam: no\r\n" + s }, "pass"},
			{"trailing blank lines added", func(s string) string { return s + "\r\n\r\n" }, "pass"},
			{"spaces inside a body line", func(s string) string {
				return strings.Replace(s, "arrived.   Can", "arrived.  Can", 1)
			}, pick(relaxedBody)},
			{"header refolded", func(s string) string {
				return strings.Replace(s, "Subject: Help with my order", "Subject: Help with\r\n  my order", 1)
			}, pick(relaxedHdr)},
			{"header name case", func(s string) string { return strings.Replace(s, "\r\nSubject:", "\r\nSUBJECT:", 1) }, pick(relaxedHdr)},
			{"l= added to the signature", func(s string) string {
				return strings.Replace(s, "DKIM-Signature: ", "DKIM-Signature: l=10; ", 1)
			}, "fail"},
			{"key selector swapped", func(s string) string {
				return strings.Replace(s, "s="+vr.sel+";", "s=nokey;", 1)
			}, "permerror"},
		}
		for _, tc := range tampers {
			t.Run(vr.name+"/"+tc.name, func(t *testing.T) {
				r := verify(t, v, inbound.SPFResult{Result: "none"}, tc.tamper(signed))
				if len(r.DKIM) != 1 {
					t.Fatalf("DKIM results = %+v, want one", r.DKIM)
				}
				got := r.DKIM[0]
				if got.Result != tc.want || got.Domain != "example.test" {
					t.Errorf("DKIM = %+v, want %s for d=example.test", got, tc.want)
				}
				if tc.want == "pass" && got.Error != "" {
					t.Errorf("pass with an error: %q", got.Error)
				}
				if tc.want != "pass" && got.Error == "" {
					t.Errorf("%s without an error text", got.Result)
				}
			})
		}
	}
}

// TestDKIMOversigned checks that a signature listing From twice (RFC 6376
// §8.15, "oversigning") breaks when a second From is added.
func TestDKIMOversigned(t *testing.T) {
	rk, _ := testKeys()
	srv := dnstest.Start(t, "")
	srv.AddTXT("rsa._domainkey.example.test", 300, dkimRecord(t, rk.Public()))
	v := testVerifier(t, srv, nil)
	signed := sign(t, crlf(plainMessage), dkim.SignOptions{Domain: "example.test", Selector: "rsa", Signer: rk,
		HeaderKeys: []string{"From", "From", "Subject", "Subject"}})
	if r := verify(t, v, inbound.SPFResult{Result: "none"}, signed); r.DKIM[0].Result != "pass" {
		t.Fatalf("oversigned message: %+v, want pass", r.DKIM)
	}
	r := verify(t, v, inbound.SPFResult{Result: "none"}, "From: mallory@evil.test\r\n"+signed)
	if r.DKIM[0].Result != "fail" {
		t.Errorf("second From on an oversigned message: %+v, want fail", r.DKIM)
	}
}

// TestDKIMBodyLength covers a valid signature with l= (RFC 6376 §3.5),
// built by hand because go-msgauth's signer does not write l=. Content
// appended past l= is the attack of RFC 6376 §8.2: go-msgauth refuses every
// l= signature, and so do we.
func TestDKIMBodyLength(t *testing.T) {
	rk, _ := testKeys()
	srv := dnstest.Start(t, "")
	srv.AddTXT("rsa._domainkey.example.test", 300, dkimRecord(t, rk.Public()))
	v := testVerifier(t, srv, nil)

	body := "Pay invoice 17.\r\n"
	from, subj := "From: billing@example.test\r\n", "Subject: invoice\r\n"
	bh := sha256.Sum256([]byte(body)) // simple body canonicalization: as is
	sigField := fmt.Sprintf("DKIM-Signature: v=1; a=rsa-sha256; c=simple/simple; d=example.test; s=rsa;"+
		" l=%d; h=From:Subject; bh=%s; b=", len(body), base64.StdEncoding.EncodeToString(bh[:]))
	h := sha256.Sum256([]byte(from + subj + sigField)) // RFC 6376 §3.7, simple header canonicalization
	sig, err := rsa.SignPKCS1v15(rand.Reader, rk, crypto.SHA256, h[:])
	if err != nil {
		t.Fatal(err)
	}
	msg := sigField + base64.StdEncoding.EncodeToString(sig) + "\r\n" + from + subj + "\r\n" + body
	for _, m := range []string{msg, msg + "Actually, pay to IBAN XX00 EVIL.\r\n"} {
		r := verify(t, v, inbound.SPFResult{Result: "none"}, m)
		if len(r.DKIM) != 1 || r.DKIM[0].Result != "fail" || !strings.Contains(r.DKIM[0].Error, "body length") {
			t.Errorf("l= signature: %+v, want fail for the body length tag", r.DKIM)
		}
	}
}

func TestDKIMKeyProblems(t *testing.T) {
	rk, _ := testKeys()
	srv := dnstest.Start(t, "")
	srv.AddTXT("revoked._domainkey.example.test", 300, "v=DKIM1; k=rsa; p=")
	srv.AddTXT("garbage._domainkey.example.test", 300, "v=DKIM1; k=rsa; p=!!!notbase64")
	srv.Timeout("slow._domainkey.example.test")
	srv.ServFail("broken._domainkey.example.test")
	v := testVerifier(t, srv, nil)
	for sel, want := range map[string]inbound.Verdict{
		"missing": "permerror", // NXDOMAIN: no key (RFC 6376 §6.1.2)
		"revoked": "permerror",
		"garbage": "permerror",
		"slow":    "temperror",
		"broken":  "temperror",
	} {
		t.Run(sel, func(t *testing.T) {
			signed := sign(t, crlf(plainMessage), dkim.SignOptions{Domain: "example.test", Selector: sel, Signer: rk})
			r := verify(t, v, inbound.SPFResult{Result: "none"}, signed)
			if len(r.DKIM) != 1 || r.DKIM[0].Result != want || r.DKIM[0].Selector != sel {
				t.Errorf("DKIM = %+v, want %s for s=%s", r.DKIM, want, sel)
			}
		})
	}
}

func TestDKIMManySignatures(t *testing.T) {
	rk, ek := testKeys()
	srv := dnstest.Start(t, "")
	srv.AddTXT("rsa._domainkey.example.test", 300, dkimRecord(t, rk.Public()))
	srv.AddTXT("ed._domainkey.example.org", 300, dkimRecord(t, ek.Public()))
	v := testVerifier(t, srv, nil)

	msg := crlf(plainMessage)
	msg = sign(t, msg, dkim.SignOptions{Domain: "example.test", Selector: "rsa", Signer: rk})
	msg = sign(t, msg, dkim.SignOptions{Domain: "example.org", Selector: "ed", Signer: ek})
	r := verify(t, v, inbound.SPFResult{Result: "none"}, msg)
	// Newest signature first, as they appear in the header.
	want := []inbound.DKIMResult{
		{Result: "pass", Domain: "example.org", Selector: "ed"},
		{Result: "pass", Domain: "example.test", Selector: "rsa"},
	}
	if !reflect.DeepEqual(r.DKIM, want) {
		t.Errorf("DKIM = %+v, want %+v", r.DKIM, want)
	}

	// More signatures than MaxSignatures: the rest are not verified.
	for i := range DefaultMaxSignatures + 2 {
		msg = sign(t, msg, dkim.SignOptions{Domain: "example.test", Selector: fmt.Sprint("s", i), Signer: rk})
	}
	r = verify(t, v, inbound.SPFResult{Result: "none"}, msg)
	if len(r.DKIM) != DefaultMaxSignatures {
		t.Errorf("%d results for %d signatures, want the bound %d", len(r.DKIM), DefaultMaxSignatures+4, DefaultMaxSignatures)
	}
}
