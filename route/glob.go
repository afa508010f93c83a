package route

import (
	"errors"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Address globs
//
// A glob is "local@domain" where both halves may hold '*' (any run of
// characters, possibly empty) and '?' (exactly one character). There are no
// character classes and no escapes. Matching is case-insensitive in both
// halves: the domain because DNS is (RFC 5321 §2.4), the local part because
// mailhook, like most MTAs, treats local parts case-insensitively even though
// RFC 5321 §2.4 allows a server to distinguish them.
//
// Plus addressing: a glob whose local part has no '+' also matches the
// address with its "+tag" removed, so "support@example.test" matches
// "support+billing@example.test". A glob with a '+' ("support+*@...") is
// matched against the whole local part only.
//
// Addresses that carry routing syntax are compared as given and, since a glob
// cannot contain routing characters, never match: a source route
// ("@relay:user@host", RFC 5321 §4.1.2 and Appendix C), a quoted local part
// ("\"user@other\"@host"), the percent hack ("user%other@host") and bang
// paths ("other!user@host"), as well as domain literals ("user@[192.0.2.1]").
// So "*@example.test" can never be talked into routing "user%other@example.test".
// The null reverse-path "<>" (RFC 5321 §4.5.5) matches only the mail_from
// glob "" or "<>".

// Length limits keep matching cheap on hostile input. RFC 5321 §4.5.3.1.3
// limits a path to 256 octets; we allow some slack for what headers carry.
const (
	maxGlobLen    = 512
	maxAddressLen = 1024
)

// glob is a compiled address glob.
type glob struct {
	src    string // as written, for Why and errors
	null   bool   // matches only the null reverse-path
	local  string // lower-cased
	domain string // lower-cased, without trailing dot
	plus   bool   // local contains '+': no tag stripping
}

var errNullGlob = errors.New(`the null sender "<>" is only meaningful in mail_from`)

// compileGlob parses an address glob. allowNull permits "" and "<>" (the
// null reverse-path), which only makes sense for mail_from.
func compileGlob(s string, allowNull bool) (glob, error) {
	src := s
	s = strings.TrimSpace(s)
	if s == "" || s == "<>" {
		if !allowNull {
			if s == "" {
				return glob{}, errors.New("empty glob; want local@domain, like *@example.test")
			}
			return glob{}, errNullGlob
		}
		return glob{src: src, null: true}, nil
	}
	if len(s) > maxGlobLen {
		return glob{}, fmt.Errorf("glob longer than %d bytes", maxGlobLen)
	}
	if !utf8.ValidString(s) {
		return glob{}, errors.New("glob is not valid UTF-8")
	}
	if strings.HasPrefix(s, "<") && strings.HasSuffix(s, ">") {
		s = s[1 : len(s)-1]
	}
	at := strings.IndexByte(s, '@')
	if at < 0 {
		return glob{}, fmt.Errorf("%q has no '@'; want local@domain, like *@example.test", src)
	}
	if strings.IndexByte(s[at+1:], '@') >= 0 {
		return glob{}, fmt.Errorf("%q has more than one '@'", src)
	}
	local, domain := s[:at], strings.TrimSuffix(s[at+1:], ".")
	if local == "" {
		return glob{}, fmt.Errorf("%q has an empty local part; use * for any", src)
	}
	if domain == "" {
		return glob{}, fmt.Errorf("%q has an empty domain; use * for any", src)
	}
	for _, r := range local {
		if !localRune(r) && r != '*' && r != '?' {
			return glob{}, fmt.Errorf("%q: character %q is not allowed in a local part glob", src, r)
		}
	}
	for _, r := range domain {
		if !domainRune(r) && r != '*' && r != '?' {
			return glob{}, fmt.Errorf("%q: character %q is not allowed in a domain glob", src, r)
		}
	}
	local, domain = strings.ToLower(local), strings.ToLower(domain)
	return glob{src: src, local: local, domain: domain, plus: strings.IndexByte(local, '+') >= 0}, nil
}

// localRune reports whether r may appear in an unquoted local part that we
// are willing to match: RFC 5322 §3.2.3 atext and '.', plus UTF-8 letters
// (RFC 6531), minus the characters that smell of routing ('%', '!') and
// minus the glob metacharacters. Everything else makes an address opaque.
func localRune(r rune) bool {
	switch {
	case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9':
		return true
	case r < utf8.RuneSelf:
		return strings.ContainsRune("#$&'+-/=^_`{|}~.", r)
	default:
		return unicode.IsPrint(r) && !unicode.IsSpace(r)
	}
}

// domainRune reports whether r may appear in a domain name: LDH (RFC 1035
// §2.3.1), '.', and UTF-8 letters for internationalized names (RFC 6531).
func domainRune(r rune) bool {
	switch {
	case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '.':
		return true
	case r < utf8.RuneSelf:
		return false
	default:
		return unicode.IsLetter(r) || unicode.IsDigit(r) || unicode.IsMark(r)
	}
}

// addr is an address split for matching.
type addr struct {
	null   bool   // the null reverse-path
	opaque bool   // routing syntax or malformed: matches no glob
	local  string // lower-cased
	domain string // lower-cased, without trailing dot
}

// splitAddr prepares an address for matching. Angle brackets are removed; ""
// and "<>" are the null reverse-path.
func splitAddr(s string) addr {
	s = strings.TrimSpace(s)
	if strings.HasPrefix(s, "<") && strings.HasSuffix(s, ">") {
		s = s[1 : len(s)-1]
	}
	if s == "" {
		return addr{null: true}
	}
	if len(s) > maxAddressLen || !utf8.ValidString(s) {
		return addr{opaque: true}
	}
	at := strings.LastIndexByte(s, '@')
	if at <= 0 || at == len(s)-1 {
		return addr{opaque: true}
	}
	local, domain := s[:at], strings.TrimSuffix(s[at+1:], ".")
	if domain == "" || strings.HasPrefix(local, ".") || strings.HasSuffix(local, ".") || strings.Contains(local, "..") {
		return addr{opaque: true}
	}
	for _, r := range local {
		if !localRune(r) && r != '*' && r != '?' {
			return addr{opaque: true}
		}
	}
	for _, r := range domain {
		if !domainRune(r) {
			return addr{opaque: true}
		}
	}
	return addr{local: strings.ToLower(local), domain: strings.ToLower(domain)}
}

// match reports whether the glob matches a.
func (g *glob) match(a addr) bool {
	if g.null || a.null {
		return g.null && a.null
	}
	if a.opaque || !wildMatch(g.domain, a.domain) {
		return false
	}
	if wildMatch(g.local, a.local) {
		return true
	}
	if !g.plus {
		if i := strings.IndexByte(a.local, '+'); i > 0 {
			return wildMatch(g.local, a.local[:i])
		}
	}
	return false
}

// wildMatch matches s against pattern p where '*' matches any run of
// characters and '?' exactly one character (rune). Both are already
// lower-cased. It backtracks only to the last '*', so it runs in
// O(len(p)*len(s)) at worst, and the inputs are length-limited.
func wildMatch(p, s string) bool {
	px, sx := 0, 0
	starPx, starSx := -1, 0
	for px < len(p) || sx < len(s) {
		if px < len(p) {
			switch c := p[px]; c {
			case '*':
				starPx, starSx = px, sx
				px++
				continue
			case '?':
				if sx < len(s) {
					_, w := utf8.DecodeRuneInString(s[sx:])
					px++
					sx += w
					continue
				}
			default:
				if sx < len(s) && s[sx] == c {
					px++
					sx++
					continue
				}
			}
		}
		// Mismatch: let the last '*' swallow one more character.
		if starPx >= 0 && starSx < len(s) {
			_, w := utf8.DecodeRuneInString(s[starSx:])
			starSx += w
			px, sx = starPx+1, starSx
			continue
		}
		return false
	}
	return true
}
