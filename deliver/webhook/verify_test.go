package webhook

import (
	"crypto/ed25519"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestVerifier(t *testing.T) {
	secret := NewSecret()
	key, _ := ParseSecret(secret)
	skey, pub := NewSigningKey()
	priv, _ := ParseSigningKey(skey)
	pk, err := ParsePublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Unix(1_800_000_000, 0)
	body := []byte(`{"type":"message.received"}`)
	headers := func(id string, ts time.Time, sig string) http.Header {
		h := http.Header{}
		h.Set(HeaderID, id)
		h.Set(HeaderTimestamp, strconv.FormatInt(ts.Unix(), 10))
		h.Set(HeaderSignature, sig)
		return h
	}
	other, _ := ParseSecret(NewSecret())
	v := &Verifier{Secrets: [][]byte{other, key}, PublicKeys: []ed25519.PublicKey{pk}}
	for _, tc := range []struct {
		name    string
		h       http.Header
		body    []byte
		version string
		err     string
	}{
		{"v1", headers("msg_1", now, Sign(key, "msg_1", now, body)), body, "v1", ""},
		{"v1 among several", headers("msg_1", now, "v1,AAAA "+Sign(key, "msg_1", now, body)), body, "v1", ""},
		{"v1a", headers("msg_1", now, SignEd25519(priv, "msg_1", now, body)), body, "v1a", ""},
		{"tampered body", headers("msg_1", now, Sign(key, "msg_1", now, body)), []byte(`{"type":"x"}`), "", "none of the 1 signature(s) (v1)"},
		{"wrong id", headers("msg_2", now, Sign(key, "msg_1", now, body)), body, "", "wrong secret"},
		{"stale", headers("msg_1", now.Add(-10*time.Minute), Sign(key, "msg_1", now.Add(-10*time.Minute), body)), body, "v1", "10m0s away"},
		{"no id", headers("", now, Sign(key, "", now, body)), body, "", "no webhook-id"},
		{"no signature", headers("msg_1", now, ""), body, "", "no webhook-signature"},
	} {
		version, err := v.Verify(tc.h, tc.body, now)
		if tc.err == "" && (err != nil || version != tc.version) {
			t.Errorf("%s: %q, %v; want %s", tc.name, version, err, tc.version)
		}
		if tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)) {
			t.Errorf("%s: %v; want an error with %q", tc.name, err, tc.err)
		}
	}
}
