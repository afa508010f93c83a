package webhook

import (
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"hash"
	"io"
	"strconv"
	"strings"
	"time"
)

// Secret and key prefixes of the Standard Webhooks specification ("Signature
// scheme"): symmetric secrets are "whsec_" + base64, ed25519 secret keys
// "whsk_" + base64 and public keys "whpk_" + base64.
const (
	SecretPrefix     = "whsec_"
	SigningKeyPrefix = "whsk_"
	PublicKeyPrefix  = "whpk_"
)

// Header names of the Standard Webhooks specification ("Webhook headers").
const (
	HeaderID        = "webhook-id"
	HeaderTimestamp = "webhook-timestamp"
	HeaderSignature = "webhook-signature"
)

// The specification asks for symmetric secrets of 24 to 64 random bytes
// (192 to 512 bits).
const (
	minSecretLen = 24
	maxSecretLen = 64
)

// ErrBadSecret is wrapped by every error of ParseSecret and ParseSigningKey.
var ErrBadSecret = errors.New("webhook: bad secret")

// decodeB64 decodes standard base64, with or without padding.
func decodeB64(s string) ([]byte, error) {
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		b, err = base64.RawStdEncoding.DecodeString(s)
	}
	return b, err
}

// ParseSecret decodes a symmetric signing secret, "whsec_" followed by the
// base64 of 24 to 64 random bytes, per the Standard Webhooks specification.
func ParseSecret(s string) ([]byte, error) {
	s = strings.TrimSpace(s)
	b64, ok := strings.CutPrefix(s, SecretPrefix)
	if !ok {
		return nil, fmt.Errorf("%w: must start with %q", ErrBadSecret, SecretPrefix)
	}
	key, err := decodeB64(b64)
	if err != nil {
		return nil, fmt.Errorf("%w: not base64 after %q", ErrBadSecret, SecretPrefix)
	}
	if len(key) < minSecretLen || len(key) > maxSecretLen {
		return nil, fmt.Errorf("%w: %d bytes, want %d to %d", ErrBadSecret, len(key), minSecretLen, maxSecretLen)
	}
	return key, nil
}

// NewSecret returns a fresh random symmetric secret (32 bytes) in its
// "whsec_" form.
func NewSecret() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b) // never fails (crypto/rand, Go 1.24+)
	return SecretPrefix + base64.StdEncoding.EncodeToString(b)
}

// ParseSigningKey decodes an ed25519 secret key for asymmetric "v1a"
// signatures: "whsk_" followed by the base64 of either the 32-byte seed or
// the 64-byte private key (seed and public key, as crypto/ed25519 holds it).
func ParseSigningKey(s string) (ed25519.PrivateKey, error) {
	s = strings.TrimSpace(s)
	b64, ok := strings.CutPrefix(s, SigningKeyPrefix)
	if !ok {
		return nil, fmt.Errorf("%w: signing key must start with %q", ErrBadSecret, SigningKeyPrefix)
	}
	b, err := decodeB64(b64)
	if err != nil {
		return nil, fmt.Errorf("%w: signing key not base64 after %q", ErrBadSecret, SigningKeyPrefix)
	}
	switch len(b) {
	case ed25519.SeedSize:
		return ed25519.NewKeyFromSeed(b), nil
	case ed25519.PrivateKeySize:
		k := ed25519.NewKeyFromSeed(b[:ed25519.SeedSize])
		if !hmac.Equal(k[ed25519.SeedSize:], b[ed25519.SeedSize:]) {
			return nil, fmt.Errorf("%w: signing key's public half does not match its seed", ErrBadSecret)
		}
		return k, nil
	default:
		return nil, fmt.Errorf("%w: signing key is %d bytes, want %d or %d", ErrBadSecret, len(b), ed25519.SeedSize, ed25519.PrivateKeySize)
	}
}

// NewSigningKey returns a fresh ed25519 key pair as "whsk_" (the 64-byte
// private key) and "whpk_" strings.
func NewSigningKey() (secret, public string) {
	pub, priv, _ := ed25519.GenerateKey(rand.Reader) // never fails with crypto/rand
	return SigningKeyPrefix + base64.StdEncoding.EncodeToString(priv),
		PublicKeyPrefix + base64.StdEncoding.EncodeToString(pub)
}

// PublicKey returns the "whpk_" form of k's public key, the one receivers
// verify "v1a" signatures with.
func PublicKey(k ed25519.PrivateKey) string {
	return PublicKeyPrefix + base64.StdEncoding.EncodeToString(k.Public().(ed25519.PublicKey))
}

// Sign returns the symmetric Standard Webhooks signature "v1,<base64>" of
// one delivery: HMAC-SHA256 keyed by secret over "{id}.{timestamp}.{body}",
// the timestamp in Unix seconds.
func Sign(secret []byte, id string, ts time.Time, body []byte) string {
	m := hmac.New(sha256.New, secret)
	writeSignedPrefix(m, id, ts)
	m.Write(body)
	return "v1," + base64.StdEncoding.EncodeToString(m.Sum(nil))
}

// SignEd25519 returns the asymmetric Standard Webhooks signature
// "v1a,<base64>" of one delivery: ed25519 over "{id}.{timestamp}.{body}".
func SignEd25519(key ed25519.PrivateKey, id string, ts time.Time, body []byte) string {
	msg := make([]byte, 0, len(id)+22+len(body))
	msg = append(msg, id...)
	msg = append(msg, '.')
	msg = strconv.AppendInt(msg, ts.Unix(), 10)
	msg = append(msg, '.')
	msg = append(msg, body...)
	return "v1a," + base64.StdEncoding.EncodeToString(ed25519.Sign(key, msg))
}

func writeSignedPrefix(w io.Writer, id string, ts time.Time) {
	var b [24]byte
	io.WriteString(w, id)
	p := append(b[:0], '.')
	p = strconv.AppendInt(p, ts.Unix(), 10)
	p = append(p, '.')
	w.Write(p)
}

// signer computes every signature of one endpoint over a body it is fed in
// pieces, so a large body (the raw message) can stream through it.
type signer struct {
	macs []hash.Hash
}

// newSigner starts the signatures of one delivery. The symmetric ones
// stream; the asymmetric ones need the whole body (ed25519 is not a
// streaming signature), which header is given.
func newSigner(secrets [][]byte, id string, ts time.Time) *signer {
	s := &signer{macs: make([]hash.Hash, len(secrets))}
	for i, k := range secrets {
		s.macs[i] = hmac.New(sha256.New, k)
		writeSignedPrefix(s.macs[i], id, ts)
	}
	return s
}

// Write feeds the body to every HMAC.
func (s *signer) Write(p []byte) (int, error) {
	for _, m := range s.macs {
		m.Write(p)
	}
	return len(p), nil
}

// header returns the webhook-signature value: every "v1" signature then
// every "v1a" one, space-separated ("Webhook headers": one signature per
// active secret, so receivers holding either secret of a rotation verify).
// body is needed only when keys is not empty.
func (s *signer) header(keys []ed25519.PrivateKey, id string, ts time.Time, body []byte) string {
	var b strings.Builder
	var sum [sha256.Size]byte
	for _, m := range s.macs {
		if b.Len() > 0 {
			b.WriteByte(' ')
		}
		b.WriteString("v1,")
		b.WriteString(base64.StdEncoding.EncodeToString(m.Sum(sum[:0])))
	}
	for _, k := range keys {
		if b.Len() > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(SignEd25519(k, id, ts, body))
	}
	return b.String()
}
