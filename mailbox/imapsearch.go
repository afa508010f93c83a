package mailbox

import (
	"bufio"
	"bytes"
	"io"
	"mime"
	"slices"
	"strings"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"
	gomessage "github.com/emersion/go-message"
	_ "github.com/emersion/go-message/charset" // charsets for BODY/TEXT search
	"github.com/emersion/go-message/mail"
	"github.com/emersion/go-message/textproto"
)

// Search answers SEARCH and UID SEARCH (RFC 3501 §6.4.4, ESEARCH RFC 4731,
// SEARCHRES RFC 5182). Flags, dates, sizes and UIDs come from the index;
// the body file is read only for header, body and text criteria.
func (s *imapSession) Search(kind imapserver.NumKind, criteria *imap.SearchCriteria, options *imap.SearchOptions) (*imap.SearchData, error) {
	_, msgs, err := s.store().Messages(s.ctx, s.user, s.sel.name)
	if err != nil {
		return nil, imapError(err)
	}
	cur := make(map[uint32]*Message, len(msgs))
	for i := range msgs {
		cur[msgs[i].UID] = &msgs[i]
	}
	s.staticCriteria(criteria)
	var (
		data   imap.SearchData
		seqSet imap.SeqSet
		uidSet imap.UIDSet
	)
	for i, uid := range s.sel.uids {
		m := cur[uid]
		if m == nil {
			continue
		}
		lm := &lazyMsg{s: s.store(), m: m, recent: s.sel.recent[uid]}
		if !matchCriteria(uint32(i+1), lm, criteria) {
			continue
		}
		uidSet.AddNum(imap.UID(uid))
		num := uid
		if kind == imapserver.NumKindSeq {
			num = uint32(i + 1)
			seqSet.AddNum(num)
		}
		if data.Min == 0 || num < data.Min {
			data.Min = num
		}
		data.Max = max(data.Max, num)
		data.Count++
	}
	if kind == imapserver.NumKindSeq {
		data.All = seqSet
	} else {
		data.All = uidSet
	}
	if options.ReturnSave {
		s.sel.searchRes = uidSet
	}
	return &data, nil
}

// staticCriteria resolves "*" and "$" in the criteria's sets.
func (s *imapSession) staticCriteria(c *imap.SearchCriteria) {
	n := uint32(len(s.sel.uids))
	var maxUID uint32
	if n > 0 {
		maxUID = s.sel.uids[n-1]
	}
	for i := range c.SeqNum {
		set := slices.Clone(c.SeqNum[i])
		for j := range set {
			staticRange(&set[j].Start, &set[j].Stop, n)
		}
		c.SeqNum[i] = set
	}
	for i := range c.UID {
		if imap.IsSearchRes(c.UID[i]) {
			c.UID[i] = slices.Clone(s.sel.searchRes)
			continue
		}
		set := slices.Clone(c.UID[i])
		for j := range set {
			staticRange((*uint32)(&set[j].Start), (*uint32)(&set[j].Stop), maxUID)
		}
		c.UID[i] = set
	}
	for i := range c.Not {
		s.staticCriteria(&c.Not[i])
	}
	for i := range c.Or {
		s.staticCriteria(&c.Or[i][0])
		s.staticCriteria(&c.Or[i][1])
	}
}

// lazyMsg reads a message's body file at most once, and only if a
// criterion needs it.
type lazyMsg struct {
	s      *Store
	m      *Message
	recent bool // \Recent in this session
	raw    []byte
	hdr    textproto.Header
	loaded bool
	bad    bool
}

func (l *lazyMsg) load() bool {
	if l.loaded {
		return !l.bad
	}
	l.loaded = true
	b, err := l.s.OpenMessage(*l.m)
	if err != nil {
		l.bad = true
		return false
	}
	defer b.Close()
	l.raw, err = io.ReadAll(io.LimitReader(b, l.m.Size))
	if err != nil {
		l.bad = true
		return false
	}
	l.hdr, err = textproto.ReadHeader(bufio.NewReader(bytes.NewReader(l.raw)))
	if err != nil {
		l.bad = true
	}
	return !l.bad
}

// hasFlag tells whether the message has f; \Recent is the session's
// (SEARCH RECENT, NEW and OLD, RFC 3501 §6.4.4).
func (l *lazyMsg) hasFlag(f imap.Flag) bool {
	if strings.EqualFold(string(f), `\Recent`) {
		return l.recent
	}
	return l.m.HasFlag(string(f))
}

// dateOnly keeps the date, as RFC 3501 §6.4.4 compares dates without time
// and zone.
func dateOnly(t time.Time) time.Time {
	return time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, time.UTC)
}

