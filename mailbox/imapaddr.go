package mailbox

import (
	"strings"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"
	"github.com/emersion/go-message/textproto"
)

// envelope is a message's ENVELOPE (RFC 3501 §7.4.2). Date, subject and
// message ids come from imapserver.ExtractEnvelope; the address lists from
// parseAddresses, because imapserver's parser flattens groups (RFC 5322
// §3.4, which ENVELOPE keeps as start and end markers), drops addresses
// with comments inside (RFC 5322 §3.4.1 allows CFWS around every token of
// an addr-spec) and has no place for a source route (imap.Address has no
// addr-adl field), which writeEnvelope writes.
type envelope struct {
	imap.Envelope // its address fields are unused
	// addrs are From, Sender, Reply-To, To, Cc and Bcc, in ENVELOPE's order.
	addrs [6][]envAddress
}

// envAddress is an ENVELOPE address: imap.Address and its source route.
type envAddress struct {
	imap.Address
	// Route is the obsolete source route of a route-addr ("@a,@b" of
	// "<@a,@b:user@host>", RFC 5322 §4.4 obs-route), ENVELOPE's addr-adl.
	Route string
}

func readEnvelope(h textproto.Header) *envelope {
	e := &envelope{Envelope: *imapserver.ExtractEnvelope(h)}
	for i, k := range []string{"From", "Sender", "Reply-To", "To", "Cc", "Bcc"} {
		e.addrs[i] = parseAddresses(h.Get(k))
	}
	// RFC 3501 §7.4.2: an absent or empty Sender or Reply-To is the From.
	for _, i := range []int{1, 2} {
		if len(e.addrs[i]) == 0 {
			e.addrs[i] = e.addrs[0]
		}
	}
	return e
}

// withoutRoutes returns the envelope for imapserver.WriteEnvelope.
func (e *envelope) withoutRoutes() *imap.Envelope {
	env := e.Envelope
	for i, p := range []*[]imap.Address{&env.From, &env.Sender, &env.ReplyTo, &env.To, &env.Cc, &env.Bcc} {
		*p = nil
		for _, a := range e.addrs[i] {
			*p = append(*p, a.Address)
		}
	}
	return &env
}

// addrToken is a lexical token of an address header (RFC 5322 §3.2):
// a word (atom or quoted string), a special character, or a comment.
type addrToken struct {
	text    string
	special byte // one of <>@:;,. or 0 for a word
	comment bool
	quoted  bool
}

// lexAddresses splits an address header into tokens. Comments nest and
// quoted pairs are unescaped; folding whitespace separates words.
func lexAddresses(v string) []addrToken {
	var out []addrToken
	for i := 0; i < len(v); {
		c := v[i]
		switch {
		case c == ' ' || c == '\t' || c == '\r' || c == '\n':
			i++
		case c == '(':
			depth, j := 0, i
			var b strings.Builder
			for ; j < len(v); j++ {
				switch v[j] {
				case '\\':
					if j+1 < len(v) {
						j++
						b.WriteByte(v[j])
					}
					continue
				case '(':
					depth++
					if depth == 1 {
						continue
					}
				case ')':
					depth--
					if depth == 0 {
						j++
						goto doneComment
					}
				}
				b.WriteByte(v[j])
			}
		doneComment:
			out = append(out, addrToken{text: strings.TrimSpace(b.String()), comment: true})
			i = j
		case c == '"':
			var text string
			text, i = unquote(v, i)
			out = append(out, addrToken{text: text, quoted: true})
		case strings.IndexByte("<>@:;,.", c) >= 0:
			out = append(out, addrToken{text: string(c), special: c})
			i++
		case c == '[': // domain literal, kept whole
			j := strings.IndexByte(v[i:], ']')
			if j < 0 {
				j = len(v) - i - 1
			}
			out = append(out, addrToken{text: v[i : i+j+1]})
			i += j + 1
		default:
			j := i
			for j < len(v) && strings.IndexByte(" \t\r\n()\"<>@:;,.[", v[j]) < 0 {
				j++
			}
			out = append(out, addrToken{text: v[i:j]})
			i = j
		}
	}
	return out
}

// unquote reads the quoted string that starts at s[i] (a '"'), undoing
// quoted pairs (RFC 5322 §3.2.4, RFC 3501 §9 quoted), and returns it and
// the index after its closing quote.
func unquote(s string, i int) (string, int) {
	var b strings.Builder
	j := i + 1
	for ; j < len(s) && s[j] != '"'; j++ {
		if s[j] == '\\' && j+1 < len(s) {
			j++
		}
		b.WriteByte(s[j])
	}
	return b.String(), j + 1
}

// parseAddresses parses an address-list (RFC 5322 §3.4) into ENVELOPE
// addresses: groups become a start marker (Mailbox is the group name),
// their members and an end marker (RFC 3501 §7.4.2); a comment stands in
// for a missing display name ("user@host (Real Name)", as dovecot does);
// a source route is kept. Entries without a domain are dropped.
func parseAddresses(v string) []envAddress {
	toks := lexAddresses(v)
	var out []envAddress
	inGroup := false
	i := 0
	// until collects tokens up to one of stops (not consumed), joining
	// words with sep, and returns the last comment seen.
	until := func(stops string, sep string) (string, string) {
		var b strings.Builder
		var comment string
		prevWord := false
		for ; i < len(toks); i++ {
			t := toks[i]
			if t.comment {
				comment = t.text
				continue
			}
			if t.special != 0 && strings.IndexByte(stops, t.special) >= 0 {
				break
			}
			if t.special == 0 && b.Len() > 0 && (prevWord || sep != "") {
				b.WriteString(sep)
			}
			b.WriteString(t.text)
			prevWord = t.special == 0
		}
		return b.String(), comment
	}
	for i < len(toks) {
		start := i
		phrase, comment := until("<:@,;", " ")
		if i >= len(toks) {
			break
		}
		switch toks[i].special {
		case ':':
			if inGroup {
				i++ // a colon inside a group: skip it
				continue
			}
			inGroup = true
			out = append(out, envAddress{Address: imap.Address{Mailbox: headerText(phrase)}})
			i++
			continue
		case '<':
			i++
			route := ""
			if i < len(toks) && toks[i].special == '@' {
				// obs-route (RFC 5322 §4.4): "@a,@b:" before the addr-spec.
				route, _ = until(":>", "")
				if i < len(toks) && toks[i].special == ':' {
					i++
				}
			}
			local, _ := until("@>", "")
			host := ""
			if i < len(toks) && toks[i].special == '@' {
				i++
				host, _ = until(">", "")
			}
			if i < len(toks) {
				i++ // '>'
			}
			if _, c := until(",;", ""); comment == "" {
				comment = c
			}
			name := phrase
			if name == "" {
				name = comment
			}
			if local != "" && host != "" {
				out = append(out, envAddress{Address: imap.Address{Name: headerText(name), Mailbox: local, Host: host}, Route: route})
			}
		case '@':
			i = start
			local, c1 := until("@", "")
			i++
			host, c2 := until(",;", "")
			name := c2
			if name == "" {
				name = c1
			}
			if local != "" && host != "" {
				out = append(out, envAddress{Address: imap.Address{Name: headerText(name), Mailbox: local, Host: host}})
			}
		}
		if i < len(toks) && toks[i].special == ';' {
			if inGroup {
				out = append(out, envAddress{})
				inGroup = false
			}
			i++
		}
		if i < len(toks) && toks[i].special == ',' {
			i++
		}
		if i == start {
			i++ // never stall on an unexpected token
		}
	}
	if inGroup {
		out = append(out, envAddress{}) // unterminated group
	}
	return out
}
