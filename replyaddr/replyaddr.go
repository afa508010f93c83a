// Package replyaddr mints and verifies signed reply addresses: per-thread
// addresses an application puts in the Reply-To of its notifications, so
// that a reply can be told apart from a guess or a forgery.
//
// An address has the form
//
//	reply+<thread>.<token>@<domain>
//
// where token is the lower-case base32 (RFC 4648 §6, no padding) of 12
// bytes: a 4-byte expiry (minutes since the Unix epoch, big-endian; zero
// means never) and the first 8 bytes of
//
//	HMAC-SHA256(secret, "mailhook-reply-v1" 0x00 lower(thread) 0x00 lower(domain) 0x00 expiry)
//
// The MAC covers the thread key, the domain and the expiry, so none of them
// can be changed without breaking it; the thread and domain are hashed
// lower-cased because some MTAs lower-case local parts (RFC 5321 §2.4 lets
// them). Several secrets verify, the first signs: rotate by putting the new
// secret first and dropping the old one once its addresses have expired.
//
// The package imports nothing of mailhook's, so an application can import
// it and mint the same addresses mailhook verifies. A Signer is safe for
// concurrent use.
package replyaddr

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base32"
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Prefix is the local part before the '+' of every reply address.
const Prefix = "reply"

// MinSecretLen is the shortest secret accepted, in bytes.
const MinSecretLen = 16

// maxLocal is the longest local part RFC 5321 §4.5.3.1.1 lets every MTA
// accept.
const maxLocal = 64

const (
	expiryLen = 4
	macLen    = 8
	tokenLen  = 20 // base32 of expiryLen+macLen bytes, unpadded
)

var enc = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// Errors of New and Mint.
var (
	ErrNoSecret  = errors.New("replyaddr: no secret")
	ErrBadThread = errors.New("replyaddr: bad thread key")
	ErrTooLong   = errors.New("replyaddr: address too long")
	ErrNoDomain  = errors.New("replyaddr: no domain")
)