func inDates(t, since, before time.Time) bool {
	t = dateOnly(t)
	if !since.IsZero() && t.Before(dateOnly(since)) {
		return false
	}
	if !before.IsZero() && !t.Before(dateOnly(before)) {
		return false
	}
	return true
}

func matchCriteria(seq uint32, l *lazyMsg, c *imap.SearchCriteria) bool {
	m := l.m
	for _, set := range c.SeqNum {
		if !set.Contains(seq) {
			return false
		}
	}
	for _, set := range c.UID {
		if !set.Contains(imap.UID(m.UID)) {
			return false
		}
	}
	if !inDates(m.Date.UTC(), c.Since, c.Before) {
		return false
	}
	for _, f := range c.Flag {
		if !l.hasFlag(f) {
			return false
		}
	}
	for _, f := range c.NotFlag {
		if l.hasFlag(f) {
			return false
		}
	}
	if c.Larger != 0 && m.Size <= c.Larger {
		return false
	}
	if c.Smaller != 0 && m.Size >= c.Smaller {
		return false
	}
	if len(c.Header) > 0 || !c.SentSince.IsZero() || !c.SentBefore.IsZero() || len(c.Body) > 0 || len(c.Text) > 0 {
		if !l.load() {
			return false
		}
	}
	for _, hf := range c.Header {
		if !matchHeader(hf.Key, l.hdr.FieldsByKey(hf.Key), hf.Value) {
			return false
		}
	}
	if !c.SentSince.IsZero() || !c.SentBefore.IsZero() {
		t, err := (&mail.Header{Header: gomessage.Header{Header: l.hdr}}).Date()
		if err != nil || !inDates(t, c.SentSince, c.SentBefore) {
			return false
		}
	}
	for _, text := range c.Body {
		if !matchBody(l.raw, text, false) {
			return false
		}
	}
	for _, text := range c.Text {
		if !matchBody(l.raw, text, true) {
			return false
		}
	}
	for i := range c.Not {
		if matchCriteria(seq, l, &c.Not[i]) {
			return false
		}
	}
	for i := range c.Or {
		if !matchCriteria(seq, l, &c.Or[i][0]) && !matchCriteria(seq, l, &c.Or[i][1]) {
			return false
		}
	}
	return true
}

var wordDecoder = mime.WordDecoder{}

func headerText(v string) string {
	if d, err := wordDecoder.DecodeHeader(v); err == nil {
		return d
	}
	return v
}

// matchHeader: HEADER name "" matches any message with the field
// (RFC 3501 §6.4.4); otherwise a case-insensitive substring match. In
// address fields (FROM, TO, CC, BCC...) the addresses are also matched
// as parsed, "Name <local@domain>", so comments and folding inside an
// address do not hide it (as dovecot does).
func matchHeader(key string, fields textproto.HeaderFields, want string) bool {
	if want == "" {
		return fields.Len() > 0
	}
	want = strings.ToLower(want)
	addrField := false
	switch strings.ToLower(key) {
	case "from", "to", "cc", "bcc", "sender", "reply-to":
		addrField = true
	}
	for fields.Next() {
		if strings.Contains(strings.ToLower(headerText(fields.Value())), want) {
			return true
		}
		if !addrField {
			continue
		}
		for _, a := range parseAddresses(fields.Value()) {
			if a.Host == "" {
				continue
			}
			s := a.Mailbox + "@" + a.Host
			if a.Name != "" {
				s = a.Name + " <" + s + ">"
			}
			if strings.Contains(strings.ToLower(s), want) {
				return true
			}
		}
	}
	return false
}

func matchBody(raw []byte, want string, withHeader bool) bool {
	e, err := gomessage.Read(bytes.NewReader(raw))
	if e == nil {
		return false
	}
	_ = err // unknown charset or encoding: search what we can
	return matchEntity(e, strings.ToLower(want), withHeader)
}

func matchEntity(e *gomessage.Entity, want string, withHeader bool) bool {
	if withHeader {
		f := e.Header.Fields()
		for f.Next() {
			if strings.Contains(strings.ToLower(headerText(f.Value())), want) {
				return true
			}
		}
	}
	if mr := e.MultipartReader(); mr != nil {
		for {
			p, err := mr.NextPart()
			if err != nil {
				return false
			}
			if matchEntity(p, want, withHeader) {
				return true
			}
		}
	}
	t, _, _ := e.Header.ContentType()
	if t != "" && !strings.HasPrefix(t, "text/") && !strings.HasPrefix(t, "message/") {
		return false
	}
	b, err := io.ReadAll(e.Body)
	if err != nil && len(b) == 0 {
		return false
	}
	return bytes.Contains(bytes.ToLower(b), []byte(want))
}
