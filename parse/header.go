package parse

import (
	"bytes"
	"regexp"
	"strings"
	"time"

	netmail "net/mail"

	"github.com/emersion/go-message"
	"github.com/emersion/go-message/mail"

	"github.com/mailhook/mailhook/header"
)

// topHeader fills the message's header-derived fields from the top-level
// header h.
func (p *parser) topHeader(h message.Header) {
	m := p.msg
	if _, params, err := h.ContentType(); err == nil {
		p.topCharset = strings.ToLower(params["charset"])
	}

	// All fields in order, RFC 2047 words decoded (RFC 2047 §6), 8-bit
	// values repaired to UTF-8. The name keeps its original spelling.
	haveSubject := false
	fs := h.Fields()
	for fs.Next() {
		name := fs.Key()
		if raw, err := fs.Raw(); err == nil {
			if i := bytes.IndexByte(raw, ':'); i > 0 {
				name = string(bytes.TrimSpace(raw[:i]))
			}
		}
		v, ok := decodeWords(fs.Value())
		if !ok {
			v, _ = fs.Text() // on an unknown charset the raw value is returned
		}
		v = p.fixHeader(v)
		m.Headers = append(m.Headers, [2]string{fixUTF8(name, ""), v})
		if !haveSubject && fs.Key() == "Subject" {
			// The first Subject field, as h.Get("Subject") would pick.
			m.Subject, haveSubject = v, true
		}
	}

	mh := mail.Header{Header: h}
	m.MessageID = msgID(mh, "Message-Id")
	if ids := msgIDs(mh, "In-Reply-To"); len(ids) > 0 {
		m.InReplyTo = ids[0]
	}
	if ids := msgIDs(mh, "References"); ids != nil {
		m.References = ids
	}
	m.Date = parseDate(h.Get("Date")) // net/mail first, as go-message's Date
	if h.Has("Date") && m.Date == "" {
		p.warnf("unparseable Date %q", truncate(h.Get("Date"), 80))
	}
	// The author is the one DMARC judged (header.ReadAuthor), never a
	// reading of our own.
	if mb, ok := p.author.Shown(); ok {
		a := Address{Name: decodeName(p.fixHeader(mb.Name)), Address: fixUTF8(mb.Address, "")}
		// The display name as this package decodes it (words that split
		// a character joined, 8-bit repaired), for the same address.
		for _, o := range p.addresses(h, "From") {
			if o.Name != "" && strings.EqualFold(o.Address, a.Address) {
				a.Name = o.Name
				break
			}
		}
		// Text without an address stays in Name: Address only ever
		// holds an address whose domain DMARC judged.
		m.From = &a
	}
	m.To = p.addresses(h, "To")
	m.Cc = p.addresses(h, "Cc")
	m.ReplyTo = p.addresses(h, "Reply-To")
}

// fixHeader repairs a header value that is not valid UTF-8 (raw 8-bit
// header bytes, which RFC 6532 allows only as UTF-8).
func (p *parser) fixHeader(v string) string {
	return fixC1(fixUTF8(v, p.topCharset))
}

// msgID returns the msg-id (RFC 5322 §3.6.4) in the named field without
// angle brackets, also when it is not well formed.
func msgID(h mail.Header, key string) string {
	if id, err := h.MessageID(); key == "Message-Id" && err == nil && id != "" {
		return fixUTF8(id, "")
	}
	if ids := msgIDs(h, key); len(ids) > 0 {
		return ids[0]
	}
	return ""
}

var looseIDRE = regexp.MustCompile(`<[^<>]*>|[^\s<>,;]+`)

// msgIDs returns the msg-ids of an In-Reply-To or References field, using
// go-message's parser and falling back to a loose split for broken values.
func msgIDs(h mail.Header, key string) []string {
	if h.Get(key) == "" {
		return nil
	}
	if ids, err := h.MsgIDList(key); err == nil {
		for i := range ids {
			ids[i] = fixUTF8(ids[i], "")
		}
		return ids
	}
	// Broken: prefer what is in angle brackets, then what looks like an
	// address ("In-Reply-To: Your message of … <id@host>").
	v := stripComments(h.Get(key))
	var bracketed, atSign []string
	for _, tok := range looseIDRE.FindAllString(v, 100) {
		id := cleanID(tok)
		switch {
		case id == "":
		case strings.HasPrefix(tok, "<"):
			bracketed = append(bracketed, id)
		case strings.Contains(id, "@"):
			atSign = append(atSign, id)
		}
	}
	if len(bracketed) > 0 {
		return bracketed
	}
	if len(atSign) > 0 {
		return atSign
	}
	if v = strings.TrimSpace(v); v != "" {
		return []string{fixUTF8(truncate(v, 250), "")}
	}
	return nil
}