// Options configure a Signer.
type Options struct {
	// Secrets verify addresses; the first also signs new ones. Each is at
	// least MinSecretLen bytes.
	Secrets []string
	// Domain is the domain of minted addresses (config reply.domain).
	Domain string
	// TTL is how long a minted address stays valid when Mint is given
	// zero; zero here means minted addresses never expire.
	TTL time.Duration
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// Signer mints and verifies reply addresses.
type Signer struct {
	secrets [][]byte
	domain  string
	ttl     time.Duration
	now     func() time.Time
}

// New returns a Signer for o.
func New(o Options) (*Signer, error) {
	if len(o.Secrets) == 0 {
		return nil, ErrNoSecret
	}
	s := &Signer{domain: strings.ToLower(strings.TrimSuffix(o.Domain, ".")), ttl: o.TTL, now: o.Now}
	for i, k := range o.Secrets {
		if len(k) < MinSecretLen {
			return nil, fmt.Errorf("replyaddr: secrets[%d]: shorter than %d bytes", i, MinSecretLen)
		}
		s.secrets = append(s.secrets, []byte(k))
	}
	if o.TTL < 0 {
		return nil, errors.New("replyaddr: negative ttl")
	}
	if s.now == nil {
		s.now = time.Now
	}
	return s, nil
}

// Domain returns the domain minted addresses use.
func (s *Signer) Domain() string { return s.domain }

// Minted is one address Mint made.
type Minted struct {
	Address string `json:"address"`
	Thread  string `json:"thread"`
	// ExpiresAt is when the address stops verifying; zero for never.
	ExpiresAt time.Time `json:"expires_at,omitzero"`
}

// Mint returns the reply address of thread in the Signer's domain. ttl is
// how long it stays valid: zero means the Signer's TTL, negative never
// expires. Expiry is kept to the minute, rounded up.
func (s *Signer) Mint(thread string, ttl time.Duration) (Minted, error) {
	return s.MintFor(thread, s.domain, ttl)
}

// MintFor is Mint for another domain.
func (s *Signer) MintFor(thread, domain string, ttl time.Duration) (Minted, error) {
	domain = strings.ToLower(strings.TrimSuffix(strings.TrimSpace(domain), "."))
	if domain == "" {
		return Minted{}, ErrNoDomain
	}
	if err := checkThread(thread); err != nil {
		return Minted{}, err
	}
	if ttl == 0 {
		ttl = s.ttl
	}
	var exp uint32
	var expAt time.Time
	if ttl > 0 {
		m := (s.now().Add(ttl).Unix() + 59) / 60
		exp = uint32(min(m, int64(^uint32(0))))
		expAt = time.Unix(int64(exp)*60, 0).UTC()
	}
	local := Prefix + "+" + thread + "." + token(s.secrets[0], thread, domain, exp)
	if len(local) > maxLocal {
		return Minted{}, fmt.Errorf("%w: local part of %d bytes, at most %d (thread keys up to %d bytes)",
			ErrTooLong, len(local), maxLocal, maxLocal-len(Prefix)-2-tokenLen)
	}
	return Minted{Address: local + "@" + domain, Thread: thread, ExpiresAt: expAt}, nil
}

// checkThread accepts what a dot-atom local part can carry without
// quoting: letters, digits, '-', '_', '=' and inner single dots.
func checkThread(t string) error {
	if t == "" {
		return fmt.Errorf("%w: empty", ErrBadThread)
	}
	if t[0] == '.' || t[len(t)-1] == '.' || strings.Contains(t, "..") {
		return fmt.Errorf("%w: %q: a dot may not start, end or repeat", ErrBadThread, t)
	}
	for i := 0; i < len(t); i++ {
		c := t[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_' || c == '=' || c == '.') {
			return fmt.Errorf("%w: %q: only letters, digits, '-', '_', '=' and '.'", ErrBadThread, t)
		}
	}
	return nil
}

func token(secret []byte, thread, domain string, exp uint32) string {
	var b [expiryLen + macLen]byte
	binary.BigEndian.PutUint32(b[:expiryLen], exp)
	copy(b[expiryLen:], mac(secret, thread, domain, b[:expiryLen]))
	return enc.EncodeToString(b[:])
}

func mac(secret []byte, thread, domain string, exp []byte) []byte {
	h := hmac.New(sha256.New, secret)
	h.Write([]byte("mailhook-reply-v1\x00"))
	h.Write([]byte(strings.ToLower(thread)))
	h.Write([]byte{0})
	h.Write([]byte(strings.ToLower(domain)))
	h.Write([]byte{0})
	h.Write(exp)
	return h.Sum(nil)[:macLen]
}

// Result is what Verify found. Its JSON form is the webhook's "reply"
// object.
type Result struct {
	// Thread is the thread key of a valid or expired address; it is empty
	// for an invalid one, so an application that forgets to look at Valid
	// still cannot be steered to a thread by a forged address.
	Thread string `json:"thread"`
	// Valid means the MAC verified under one of the secrets and the
	// address has not expired.
	Valid bool `json:"valid"`
	// Expired means the MAC verified but the expiry has passed.
	Expired bool `json:"expired"`
}

// Verify checks addr (local@domain). ok is false when addr is not a reply
// address at all (its local part does not start with "reply+"); then r is
// zero. A reply address that is malformed, altered, signed with an unknown
// secret or for another domain is invalid.
func (s *Signer) Verify(addr string) (r Result, ok bool) {
	at := strings.LastIndexByte(addr, '@')
	if at < 0 {
		return Result{}, false
	}
	local, domain := addr[:at], addr[at+1:]
	rest, ok := cutPrefixFold(local, Prefix+"+")
	if !ok {
		return Result{}, false
	}
	dot := strings.LastIndexByte(rest, '.')
	if dot < 0 || len(rest)-dot-1 != tokenLen {
		return Result{}, true
	}
	thread, tok := rest[:dot], strings.ToLower(rest[dot+1:])
	raw, err := enc.DecodeString(tok)
	if err != nil || len(raw) != expiryLen+macLen || checkThread(thread) != nil {
		return Result{}, true
	}
	domain = strings.TrimSuffix(domain, ".")
	for _, k := range s.secrets {
		if hmac.Equal(mac(k, thread, domain, raw[:expiryLen]), raw[expiryLen:]) {
			exp := binary.BigEndian.Uint32(raw[:expiryLen])
			if exp != 0 && !s.now().Before(time.Unix(int64(exp)*60, 0)) {
				return Result{Thread: thread, Expired: true}, true
			}
			return Result{Thread: thread, Valid: true}, true
		}
	}
	return Result{}, true
}

func cutPrefixFold(s, prefix string) (string, bool) {
	if len(s) < len(prefix) || !strings.EqualFold(s[:len(prefix)], prefix) {
		return s, false
	}
	return s[len(prefix):], true
}

// ParseTTL reads a time to live as the command line and the API take it: a
// Go duration ("72h", "90m") or a whole number of days or weeks ("30d",
// "2w"). "0" and "never" mean no expiry (a negative duration for Mint).
func ParseTTL(v string) (time.Duration, error) {
	v = strings.TrimSpace(v)
	switch v {
	case "":
		return 0, nil
	case "0", "never":
		return -1, nil
	}
	for suffix, unit := range map[string]time.Duration{"d": 24 * time.Hour, "w": 7 * 24 * time.Hour} {
		if n, ok := strings.CutSuffix(v, suffix); ok {
			days, err := strconv.ParseUint(n, 10, 16)
			if err != nil || days == 0 {
				return 0, fmt.Errorf("replyaddr: ttl %q: want like 30d, 2w or 72h", v)
			}
			return time.Duration(days) * unit, nil
		}
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		return 0, fmt.Errorf("replyaddr: ttl %q: want like 30d, 2w or 72h", v)
	}
	return d, nil
}
