package webhook

import (
	"crypto/ed25519"
	"encoding/base64"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
)

// The test vector published with the Standard Webhooks reference libraries.
const (
	vecID     = "msg_p5jXN8AQM9LWM0D4loKWxJek"
	vecTS     = 1614265330
	vecSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	vecBody   = `{"test": 2432232314}`
	vecSig    = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
)

func TestSpecVector(t *testing.T) {
	key, err := ParseSecret(vecSecret)
	if err != nil {
		t.Fatalf("ParseSecret(%q) = %v", vecSecret, err)
	}
	got := Sign(key, vecID, time.Unix(vecTS, 0), []byte(vecBody))
	if got != vecSig {
		t.Fatalf("Sign(vector) = %q, want %q", got, vecSig)
	}
	// The streaming signer used by the sender gives the same.
	sg := newSigner([][]byte{key}, vecID, time.Unix(vecTS, 0))
	sg.Write([]byte(vecBody[:5]))
	sg.Write([]byte(vecBody[5:]))
	if h := sg.header(nil, vecID, time.Unix(vecTS, 0), nil); h != vecSig {
		t.Fatalf("signer.header(vector) = %q, want %q", h, vecSig)
	}
	// And the independent verifier accepts it.
	wh, err := standardwebhooks.NewWebhook(vecSecret)
	if err != nil {
		t.Fatal(err)
	}
	h := http.Header{}
	h.Set(HeaderID, vecID)
	h.Set(HeaderTimestamp, "1614265330")
	h.Set(HeaderSignature, got)
	if err := wh.VerifyIgnoringTimestamp([]byte(vecBody), h); err != nil {
		t.Fatalf("standardwebhooks verify of our vector signature: %v", err)
	}
	// A one-byte change in the body must fail (the test can fail).
	if err := wh.VerifyIgnoringTimestamp([]byte(`{"test": 2432232315}`), h); err == nil {
		t.Fatal("standardwebhooks verified a tampered body")
	}
}

func TestRotationSignatures(t *testing.T) {
	oldS, newS := NewSecret(), NewSecret()
	var keys [][]byte
	for _, s := range []string{newS, oldS} {
		k, err := ParseSecret(s)
		if err != nil {
			t.Fatal(err)
		}
		keys = append(keys, k)
	}
	ts := time.Now()
	body := []byte(`{"type":"message.received"}`)
	sg := newSigner(keys, "job_1", ts)
	sg.Write(body)
	sig := sg.header(nil, "job_1", ts, body)
	if n := len(strings.Fields(sig)); n != 2 {
		t.Fatalf("signature header %q has %d signatures, want 2", sig, n)
	}
	h := http.Header{}
	h.Set(HeaderID, "job_1")
	h.Set(HeaderTimestamp, strconv.FormatInt(ts.Unix(), 10))
	h.Set(HeaderSignature, sig)
	for _, s := range []string{oldS, newS} {
		wh, _ := standardwebhooks.NewWebhook(s)
		if err := wh.Verify(body, h); err != nil {
			t.Errorf("verify with one secret of the rotation: %v", err)
		}
	}
	wh, _ := standardwebhooks.NewWebhook(NewSecret())
	if err := wh.Verify(body, h); !errors.Is(err, standardwebhooks.ErrNoMatchingSignature) {
		t.Errorf("verify with an unrelated secret = %v, want ErrNoMatchingSignature", err)
	}
}

