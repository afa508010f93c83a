package ingest

import (
	"strings"
	"unicode/utf8"

	"github.com/emersion/go-smtp"
)

// checkRecipient applies the relay policy to a recipient as go-smtp parsed
// it (source routes already dropped, quoted local parts unquoted). It
// returns the normalized address (domain lower-cased) and its domain, or the
// reply to refuse it with. Whether a rule accepts the address is decided
// after.
func checkRecipient(addr string, utf8OK bool, ours func(domain string) bool) (string, string, *smtp.SMTPError) {
	if addr == "" {
		return "", "", ErrBadAddress
	}
	if !utf8OK && !isASCII(addr) {
		return "", "", ErrNeedSMTPUTF8
	}
	if !utf8.ValidString(addr) {
		return "", "", ErrBadAddress
	}
	at := strings.LastIndexByte(addr, '@')
	if at <= 0 || at == len(addr)-1 {
		return "", "", ErrBadAddress
	}
	local, domain := addr[:at], strings.ToLower(strings.TrimSuffix(addr[at+1:], "."))
	if !ours(domain) {
		return "", "", ErrRelayDenied
	}
	// The classic relay tricks: a second '@' from a quoted local part
	// ("user@other"@ours), the percent hack (user%other@ours) and bang
	// paths (other!user@ours). We never interpret them, and refuse them so
	// that no downstream system does either.
	if strings.ContainsAny(local, "@%!") {
		return "", "", ErrRelayDenied
	}
	for _, r := range local {
		if r < 0x21 || r == 0x7f || strings.ContainsRune(`"(),:;<>[\]`, r) {
			return "", "", ErrBadAddress
		}
	}
	if strings.HasPrefix(local, ".") || strings.HasSuffix(local, ".") || strings.Contains(local, "..") {
		return "", "", ErrBadAddress
	}
	return local + "@" + domain, domain, nil
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}