func stripComments(s string) string {
	var b strings.Builder
	depth := 0
	for _, r := range s {
		switch {
		case r == '(':
			depth++
		case r == ')' && depth > 0:
			depth--
		case depth == 0:
			b.WriteRune(r)
		}
	}
	return b.String()
}

// addresses parses an address-list field (RFC 5322 §3.4) with go-message,
// which decodes RFC 2047 display names and flattens groups (§3.4 group
// syntax). A list that does not parse is split at top-level commas and each
// member parsed alone; a member that still does not parse is kept as text in
// Address.Address.
func (p *parser) addresses(h message.Header, key string) []Address {
	out := []Address{}
	for _, v := range h.Values(key) {
		v = p.fixHeader(v)
		v, _ = mergeWords(v)
		if strings.TrimSpace(v) == "" {
			continue
		}
		if list, err := mail.ParseAddressList(v); err == nil {
			for _, a := range list {
				out = append(out, Address{Name: decodeName(a.Name), Address: a.Address})
			}
			continue
		}
		for _, piece := range header.SplitAddressList(v) {
			piece = strings.TrimSpace(piece)
			// A group's display name and terminator around a member.
			if i := strings.IndexByte(piece, ':'); i >= 0 && !strings.ContainsAny(piece[:i], `<@"`) {
				piece = strings.TrimSpace(piece[i+1:])
			}
			piece = strings.TrimSpace(strings.TrimSuffix(piece, ";"))
			if piece == "" {
				continue
			}
			if a, err := mail.ParseAddress(piece); err == nil {
				out = append(out, Address{Name: decodeName(a.Name), Address: a.Address})
				continue
			}
			if d, err := wordDecoder.DecodeHeader(piece); err == nil {
				piece = d
			}
			out = append(out, Address{Address: piece})
		}
	}
	return out
}

// decodeName decodes RFC 2047 words that clients put inside a quoted
// display name, which RFC 2047 §5 forbids and net/mail leaves alone.
func decodeName(s string) string {
	if strings.Contains(s, "=?") {
		if d, err := wordDecoder.DecodeHeader(s); err == nil {
			s = d
		}
	}
	return fixC1(s)
}

// Layouts tried after net/mail's RFC 5322 §3.3 parser (used by go-message)
// fails: the broken dates real mail carries.
var dateLayouts = []string{
	"Mon, 2 Jan 2006 15:04:05 -0700",
	"Mon, 2 Jan 2006 15:04:05 MST",
	"Mon, 2 Jan 2006 15:04 -0700",
	"Mon, 2 Jan 2006 15:04:05",
	"2 Jan 2006 15:04:05 -0700",
	"2 Jan 2006 15:04:05 MST",
	"2 Jan 2006 15:04:05",
	"Mon, 2 Jan 06 15:04:05 -0700",
	"Mon, 2 Jan 06 15:04:05 MST",
	"2 Jan 06 15:04:05 -0700",
	"Mon, Jan 2 2006 15:04:05 -0700",
	"Mon, Jan 2 2006 15:04:05 MST",
	"Mon Jan 2 15:04:05 2006",
	"Mon Jan 2 15:04:05 MST 2006",
	"Mon Jan 2 15:04:05 -0700 2006",
	"Mon, 2 January 2006 15:04:05 -0700",
	"Monday, 2 January 2006 15:04:05 -0700",
	"Monday, January 2, 2006 15:04:05 -0700",
	time.RFC3339,
	"2006-01-02T15:04:05",
	"2006-01-02 15:04:05 -0700",
	"2006-01-02 15:04:05 MST",
	"2006-01-02 15:04:05",
	"02.01.2006 15:04:05 -0700",
	"02.01.2006 15:04:05",
	"2006/01/02 15:04:05",
}

var (
	dateSpaceRE  = regexp.MustCompile(`\s+`)
	dateZoneRE   = regexp.MustCompile(`(?i)\s(?:UTC|GMT|UT)?([+-])(\d{1,2}):?(\d{2})?$`)
	dateDotTime  = regexp.MustCompile(`\b(\d{1,2})\.(\d{2})\.(\d{2})\b`)
	dateTrailing = regexp.MustCompile(`\s+[A-Za-z]{2,5}$`)
)

