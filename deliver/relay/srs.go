package relay

import (
	"crypto/hmac"
	"crypto/sha1"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"time"
)

// SRS errors. Reverse and HandleBounce wrap them with %w.
var (
	// ErrNotSRS means the address is not an SRS address (or is malformed).
	ErrNotSRS = errors.New("relay: not an srs address")
	// ErrSRSBadHash means the hash of an SRS address does not match: it was
	// not made with our secret, or it was altered.
	ErrSRSBadHash = errors.New("relay: srs hash does not match")
	// ErrSRSExpired means the timestamp of an SRS address is older than the
	// maximum age (or in the future).
	ErrSRSExpired = errors.New("relay: srs address expired")
)

// DefaultSRSMaxAge is how long an SRS address stays valid when NewSRS is
// given zero: the libsrs2 default of 21 days.
const DefaultSRSMaxAge = 21 * 24 * time.Hour

const (
	// srsHashLen is the number of base64 characters of the truncated HMAC
	// kept in an address (libsrs2's default hash length).
	srsHashLen = 4
	// srsBase32 is the timestamp alphabet of the Shevek SRS paper.
	srsBase32 = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
	// srsTimePrecision is one day; timestamps are days modulo 1024.
	srsTimePrecision = 24 * time.Hour
	srsTimeSlots     = 1024
	// verifiedTag is hashed in front of the fields of an address made for a
	// verified sender, so HandleBounce can tell, from the address alone and
	// without a store, whether a bounce may be relayed back. The address
	// looks the same either way, and the tag cannot be changed without
	// breaking the hash.
	verifiedTag = "\x00verified"
)

// SRS rewrites envelope senders per the Sender Rewriting Scheme (Shevek,
// "The Sender Rewriting Scheme", 2004; the libsrs2 and postsrsd formats),
// so that forwarded mail leaves with a MAIL FROM in our own domain and
// passes SPF (RFC 7208) at the destination, while bounces can still be
// routed back to the original sender.
//
// An address user@example.org forwarded by us (srs.example.net) becomes
//
//	SRS0=HHHH=TT=example.org=user@srs.example.net
//
// where TT is the day number modulo 1024 in base32 and HHHH the first four
// base64 characters of HMAC-SHA1(secret, lower(TT, domain, local)). An
// address that is already SRS0 from another forwarder (fw.example) becomes
//
//	SRS1=HHHH=fw.example==HHHH=TT=example.org=user@srs.example.net
//
// so the bounce goes back to that forwarder rather than being reversed by
// us (its hash is not ours to check). An SRS1 address is re-forwarded by
// keeping its first forwarder and SRS0 part and putting our own hash.
//
// Hashes are compared without regard to case, as libsrs2 does, because
// some MTAs lowercase local parts. Addresses made by Forward are the same
// as libsrs2's (and postsrsd's) for the same secret and day, so either can
// reverse the other's; those made by ForwardVerified only mailhook can.
//
// An SRS is safe for concurrent use.
type SRS struct {
	secret []byte
	domain string
	maxAge time.Duration
	now    func() time.Time
}

// NewSRS returns an SRS that rewrites into domain (which must be a domain
// we receive mail for, so bounces reach us) and signs with secret. maxAge
// is how long an address remains valid for bounces; zero means
// DefaultSRSMaxAge. It is capped below the 1024-day wrap of the timestamp.
func NewSRS(secret []byte, domain string, maxAge time.Duration) (*SRS, error) {
	if len(secret) < 16 {
		return nil, errors.New("relay: srs secret must be at least 16 bytes")
	}
	domain = strings.TrimSuffix(strings.ToLower(strings.TrimSpace(domain)), ".")
	if domain == "" || strings.ContainsAny(domain, "@= \t") {
		return nil, fmt.Errorf("relay: srs domain %q is not a domain", domain)
	}
	if maxAge <= 0 {
		maxAge = DefaultSRSMaxAge
	}
	if maxAge >= (srsTimeSlots-1)*srsTimePrecision {
		return nil, fmt.Errorf("relay: srs max age %v is too long", maxAge)
	}
	return &SRS{secret: append([]byte(nil), secret...), domain: domain, maxAge: maxAge, now: time.Now}, nil
}

// Domain is the domain SRS addresses are made in.
func (s *SRS) Domain() string { return s.domain }

// Forward rewrites the envelope sender addr for forwarding. The null sender
// stays null (RFC 5321 §4.5.5: bounces are never rewritten into something
// that could bounce). An address in our own SRS domain is returned as it
// is. Bounces to the result are relayed back by HandleBounce only for
// ForwardVerified addresses; use Forward for senders whose SPF and DMARC
// did not pass.
func (s *SRS) Forward(addr string) (string, error) { return s.forward(addr, false) }

