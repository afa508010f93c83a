package webhook

import (
	"crypto/ed25519"
	"crypto/hmac"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// DefaultTolerance is how far a webhook-timestamp may be from the
// receiver's clock (the Standard Webhooks reference libraries use 5
// minutes), which bounds replays of a captured delivery.
const DefaultTolerance = 5 * time.Minute

// Verifier checks deliveries the way a receiver does: the signature over
// the raw body, then the timestamp. It is what `mailhook webhook listen`
// runs, and what a receiver written in Go can copy.
type Verifier struct {
	// Secrets are the symmetric keys (decoded "whsec_" secrets) that may
	// have made a "v1" signature.
	Secrets [][]byte
	// PublicKeys verify "v1a" (ed25519) signatures.
	PublicKeys []ed25519.PublicKey
	// Tolerance bounds the timestamp's distance from now; zero means
	// DefaultTolerance.
	Tolerance time.Duration
}

// ParsePublicKey decodes a "whpk_" ed25519 public key.
func ParsePublicKey(s string) (ed25519.PublicKey, error) {
	b64, ok := strings.CutPrefix(strings.TrimSpace(s), PublicKeyPrefix)
	if !ok {
		return nil, fmt.Errorf("%w: public key must start with %q", ErrBadSecret, PublicKeyPrefix)
	}
	b, err := decodeB64(b64)
	if err != nil || len(b) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("%w: public key is not the base64 of %d bytes", ErrBadSecret, ed25519.PublicKeySize)
	}
	return ed25519.PublicKey(b), nil
}

// Verify checks one delivery's headers and raw body at now. It returns the
// version of the signature that matched ("v1" or "v1a"), or an error that
// says why none did, in words an operator can act on.
func (v *Verifier) Verify(h http.Header, body []byte, now time.Time) (string, error) {
	id, ts, sigs := h.Get(HeaderID), h.Get(HeaderTimestamp), h.Get(HeaderSignature)
	switch {
	case id == "":
		return "", errors.New("no webhook-id header")
	case ts == "":
		return "", errors.New("no webhook-timestamp header")
	case sigs == "":
		return "", errors.New("no webhook-signature header")
	}
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return "", fmt.Errorf("webhook-timestamp %q is not Unix seconds", ts)
	}
	tol := v.Tolerance
	if tol <= 0 {
		tol = DefaultTolerance
	}
	at := time.Unix(sec, 0)
	var versions []string
	for _, sig := range strings.Fields(sigs) {
		version, b64, _ := strings.Cut(sig, ",")
		versions = append(versions, version)
		got, err := base64.StdEncoding.DecodeString(b64)
		if err != nil {
			continue
		}
		switch version {
		case "v1":
			for _, k := range v.Secrets {
				want, _ := base64.StdEncoding.DecodeString(strings.TrimPrefix(Sign(k, id, at, body), "v1,"))
				if hmac.Equal(got, want) {
					return "v1", checkAge(at, now, tol)
				}
			}
		case "v1a":
			msg := []byte(id + "." + ts + ".")
			msg = append(msg, body...)
			for _, k := range v.PublicKeys {
				if ed25519.Verify(k, msg, got) {
					return "v1a", checkAge(at, now, tol)
				}
			}
		}
	}
	return "", fmt.Errorf("none of the %d signature(s) (%s) matches the %d secret(s) and %d public key(s) given: wrong secret, or the body was changed on the way",
		len(versions), strings.Join(versions, " "), len(v.Secrets), len(v.PublicKeys))
}

func checkAge(at, now time.Time, tol time.Duration) error {
	if d := now.Sub(at); d > tol || d < -tol {
		return fmt.Errorf("signature valid, but webhook-timestamp is %s away from this clock (tolerance %s): a replay, or a clock is wrong",
			d.Round(time.Second), tol)
	}
	return nil
}