// obsZones are the zone names of RFC 5322 §4.3 obs-zone. time.Parse reads
// an unknown abbreviation as UTC, so they are applied here.
var obsZones = map[string]int{
	"EST": -5, "EDT": -4, "CST": -6, "CDT": -5, "MST": -7, "MDT": -6, "PST": -8, "PDT": -7,
}

func formatDate(t time.Time) string {
	if name, off := t.Zone(); off == 0 {
		if h, ok := obsZones[name]; ok {
			t = time.Date(t.Year(), t.Month(), t.Day(), t.Hour(), t.Minute(), t.Second(), 0, time.FixedZone(name, h*3600))
		}
	}
	return t.Format(time.RFC3339)
}

// commonDateLayout is the form nearly every client writes (RFC 5322
// §3.3 with its day of the week and seconds).
const commonDateLayout = "Mon, 2 Jan 2006 15:04:05 -0700"

// parseCommonDate is net/mail.ParseDate, tried first in the form nearly
// every client writes, with or without a comment after the zone
// ("+0000 (UTC)", as Postfix and many MTAs write it). ParseDate cuts the
// date after the first "+" or "-" and four more bytes, takes what
// follows as comments, then tries its 24 layouts without a day of the
// week before the first with one, each failure an error allocated; a
// date this layout reads is one those fail on (it starts with a letter),
// and the first layout with a day of the week is this one, so the result
// is ParseDate's (TestParseCommonDate, FuzzParseCommonDate).
func parseCommonDate(v string) (time.Time, error) {
	date := v
	if i := strings.IndexAny(v, "+-"); i >= 0 && len(v) >= i+5 && plainComment(v[i+5:]) {
		date = v[:i+5]
	}
	if t, err := time.Parse(commonDateLayout, date); err == nil {
		return t, nil
	}
	return netmail.ParseDate(v)
}

// plainComment reports whether s is empty or one comment without nested
// parentheses, quoted pairs or line breaks, with blanks around it: what
// ParseDate skips after the zone, in the form dates carry it.
func plainComment(s string) bool {
	s = strings.Trim(s, " \t")
	if s == "" {
		return true
	}
	if len(s) < 2 || s[0] != '(' || s[len(s)-1] != ')' {
		return false
	}
	return !strings.ContainsAny(s[1:len(s)-1], "()\\\r\n")
}

// parseDate returns the Date field as RFC 3339, or "" when it cannot be
// understood. It accepts what RFC 5322 §3.3 allows (including the obsolete
// syntax of §4.3, via net/mail) and then common breakage: missing or named
// zones, "GMT+0200", dotted times, ISO dates, ctime order, stray commas.
func parseDate(v string) string {
	v = strings.TrimSpace(v)
	if v == "" {
		return ""
	}
	if t, err := parseCommonDate(v); err == nil {
		return formatDate(t)
	}
	s := strings.TrimSpace(stripComments(v))
	s = dateSpaceRE.ReplaceAllString(s, " ")
	s = strings.ReplaceAll(s, " ,", ",")
	s = strings.TrimSuffix(s, ",")
	s = dateDotTime.ReplaceAllString(s, "$1:$2:$3")
	// "GMT+2", "+02:00", "UTC-0500" → "-0700" form.
	s = dateZoneRE.ReplaceAllStringFunc(s, func(z string) string {
		m := dateZoneRE.FindStringSubmatch(z)
		hh, mm := m[2], m[3]
		if len(hh) == 1 {
			hh = "0" + hh
		}
		if mm == "" {
			mm = "00"
		}
		return " " + m[1] + hh + mm
	})
	if t, err := netmail.ParseDate(s); err == nil {
		return formatDate(t)
	}
	cands := []string{s}
	// A day-of-week with a trailing dot or the wrong case ("Thu.,").
	if i := strings.IndexByte(s, ','); i > 0 && i <= 10 {
		cands = append(cands, strings.TrimSpace(s[i+1:]))
	}
	if loc := dateTrailing.FindStringIndex(s); loc != nil {
		// An unknown zone name: read the time as UTC.
		cands = append(cands, s[:loc[0]])
	}
	for _, c := range cands {
		for _, layout := range dateLayouts {
			if t, err := time.Parse(layout, c); err == nil {
				if t.Year() < 100 {
					t = t.AddDate(1900, 0, 0)
				}
				return formatDate(t)
			}
		}
	}
	return ""
}
