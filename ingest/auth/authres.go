package auth

import (
	"strings"

	"github.com/emersion/go-msgauth/authres"
)

// formatAR formats the Authentication-Results value for res (RFC 8601
// §2.2): our authserv-id, then spf (RFC 7208 §9.2: smtp.mailfrom, or
// smtp.helo when the HELO identity was checked), one dkim result per
// signature (RFC 6376 §7.2, header.d and header.s) or dkim=none, and dmarc
// (RFC 7489 §11.2, header.from).
func (v *Verifier) formatAR(res *Results) string {
	var rs []authres.Result
	spfRes := &authres.SPFResult{Value: authres.ResultValue(orNone(res.SPF.Result))}
	if res.SPF.Identity == "helo" {
		spfRes.Helo = res.SPF.Domain
	} else {
		spfRes.From = res.SPF.Domain
	}
	rs = append(rs, spfRes)
	if len(res.DKIM) == 0 {
		rs = append(rs, &authres.DKIMResult{Value: authres.ResultNone})
	}
	for _, d := range res.DKIM {
		rs = append(rs, &authres.GenericResult{
			Method: "dkim",
			Value:  authres.ResultValue(d.Result),
			Params: map[string]string{"header.d": d.Domain, "header.s": d.Selector},
		})
	}
	rs = append(rs, &authres.DMARCResult{Value: authres.ResultValue(orNone(res.DMARC.Result)), From: res.DMARC.Domain})
	s := authres.Format(v.authServID, rs)
	// authres.Format leaves a space before each ";" and at the end when a
	// result has no properties; drop it.
	return strings.TrimSpace(strings.ReplaceAll(s, " ;", ";"))
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}

// HeaderField returns the whole Authentication-Results field to prepend to
// the message: the name, AuthenticationResults folded after each ";"
// (RFC 5322 §2.2.3), and CRLF.
func (r *Results) HeaderField() string {
	return "Authentication-Results: " + strings.ReplaceAll(r.AuthenticationResults, "; ", ";\r\n\t") + "\r\n"
}

// IsForgedAR reports whether an Authentication-Results field value that
// arrived with the message carries authServID as its authserv-id, so that
// ingest removes it before adding ours (RFC 8601 §5). The comparison is
// case-insensitive, as for domain names. Values that do not parse are
// still checked on their first token, so a malformed field cannot slip
// past.
func IsForgedAR(fieldValue, authServID string) bool {
	want := strings.TrimSuffix(strings.TrimSpace(authServID), ".")
	if want == "" {
		return false
	}
	match := func(id string) bool { return strings.EqualFold(strings.TrimSuffix(id, "."), want) }
	if id, _, err := authres.Parse(fieldValue); err == nil && match(id) {
		return true
	}
	return match(firstToken(fieldValue))
}

// firstToken returns the authserv-id of a raw field value: the first word
// after any comments (RFC 5322 CFWS), up to whitespace, ";" or "(".
func firstToken(s string) string {
	s = skipCFWS(s)
	end := strings.IndexAny(s, " \t\r\n;(")
	if end < 0 {
		end = len(s)
	}
	return strings.Trim(s[:end], `"`)
}

// skipCFWS skips leading whitespace and (possibly nested) comments.
func skipCFWS(s string) string {
	for {
		s = strings.TrimLeft(s, " \t\r\n")
		if !strings.HasPrefix(s, "(") {
			return s
		}
		depth := 0
		i := 0
	scan:
		for ; i < len(s); i++ {
			switch s[i] {
			case '\\':
				i++
			case '(':
				depth++
			case ')':
				depth--
				if depth == 0 {
					break scan
				}
			}
		}
		if i >= len(s) {
			return ""
		}
		s = s[i+1:]
	}
}