// ForwardVerified is Forward for a sender that passed SPF or DMARC: a
// bounce to the resulting address may be relayed back (see HandleBounce).
func (s *SRS) ForwardVerified(addr string) (string, error) { return s.forward(addr, true) }

func (s *SRS) forward(addr string, verified bool) (string, error) {
	if addr == "" {
		return "", nil
	}
	local, domain, ok := splitAddr(addr)
	if !ok {
		return "", fmt.Errorf("relay: srs forward %q: not an address", addr)
	}
	if strings.EqualFold(domain, s.domain) {
		return addr, nil
	}
	switch {
	case hasSRSPrefix(local, "SRS0"):
		// An SRS0 address of another forwarder: SRS1 pointing at it,
		// keeping its opaque part (starting with its separator) as is.
		opaque := local[4:]
		h := s.hash(verified, domain, opaque)
		return "SRS1=" + h + "=" + domain + "=" + opaque + "@" + s.domain, nil
	case hasSRSPrefix(local, "SRS1"):
		// SRS1 from another forwarder: keep the first forwarder and the
		// SRS0 part, replace the hash with ours (Shevek §4.4).
		parts := strings.SplitN(local[5:], "=", 3)
		if len(parts) != 3 || parts[1] == "" {
			return "", fmt.Errorf("relay: srs forward %q: %w", addr, ErrNotSRS)
		}
		first, opaque := parts[1], parts[2]
		h := s.hash(verified, first, opaque)
		return "SRS1=" + h + "=" + first + "=" + opaque + "@" + s.domain, nil
	}
	ts := s.timestamp(s.now())
	h := s.hash(verified, ts, domain, local)
	return "SRS0=" + h + "=" + ts + "=" + domain + "=" + local + "@" + s.domain, nil
}

// IsSRS reports whether addr looks like an SRS address in our domain (the
// hash is not checked). Ingest uses it to route mail to such addresses to
// HandleBounce instead of the rules.
func (s *SRS) IsSRS(addr string) bool {
	local, domain, ok := splitAddr(addr)
	if !ok || !strings.EqualFold(domain, s.domain) {
		return false
	}
	return hasSRSPrefix(local, "SRS0") || hasSRSPrefix(local, "SRS1")
}

// Reverse returns the address an SRS address stands for: the original
// sender for SRS0, and the previous forwarder's SRS0 address for SRS1. It
// fails with ErrNotSRS, ErrSRSBadHash or ErrSRSExpired.
func (s *SRS) Reverse(addr string) (string, error) {
	orig, _, err := s.reverse(addr)
	return orig, err
}

func (s *SRS) reverse(addr string) (orig string, verified bool, err error) {
	local, _, ok := splitAddr(addr)
	if !ok {
		return "", false, fmt.Errorf("relay: srs reverse %q: %w", addr, ErrNotSRS)
	}
	switch {
	case hasSRSPrefix(local, "SRS0"):
		// SRS0=HHHH=TT=domain=local; local may itself hold "=".
		parts := strings.SplitN(local[5:], "=", 4)
		if len(parts) != 4 || parts[1] == "" || parts[2] == "" || parts[3] == "" {
			return "", false, fmt.Errorf("relay: srs reverse %q: %w", addr, ErrNotSRS)
		}
		h, ts, domain, user := parts[0], parts[1], parts[2], parts[3]
		verified, ok := s.check(h, ts, domain, user)
		if !ok {
			return "", false, fmt.Errorf("relay: srs reverse %q: %w", addr, ErrSRSBadHash)
		}
		if err := s.checkTimestamp(ts); err != nil {
			return "", false, fmt.Errorf("relay: srs reverse %q: %w", addr, err)
		}
		return user + "@" + domain, verified, nil
	case hasSRSPrefix(local, "SRS1"):
		// SRS1=HHHH=first=<opaque SRS0 part, with its separator>.
		parts := strings.SplitN(local[5:], "=", 3)
		if len(parts) != 3 || parts[1] == "" || parts[2] == "" {
			return "", false, fmt.Errorf("relay: srs reverse %q: %w", addr, ErrNotSRS)
		}
		h, first, opaque := parts[0], parts[1], parts[2]
		verified, ok := s.check(h, first, opaque)
		if !ok {
			return "", false, fmt.Errorf("relay: srs reverse %q: %w", addr, ErrSRSBadHash)
		}
		return "SRS0" + opaque + "@" + first, verified, nil
	}
	return "", false, fmt.Errorf("relay: srs reverse %q: %w", addr, ErrNotSRS)
}

