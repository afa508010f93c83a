package header

import (
	"mime"
	"net/mail"
	"strings"
	"unicode/utf8"

	"github.com/emersion/go-message/charset"
	"golang.org/x/net/idna"
)

// Mailbox is one author address as read.
type Mailbox struct {
	// Name is the display name, RFC 2047 words decoded.
	Name string
	// Address is the addr-spec.
	Address string
	// Domain is the address's domain normalized as DNS sees it: lower
	// case, no trailing dot, an IDN as its A-label. Empty when the
	// address has none.
	Domain string
}

// Author is the one reading of a message's author (RFC 5322 §3.6.2) that
// DMARC (RFC 7489 §6.6.1) and the webhook's message.from share.
type Author struct {
	// Fields is the number of From fields.
	Fields int
	// Exact is true when the message has exactly one From field, which
	// reads strictly (RFC 5322 §3.4, net/mail) as exactly one mailbox
	// whose address has a domain: the case RFC 7489 evaluates without
	// a choice.
	Exact bool
	// Mailboxes are every mailbox any reading recovers from the From
	// fields, the strict reading first, then the lenient ones (a split
	// at commas, RFC 2047 words decoded, and any "local@domain" found in
	// the raw or decoded text), without repeats. When Exact, it holds
	// the one mailbox.
	Mailboxes []Mailbox
	// Domains are the distinct domains of Mailboxes, in order.
	Domains []string
}

// Shown is the mailbox a payload shows as the author: the first mailbox
// that has a domain, so that an address shown is always one DMARC judged.
// When none has one, it is only a Name: the text of the first mailbox
// read. ok is false when the From fields give nothing at all.
func (a *Author) Shown() (m Mailbox, ok bool) {
	for _, mb := range a.Mailboxes {
		if mb.Domain != "" {
			return mb, true
		}
	}
	if len(a.Mailboxes) > 0 {
		first := a.Mailboxes[0]
		name := first.Name
		if name == "" {
			name = first.Address
		}
		return Mailbox{Name: name}, true
	}
	return Mailbox{}, false
}

// wordDecoder decodes RFC 2047 words in any charset go-message knows.
var wordDecoder = &mime.WordDecoder{CharsetReader: charset.Reader}

var strictParser = mail.AddressParser{WordDecoder: wordDecoder}

// ReadAuthor reads the author of h: every From field, strictly and
// leniently. It never fails; an unreadable From gives whatever the
// lenient readings recover, and Exact false.
func ReadAuthor(h *Header) Author {
	var a Author
	seen := map[string]bool{}
	add := func(name, addr string) {
		addr = strings.TrimSpace(addr)
		if addr == "" && name == "" {
			return
		}
		key := strings.ToLower(addr)
		if addr != "" && seen[key] {
			return
		}
		seen[key] = true
		mb := Mailbox{Name: name, Address: addr, Domain: domainOf(addr)}
		a.Mailboxes = append(a.Mailboxes, mb)
		if mb.Domain != "" && !containsStr(a.Domains, mb.Domain) {
			a.Domains = append(a.Domains, mb.Domain)
		}
	}
	var values []string
	strictOK := true
	strictCount := 0
	for _, f := range h.Fields {
		if !f.Is("From") {
			continue
		}
		a.Fields++
		values = append(values, f.Value)
		list, err := strictParser.ParseList(f.Value)
		if err != nil {
			strictOK = false
			continue
		}
		for _, m := range list {
			strictCount++
			add(m.Name, m.Address)
		}
	}
	// A quoted local part holding "@" reads strictly as one address, but
	// shows another domain to a careless eye: not exact.
	a.Exact = strictOK && a.Fields == 1 && strictCount == 1 && len(a.Mailboxes) == 1 &&
		a.Mailboxes[0].Domain != "" && strings.Count(a.Mailboxes[0].Address, "@") == 1
	if a.Exact {
		return a
	}
	// Lenient readings: what a forgiving parser downstream (or ours
	// before this package) could make of the same text.
	for _, v := range values {
		texts := []string{v}
		if d, err := wordDecoder.DecodeHeader(v); err == nil && d != v {
			texts = append(texts, d)
		}
		for _, t := range texts {
			for _, piece := range SplitAddressList(t) {
				piece = strings.TrimSpace(piece)
				if i := strings.IndexByte(piece, ':'); i >= 0 && !strings.ContainsAny(piece[:i], `<@"`) {
					piece = strings.TrimSpace(piece[i+1:]) // a group's display name
				}
				piece = strings.TrimSpace(strings.TrimRight(piece, "; \t"))
				if piece == "" {
					continue
				}
				found := false
				if m, err := strictParser.Parse(piece); err == nil {
					add(m.Name, m.Address)
					found = true
				}
				for _, addr := range addrLike(piece) {
					add("", addr)
					found = true
				}
				if !found {
					add(piece, "")
				}
			}
		}
	}
	return a
}

