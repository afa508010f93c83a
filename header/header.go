package header

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"
)

// DefaultMaxBytes is the largest header section Read accepts when its
// limit is zero or negative.
const DefaultMaxBytes = 1 << 20

// MaxFields bounds the number of fields, so that a header of many tiny
// fields costs bounded memory.
const MaxFields = 10000

// ErrTooBig means the header section is larger than the limit, or has more
// than MaxFields fields.
var ErrTooBig = errors.New("header: header section too large")

// Field is one header field as read.
type Field struct {
	// Name is the field name as written, without the white space that
	// may precede the colon.
	Name string
	// Value is the unfolded value (RFC 5322 §2.2.3: each line end before
	// a continuation removed), without leading and trailing white space.
	// It is not decoded (RFC 2047 words stay as they are).
	Value string
	// Raw is the field exactly as received, every line with its line end.
	Raw []byte
}

// Is reports whether the field's name is name, compared without regard to
// case (RFC 5322 §1.2.2).
func (f Field) Is(name string) bool { return strings.EqualFold(f.Name, name) }

// End says what ended a header section.
type End int

const (
	// EndBlank: an empty line, consumed; the body follows it.
	EndBlank End = iota
	// EndLine: a line that is not part of a field; it is the body's first
	// line.
	EndLine
	// EndEOF: the input ended; there is no body.
	EndEOF
)

// Header is a header section as read.
type Header struct {
	Fields []Field
	End    End
	// BodyOffset is where the body starts in the input: after the empty
	// line, at the line that ended the header, or at the end.
	BodyOffset int64
	// Rest is what Read consumed of the body: the line that ended the
	// header when End is EndLine, else nothing. A caller reading the body
	// from the same reader puts it back in front.
	Rest []byte
}

// Get returns the value of the first field named name, or "".
func (h *Header) Get(name string) string {
	for _, f := range h.Fields {
		if f.Is(name) {
			return f.Value
		}
	}
	return ""
}

// Count returns the number of fields named name.
func (h *Header) Count(name string) int {
	n := 0
	for _, f := range h.Fields {
		if f.Is(name) {
			n++
		}
	}
	return n
}

// Read reads the header section from br by the rule in the package
// documentation. limit bounds its size in bytes (DefaultMaxBytes when not
// positive). The error is ErrTooBig, or the reader's error (never io.EOF:
// an input that ends inside the header is a header ending at EndEOF).
func Read(br *bufio.Reader, limit int) (*Header, error) {
	if limit <= 0 {
		limit = DefaultMaxBytes
	}
	h := &Header{}
	var cur []byte // the raw field being read
	var n int64
	flush := func() {
		if cur != nil {
			h.Fields = append(h.Fields, newField(cur))
			cur = nil
		}
	}
	var line []byte
	for {
		var err error
		line, err = readLine(br, line[:0], limit-int(n)+1)
		if len(line) > limit-int(n) {
			flush()
			return h, ErrTooBig
		}
		if len(line) == 0 {
			flush()
			h.End, h.BodyOffset = EndEOF, n
			if err != nil && err != io.EOF {
				return h, fmt.Errorf("header: read: %w", err)
			}
			return h, nil
		}
		content := trimEOL(line)
		switch {
		case len(content) == 0:
			flush()
			n += int64(len(line))
			h.End, h.BodyOffset = EndBlank, n
			return h, nil
		case (content[0] == ' ' || content[0] == '\t') && cur != nil && !allWSP(content):
			cur = append(cur, line...)
		case fieldName(content) != "":
			flush()
			if len(h.Fields) >= MaxFields {
				return h, ErrTooBig
			}
			cur = append([]byte(nil), line...)
		default:
			flush()
			h.End, h.BodyOffset = EndLine, n
			h.Rest = append([]byte(nil), line...)
			if err != nil && err != io.EOF {
				return h, fmt.Errorf("header: read: %w", err)
			}
			return h, nil
		}
		n += int64(len(line))
		if err != nil {
			flush()
			h.End, h.BodyOffset = EndEOF, n
			if err != io.EOF {
				return h, fmt.Errorf("header: read: %w", err)
			}
			return h, nil
		}
	}
}

// readLine appends the next line of br (up to and including LF) to buf,
// reading at most max bytes of it (a longer line is returned cut, for the
// caller to refuse).
func readLine(br *bufio.Reader, buf []byte, max int) ([]byte, error) {
	for {
		frag, err := br.ReadSlice('\n')
		buf = append(buf, frag...)
		if err == bufio.ErrBufferFull {
			if len(buf) > max {
				return buf, nil
			}
			continue
		}
		return buf, err
	}
}

func trimEOL(line []byte) []byte {
	line = bytes.TrimSuffix(line, []byte("\n"))
	return bytes.TrimSuffix(line, []byte("\r"))
}

func allWSP(b []byte) bool {
	for _, c := range b {
		if c != ' ' && c != '\t' {
			return false
		}
	}
	return true
}

// fieldName returns the name of the field that line starts, or "" when the
// line does not start a field.
func fieldName(line []byte) string {
	i := 0
	for i < len(line) && line[i] > 32 && line[i] < 127 && line[i] != ':' {
		i++
	}
	if i == 0 {
		return ""
	}
	j := i
	for j < len(line) && (line[j] == ' ' || line[j] == '\t') {
		j++
	}
	if j >= len(line) || line[j] != ':' {
		return ""
	}
	return string(line[:i])
}

func newField(raw []byte) Field {
	first := raw
	if i := bytes.IndexByte(raw, '\n'); i >= 0 {
		first = raw[:i+1]
	}
	name := fieldName(trimEOL(first))
	v := raw[bytes.IndexByte(raw, ':')+1:]
	return Field{Name: name, Value: unfold(v), Raw: raw}
}

// unfold removes the line ends (RFC 5322 §2.2.3) and the white space
// around the value.
func unfold(v []byte) string {
	var b strings.Builder
	b.Grow(len(v))
	for len(v) > 0 {
		i := bytes.IndexByte(v, '\n')
		if i < 0 {
			b.Write(v)
			break
		}
		b.Write(trimEOL(v[:i+1]))
		v = v[i+1:]
	}
	return strings.Trim(b.String(), " \t")
}

// Write writes the fields for which keep is true (every field when keep
// is nil) as they were received, then the empty line that ends the
// header. It does not write the body; the caller copies the input from
// BodyOffset. The empty line is written whatever ended the header, so a
// body that started with a line that is not a field stays body for every
// reader of the copy.
func (h *Header) Write(w io.Writer, keep func(i int, f Field) bool) error {
	for i, f := range h.Fields {
		if keep != nil && !keep(i, f) {
			continue
		}
		if _, err := w.Write(f.Raw); err != nil {
			return err
		}
		if !bytes.HasSuffix(f.Raw, []byte("\n")) {
			// The input ended inside this field.
			if _, err := io.WriteString(w, "\r\n"); err != nil {
				return err
			}
		}
	}
	_, err := io.WriteString(w, "\r\n")
	return err
}