func TestParseSecret(t *testing.T) {
	b24 := base64.StdEncoding.EncodeToString(make([]byte, 24))
	for _, tc := range []struct {
		in   string
		want int // key length, 0 for an error
	}{
		{vecSecret, 24},
		{" " + vecSecret + "\n", 24},
		{"whsec_" + base64.StdEncoding.EncodeToString(make([]byte, 64)), 64},
		{"whsec_" + base64.RawStdEncoding.EncodeToString(make([]byte, 32)), 32},
		{"MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", 0}, // no prefix
		{"whsk_" + b24, 0},
		{"whsec_!!!notbase64", 0},
		{"whsec_" + base64.StdEncoding.EncodeToString(make([]byte, 23)), 0},
		{"whsec_" + base64.StdEncoding.EncodeToString(make([]byte, 65)), 0},
		{"whsec_", 0},
	} {
		k, err := ParseSecret(tc.in)
		if tc.want == 0 {
			if err == nil || !errors.Is(err, ErrBadSecret) {
				t.Errorf("ParseSecret(%q) = %v, want an ErrBadSecret", tc.in, err)
			}
			continue
		}
		if err != nil || len(k) != tc.want {
			t.Errorf("ParseSecret(%q) = %d bytes, %v; want %d bytes", tc.in, len(k), err, tc.want)
		}
	}
	if s := NewSecret(); !strings.HasPrefix(s, SecretPrefix) {
		t.Errorf("NewSecret() = %q", s)
	} else if _, err := ParseSecret(s); err != nil {
		t.Errorf("ParseSecret(NewSecret()) = %v", err)
	}
}

func TestParseSigningKey(t *testing.T) {
	sk, pk := NewSigningKey()
	k, err := ParseSigningKey(sk)
	if err != nil {
		t.Fatalf("ParseSigningKey(NewSigningKey()) = %v", err)
	}
	if got := PublicKey(k); got != pk {
		t.Fatalf("PublicKey = %q, want %q", got, pk)
	}
	seedForm := SigningKeyPrefix + base64.StdEncoding.EncodeToString(k.Seed())
	k2, err := ParseSigningKey(seedForm)
	if err != nil || !k2.Equal(k) {
		t.Fatalf("ParseSigningKey(seed form) = %v, %v; want the same key", k2, err)
	}
	bad := append([]byte(nil), k...)
	bad[63] ^= 1
	for _, in := range []string{
		"whsec_" + base64.StdEncoding.EncodeToString(k),
		SigningKeyPrefix + base64.StdEncoding.EncodeToString(bad),
		SigningKeyPrefix + base64.StdEncoding.EncodeToString(k[:31]),
		SigningKeyPrefix + "%%%",
	} {
		if _, err := ParseSigningKey(in); !errors.Is(err, ErrBadSecret) {
			t.Errorf("ParseSigningKey(%q) = %v, want an ErrBadSecret", in, err)
		}
	}
}

// verifyV1a checks a "v1a" signature from the header the way a receiver
// does, with only the whpk_ public key and crypto/ed25519.
func verifyV1a(t *testing.T, whpk, sigHeader, id, ts string, body []byte) bool {
	t.Helper()
	pub, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(whpk, PublicKeyPrefix))
	if err != nil || len(pub) != ed25519.PublicKeySize {
		t.Fatalf("bad public key %q", whpk)
	}
	msg := []byte(id + "." + ts + "." + string(body))
	for _, s := range strings.Fields(sigHeader) {
		v, b64, ok := strings.Cut(s, ",")
		if !ok || v != "v1a" {
			continue
		}
		sig, err := base64.StdEncoding.DecodeString(b64)
		if err == nil && ed25519.Verify(pub, msg, sig) {
			return true
		}
	}
	return false
}

func TestSignEd25519(t *testing.T) {
	sk, pk := NewSigningKey()
	k, _ := ParseSigningKey(sk)
	ts := time.Unix(vecTS, 0)
	sig := SignEd25519(k, vecID, ts, []byte(vecBody))
	if !strings.HasPrefix(sig, "v1a,") {
		t.Fatalf("SignEd25519 = %q, want a v1a signature", sig)
	}
	if !verifyV1a(t, pk, sig, vecID, "1614265330", []byte(vecBody)) {
		t.Fatal("v1a signature does not verify with the public key")
	}
	if verifyV1a(t, pk, sig, vecID, "1614265331", []byte(vecBody)) {
		t.Fatal("v1a signature verifies with another timestamp")
	}
}
