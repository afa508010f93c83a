package deliver

// The stored form of a message's JSON: its stripped_text, when that is the
// start of its text (a message that quotes nothing, or whose quote follows
// the reply), is left out and kept as its length, so the text is stored
// once. The queues store inbound.Mail so; the activity history its parsed
// message.

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"strings"

	"github.com/mailhook/mailhook/inbound"
	"github.com/mailhook/mailhook/parse"
)

// strippedMark starts a stored value whose stripped_text was left out; the
// length follows as a uvarint, then the JSON. Any other value is the JSON
// alone (what earlier versions stored).
const strippedMark = 0x01

// StrippedPrefix returns the length of m's stripped text when it is a
// non-empty start of m's text, else -1.
func StrippedPrefix(m *parse.Message) int {
	if m == nil || m.StrippedText == "" || !strings.HasPrefix(m.Text, m.StrippedText) {
		return -1
	}
	return len(m.StrippedText)
}

// EncodeStripped encodes v, whose message's stripped text (n bytes, the
// start of its text) the caller has emptied, in the stored form.
func EncodeStripped(n int, v any) ([]byte, error) {
	var e bytes.Buffer
	e.WriteByte(strippedMark)
	e.Write(binary.AppendUvarint(nil, uint64(n)))
	if err := json.NewEncoder(&e).Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(e.Bytes(), []byte("\n")), nil
}

// SplitStripped returns the JSON of a stored value and the length of the
// stripped text to restore (-1 when none was left out).
func SplitStripped(b []byte) (n int, js []byte, err error) {
	if len(b) == 0 || b[0] != strippedMark {
		return -1, b, nil
	}
	u, w := binary.Uvarint(b[1:])
	if w <= 0 {
		return 0, nil, errors.New("bad stripped text length")
	}
	return int(min(u, 1<<40)), b[1+w:], nil
}

// RestoreStripped sets m's stripped text back to the first n bytes of its
// text (SplitStripped's n; nothing when n is -1).
func RestoreStripped(m *parse.Message, n int) {
	if m != nil && n >= 0 && n <= len(m.Text) {
		m.StrippedText = m.Text[:n]
	}
}

// EncodeMail is the form the queues store mail in. mail is not changed
// (it is read-only once accepted): a message whose text is kept once is
// encoded from a shallow copy.
func EncodeMail(mail *inbound.Mail) ([]byte, error) {
	n := StrippedPrefix(mail.Message)
	if n < 0 {
		return json.Marshal(mail)
	}
	c, mc := *mail, *mail.Message
	mc.StrippedText = ""
	c.Message = &mc
	return EncodeStripped(n, &c)
}

// DecodeMail reads what EncodeMail wrote, or the plain JSON of earlier
// versions.
func DecodeMail(b []byte) (*inbound.Mail, error) {
	n, js, err := SplitStripped(b)
	if err != nil {
		return nil, err
	}
	m := new(inbound.Mail)
	if err := json.Unmarshal(js, m); err != nil {
		return nil, err
	}
	RestoreStripped(m.Message, n)
	return m, nil
}
