package deliver

// The stored form of a message: its text and HTML bodies as bytes, ahead
// of the JSON of the rest, so that the bodies (most of a message's bytes)
// are copied rather than escaped into JSON and unescaped out of it; and its
// stripped_text, when that is the start of its text (a message that quotes
// nothing, or whose quote follows the reply), kept as its length, so the
// text is stored once. The queues store inbound.Mail so (EncodeMail); the
// activity history its parsed message (EncodeMessage).
//
// A stored value is one of:
//
//	bodiesMark, uvarint(stripped length + 1, or 0 when the JSON holds it),
//	uvarint(len(text)), text, uvarint(len(html)), html, JSON of the rest
//	strippedMark, uvarint(stripped length), JSON with the bodies (earlier)
//	the JSON alone (earlier still)

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"strings"

	"github.com/mailhook/mailhook/inbound"
	"github.com/mailhook/mailhook/parse"
)

const (
	strippedMark = 0x01
	bodiesMark   = 0x02
)

var errBadStored = errors.New("bad stored message: truncated lengths or bodies")

// StrippedPrefix returns the length of m's stripped text when it is a
// non-empty start of m's text, else -1.
func StrippedPrefix(m *parse.Message) int {
	if m == nil || m.StrippedText == "" || !strings.HasPrefix(m.Text, m.StrippedText) {
		return -1
	}
	return len(m.StrippedText)
}

// EncodeMail is the form the queues store mail in. mail is not changed
// (it is read-only once accepted): its message is encoded from a shallow
// copy.
func EncodeMail(mail *inbound.Mail) ([]byte, error) {
	if mail.Message == nil {
		return json.Marshal(mail)
	}
	c, mc := *mail, *mail.Message
	c.Message = &mc
	return encodeBodies(&mc, &c)
}

// DecodeMail reads what EncodeMail wrote, or an earlier version's form.
func DecodeMail(b []byte) (*inbound.Mail, error) {
	m := new(inbound.Mail)
	if err := decode(b, m, func() *parse.Message { return m.Message }); err != nil {
		return nil, err
	}
	return m, nil
}

// EncodeMessage is the form the activity history stores a parsed message
// in; m is not changed.
func EncodeMessage(m *parse.Message) ([]byte, error) {
	if m == nil {
		return json.Marshal(m)
	}
	mc := *m
	return encodeBodies(&mc, &mc)
}

// DecodeMessage reads what EncodeMessage wrote, or an earlier version's
// form (nil for a stored null).
func DecodeMessage(b []byte) (*parse.Message, error) {
	var m *parse.Message
	if err := decode(b, &m, func() *parse.Message { return m }); err != nil {
		return nil, err
	}
	return m, nil
}

// encodeBodies empties m's bodies (m is the caller's copy, inside v) and
// writes them ahead of v's JSON, which is encoded into the same buffer.
func encodeBodies(m *parse.Message, v any) ([]byte, error) {
	n := StrippedPrefix(m)
	text, html := m.Text, m.HTML
	m.Text, m.HTML = "", ""
	if n >= 0 {
		m.StrippedText = ""
	}
	b := make([]byte, 0, 1+3*binary.MaxVarintLen64+len(text)+len(html)+jsonRoom(m))
	b = append(b, bodiesMark)
	b = binary.AppendUvarint(b, uint64(n+1))
	b = binary.AppendUvarint(b, uint64(len(text)))
	b = append(b, text...)
	b = binary.AppendUvarint(b, uint64(len(html)))
	b = append(b, html...)
	e := bytes.NewBuffer(b)
	enc := json.NewEncoder(e)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(e.Bytes(), []byte("\n")), nil
}

// jsonRoom is about how long the JSON of a message without its bodies
// (and of the mail around it) is: the buffer is made that much larger
// than the bodies, so that encoding seldom grows it.
func jsonRoom(m *parse.Message) int {
	n := 1024 + len(m.StrippedText) + len(m.StrippedHTML) + len(m.StrippedSignature) + len(m.Subject)
	for _, h := range m.Headers {
		n += len(h[0]) + len(h[1]) + 8
	}
	return n + n/8
}

// decode unmarshals a stored value into v and gives the message that
// msg returns then its bodies and stripped text back.
func decode(b []byte, v any, msg func() *parse.Message) error {
	if len(b) == 0 || (b[0] != bodiesMark && b[0] != strippedMark) {
		return json.Unmarshal(b, v)
	}
	mark := b[0]
	b = b[1:]
	next := func() (int, bool) {
		u, w := binary.Uvarint(b)
		if w <= 0 {
			return 0, false
		}
		b = b[w:]
		return int(min(u, 1<<40)), true
	}
	bytesOf := func() (string, bool) {
		l, ok := next()
		if !ok || l > len(b) {
			return "", false
		}
		s := string(b[:l])
		b = b[l:]
		return s, true
	}
	var text, html string
	n, ok := next()
	if mark == bodiesMark {
		n-- // stored as length + 1
		var ok1, ok2 bool
		text, ok1 = bytesOf()
		html, ok2 = bytesOf()
		ok = ok && ok1 && ok2
	}
	if !ok {
		return errBadStored
	}
	if err := json.Unmarshal(b, v); err != nil {
		return err
	}
	m := msg()
	if m == nil {
		return nil
	}
	if mark == bodiesMark {
		m.Text, m.HTML = text, html
	}
	if n >= 0 && n <= len(m.Text) {
		m.StrippedText = m.Text[:n]
	}
	return nil
}