// addrLike returns every "local@domain" in s, split at the characters
// that cannot be part of an unquoted address.
func addrLike(s string) []string {
	const stop = "<>()[],;:\"\\'@"
	isStop := func(c byte) bool { return c <= ' ' || c == 0x7f || strings.IndexByte(stop, c) >= 0 }
	var out []string
	for i := 0; i < len(s); i++ {
		if s[i] != '@' {
			continue
		}
		start := i
		for start > 0 && !isStop(s[start-1]) {
			start--
		}
		end := i + 1
		for end < len(s) && !isStop(s[end]) {
			end++
		}
		if end > i+1 {
			out = append(out, s[start:end])
		}
	}
	return out
}

// domainOf returns the normalized domain of addr, or "".
func domainOf(addr string) string {
	i := strings.LastIndexByte(addr, '@')
	if i < 0 {
		return ""
	}
	return NormDomain(addr[i+1:])
}

// NormDomain lower-cases d, drops a trailing dot and converts an IDN to
// its A-label form, so that names compare and look up as DNS sees them.
func NormDomain(d string) string {
	d = strings.TrimSuffix(strings.ToLower(strings.TrimSpace(d)), ".")
	if a, err := idna.ToASCII(d); err == nil {
		d = a
	}
	if !utf8.ValidString(d) {
		d = strings.ToValidUTF8(d, "\uFFFD")
	}
	return d
}

func containsStr(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// SplitAddressList splits an address-list value at the commas outside
// quotes, comments, angle brackets and RFC 2047 words.
func SplitAddressList(s string) []string {
	var out []string
	quoted, esc, angle, paren, start := false, false, 0, 0, 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case esc:
			esc = false
		case c == '\\' && (quoted || paren > 0):
			esc = true
		case c == '"' && paren == 0:
			quoted = !quoted
		case quoted:
		case c == '(':
			paren++
		case c == ')' && paren > 0:
			paren--
		case paren > 0:
		case c == '<':
			angle++
		case c == '>' && angle > 0:
			angle--
		case c == '=' && i+1 < len(s) && s[i+1] == '?':
			// An RFC 2047 encoded word is atomic even when a sender
			// left a comma in it.
			if end := encodedWordEnd(s[i:]); end > 0 {
				i += end - 1
			}
		case c == ',' && angle == 0:
			out = append(out, s[start:i])
			start = i + 1
		}
	}
	return append(out, s[start:])
}

// encodedWordEnd returns the length of the "=?charset?X?text?=" word at the
// start of s, or 0.
func encodedWordEnd(s string) int {
	q := 0
	for i := 2; i < len(s) && i < 200; i++ {
		switch s[i] {
		case '?':
			q++
			if q >= 3 && i+1 < len(s) && s[i+1] == '=' {
				return i + 2
			}
		case ' ', '\t', '\r', '\n':
			return 0
		}
	}
	return 0
}
