package auth

import (
	"strings"

	"github.com/emersion/go-msgauth/authres"

	"github.com/mailhook/mailhook/inbound"
)

// formatAR formats the Authentication-Results value for res (RFC 8601
// §2.2): our authserv-id, then spf (RFC 7208 §9.2: smtp.mailfrom, or
// smtp.helo when the HELO identity was checked), one dkim result per
// signature (RFC 6376 §7.2, header.d and header.s) or dkim=none, and dmarc
// (RFC 7489 §11.2, header.from).
func (v *Verifier) formatAR(res *inbound.Auth) string {
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

func orNone(v inbound.Verdict) inbound.Verdict {
	if v == "" {
		return inbound.None
	}
	return v
}

// IsForgedAR reports whether an Authentication-Results field value that
// arrived with the message claims to come from us, so that ingest removes
// it before adding ours (RFC 8601 §5). It is forged when:
//
//   - its authserv-id, as go-msgauth reads it, is authServID;
//   - its first word, once control bytes are dropped, is authServID (so a
//     NUL or other control byte in or after the id changes nothing);
//   - the part before its first ";" (where the authserv-id goes) names
//     authServID in any form, comments and broken syntax included;
//   - it cannot be read as Authentication-Results at all and names
//     authServID anywhere: no reader downstream can be trusted to read
//     it as we would.
//
// Names compare without regard to case or a trailing dot, as domain names
// do.
func IsForgedAR(fieldValue, authServID string) bool {
	want := normID(authServID)
	if want == "" {
		return false
	}
	clean := dropControls(fieldValue)
	id, _, err := authres.Parse(fieldValue)
	if err == nil && normID(dropControls(id)) == want {
		return true
	}
	if normID(firstToken(clean)) == want {
		return true
	}
	head, _, _ := strings.Cut(clean, ";")
	if namesHost(head, want) {
		return true
	}
	if err != nil || clean != fieldValue {
		return namesHost(clean, want)
	}
	return false
}

// namesHost reports whether s holds the host name want as a whole name
// (not as a part of a longer one), in any case, with or without a
// trailing dot.
func namesHost(s, want string) bool {
	s = strings.ToLower(s)
	nameChar := func(c byte) bool {
		return c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '.' || c == '-' || c == '_' || c >= 0x80
	}
	for i := 0; ; {
		k := strings.Index(s[i:], want)
		if k < 0 {
			return false
		}
		start, end := i+k, i+k+len(want)
		if end < len(s) && s[end] == '.' {
			end++
		}
		if (start == 0 || !nameChar(s[start-1])) && (end == len(s) || !nameChar(s[end])) {
			return true
		}
		i = start + 1
	}
}

func normID(s string) string {
	return strings.ToLower(strings.TrimSuffix(strings.TrimSpace(s), "."))
}

// dropControls removes the ASCII control bytes other than tab (and DEL).
func dropControls(s string) string {
	return strings.Map(func(r rune) rune {
		if (r < 0x20 && r != '\t') || r == 0x7f {
			return -1
		}
		return r
	}, s)
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