// BounceAction is what to do with a message sent to one of our SRS
// addresses.
type BounceAction struct {
	// Relay is true when the message should be relayed, with the null
	// sender, to To.
	Relay bool
	// To is the reversed address (the original sender, or the previous
	// forwarder's SRS0 address). It is set even when Relay is false, for
	// logs.
	To string
	// Reason says why the message is dropped when Relay is false.
	Reason string
}

// HandleBounce decides what to do with a message whose recipient rcpt is
// one of our SRS addresses (IsSRS). mailFrom is its envelope sender.
//
// Bounces (RFC 3464 DSNs, sent with the null sender, RFC 5321 §4.5.5) to a
// valid, unexpired address are relayed back to the reversed address, with
// the null sender and through the relay like any forward, but only when
// the address was made by ForwardVerified: the original sender passed SPF
// or DMARC when we forwarded its mail. Otherwise the bounce is dropped
// (accepted and not delivered), because relaying it would send backscatter
// to whoever a spammer put in MAIL FROM. Mail with a non-null sender to an
// SRS address is not a bounce and is dropped too.
//
// An error (ErrNotSRS, ErrSRSBadHash, ErrSRSExpired) means the address is
// not one we made or is too old; ingest should refuse the recipient at
// RCPT with 550 5.1.1 rather than accept and drop, so the remote keeps the
// bounce.
func (s *SRS) HandleBounce(mailFrom, rcpt string) (BounceAction, error) {
	orig, verified, err := s.reverse(rcpt)
	if err != nil {
		return BounceAction{}, err
	}
	a := BounceAction{To: orig}
	switch {
	case mailFrom != "":
		a.Reason = "not a bounce: the envelope sender is not null"
	case !verified:
		a.Reason = "the original sender did not pass spf or dmarc; bounce dropped to avoid backscatter"
	default:
		a.Relay = true
	}
	return a, nil
}

// hash returns the truncated base64 HMAC-SHA1 of the lowercased fields, as
// libsrs2 does, with verifiedTag in front for verified senders.
func (s *SRS) hash(verified bool, fields ...string) string {
	m := hmac.New(sha1.New, s.secret)
	if verified {
		m.Write([]byte(verifiedTag))
	}
	for _, f := range fields {
		m.Write([]byte(strings.ToLower(f)))
	}
	return base64.StdEncoding.EncodeToString(m.Sum(nil))[:srsHashLen]
}

// check reports whether h is the hash of fields, and whether it is the
// verified variant. The comparison ignores case (see SRS).
func (s *SRS) check(h string, fields ...string) (verified, ok bool) {
	if len(h) != srsHashLen {
		return false, false
	}
	eq := func(a, b string) bool {
		return subtle.ConstantTimeCompare([]byte(strings.ToLower(a)), []byte(strings.ToLower(b))) == 1
	}
	if eq(h, s.hash(true, fields...)) {
		return true, true
	}
	return false, eq(h, s.hash(false, fields...))
}

// timestamp is the day number modulo 1024 as two base32 characters.
func (s *SRS) timestamp(t time.Time) string {
	d := (t.Unix() / int64(srsTimePrecision/time.Second)) % srsTimeSlots
	return string([]byte{srsBase32[d>>5], srsBase32[d&31]})
}

func (s *SRS) checkTimestamp(ts string) error {
	if len(ts) != 2 {
		return ErrSRSExpired
	}
	var then int64
	for _, c := range strings.ToUpper(ts) {
		i := strings.IndexRune(srsBase32, c)
		if i < 0 {
			return ErrSRSExpired
		}
		then = then<<5 | int64(i)
	}
	today := (s.now().Unix() / int64(srsTimePrecision/time.Second)) % srsTimeSlots
	age := (today - then + srsTimeSlots) % srsTimeSlots
	if time.Duration(age)*srsTimePrecision > s.maxAge {
		return ErrSRSExpired
	}
	return nil
}

// hasSRSPrefix reports whether local starts with tag (SRS0 or SRS1, any
// case) followed by one of the separators libsrs2 accepts.
func hasSRSPrefix(local, tag string) bool {
	if len(local) < 5 || !strings.EqualFold(local[:4], tag) {
		return false
	}
	switch local[4] {
	case '=', '+', '-':
		return true
	}
	return false
}

// splitAddr splits an address at its last "@". Angle brackets are
// stripped.
func splitAddr(addr string) (local, domain string, ok bool) {
	addr = strings.TrimSuffix(strings.TrimPrefix(addr, "<"), ">")
	i := strings.LastIndexByte(addr, '@')
	if i <= 0 || i == len(addr)-1 {
		return "", "", false
	}
	return addr[:i], addr[i+1:], true
}
