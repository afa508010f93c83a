package config

import (
	"net/url"
	"strings"
)

// redacted replaces a secret in a URL shown to people.
const redacted = "REDACTED"

// RedactURL returns raw fit to print in a message or a log: userinfo
// (RFC 3986 §3.2.1: "user:password@", deprecated but still sent) becomes
// REDACTED, every query value becomes REDACTED (the keys stay, so
// "token=REDACTED" still says what is there), a fragment is dropped, and
// path segments that look like secrets (capability URLs: 16 or more
// letters, digits, '-' or '_', with both letters and digits) become
// REDACTED. A string that does not parse as a URL is not shown at all.
func RedactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(a URL that does not parse; not shown)"
	}
	if u.User != nil {
		u.User = url.User(redacted)
	}
	if u.RawQuery != "" {
		parts := strings.Split(u.RawQuery, "&")
		for i, p := range parts {
			k, _, _ := strings.Cut(p, "=")
			parts[i] = k + "=" + redacted
		}
		u.RawQuery = strings.Join(parts, "&")
	}
	u.ForceQuery = false
	if u.Fragment != "" || u.RawFragment != "" {
		u.Fragment, u.RawFragment = redacted, ""
	}
	if u.Opaque != "" {
		u.Opaque = redacted
	}
	segs := strings.Split(u.EscapedPath(), "/")
	changed := false
	for i, s := range segs {
		if secretLike(s) {
			segs[i], changed = redacted, true
		}
	}
	if changed {
		p := strings.Join(segs, "/")
		u.Path, u.RawPath = p, ""
	}
	return u.String()
}

// secretLike reports whether a path segment looks like a token rather
// than a word: long, of token characters, mixing letters and digits.
func secretLike(s string) bool {
	if len(s) < 16 {
		return false
	}
	letters, digits := false, false
	for _, c := range []byte(s) {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z':
			letters = true
		case c >= '0' && c <= '9':
			digits = true
		case c == '-' || c == '_':
		default:
			return false
		}
	}
	return letters && digits
}
