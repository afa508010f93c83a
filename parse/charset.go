package parse

// Text to UTF-8: declared charsets, C1 controls, newlines.

import (
	"bytes"
	"io"
	"strings"
	"unicode/utf8"

	"github.com/emersion/go-message/charset"
	"github.com/mailhook/mailhook/internal/clip"
	htmlcharset "golang.org/x/net/html/charset"
	"golang.org/x/text/encoding/charmap"
)

// decodeCharset converts b from the named charset to UTF-8, falling back to
// fixUTF8 when the charset is unknown.
func decodeCharset(b []byte, cs string) string {
	r, err := charset.Reader(cs, bytes.NewReader(b))
	if err != nil {
		return fixUTF8(string(b), "")
	}
	out, err := io.ReadAll(r)
	if err != nil {
		return fixUTF8(string(b), "")
	}
	return string(out)
}

// toUTF8 returns a decoded text body as UTF-8. go-message already converted
// it when its declared charset is known (converted). Otherwise: valid UTF-8
// is kept; HTML without a declared charset is sniffed (BOM, <meta>) per the
// HTML standard; anything else that is not valid UTF-8 is repaired by
// fixUTF8 and a warning is added. Line ends become "\n" (CRLF and lone
// CR); UTF-8 input has them rewritten in b itself, saving a copy of the body.
func (p *parser) toUTF8(b []byte, declared string, converted bool, mt string) string {
	if converted || utf8.Valid(b) {
		return fixC1(string(normalizeNewlinesBytes(b)))
	}
	return normalizeNewlines(p.toUTF8Other(b, declared, mt))
}

// chunksToUTF8 is toUTF8 for a body collected in chunks: UTF-8 (the
// common case) is copied once, into its string, with line ends rewritten on
// the way; CR and LF are ASCII, so that does not change whether the bytes
// are valid UTF-8.
func (p *parser) chunksToUTF8(c *chunks, declared string, converted bool, mt string) string {
	if s := c.lfString(); converted || utf8.ValidString(s) {
		return fixC1(s)
	}
	return normalizeNewlines(p.toUTF8Other(c.bytes(), declared, mt))
}

// toUTF8Other is toUTF8 for bytes that are not UTF-8 yet. It converts
// before line ends are touched: in UTF-16 a CR is not the byte 0x0D alone.
func (p *parser) toUTF8Other(b []byte, declared, mt string) string {
	if mt == "text/html" && declared == "" {
		if enc, name, _ := htmlcharset.DetermineEncoding(b, "text/html"); enc != nil {
			if out, err := enc.NewDecoder().Bytes(b); err == nil {
				if name != "windows-1252" {
					return string(out)
				}
			}
		}
	}
	if declared == "" {
		declared = "us-ascii"
	}
	p.warnf("%s: bytes invalid for charset %q, repaired", mt, declared)
	return fixUTF8(string(b), p.topCharset)
}

// fixUTF8 returns s unchanged when it is valid UTF-8. Otherwise, when most
// of its non-ASCII bytes form valid UTF-8 sequences, the stray bytes become
// U+FFFD; else s is taken to be in fallback (the message's charset) or, when
// that is unknown, Windows-1252, the de facto meaning of undeclared 8-bit
// mail and a superset of ISO-8859-1.
func fixUTF8(s, fallback string) string {
	if utf8.ValidString(s) {
		return s
	}
	multi, bad := 0, 0
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && n == 1 {
			bad++
		} else if n > 1 {
			multi++
		}
		i += n
	}
	if multi > bad {
		return strings.ToValidUTF8(s, "\uFFFD")
	}
	if fallback != "" && fallback != "utf-8" && fallback != "us-ascii" {
		if r, err := charset.Reader(fallback, strings.NewReader(s)); err == nil {
			if out, err := io.ReadAll(r); err == nil && utf8.Valid(out) {
				return string(out)
			}
		}
	}
	out, err := charmap.Windows1252.NewDecoder().String(s)
	if err != nil {
		return strings.ToValidUTF8(s, "\uFFFD")
	}
	return out
}

// fixC1 maps C1 control characters (U+0080–U+009F) to what Windows-1252
// has at those bytes. Mail labelled ISO-8859-1 is very often Windows-1252
// (curly quotes, dashes, €), which the WHATWG encoding standard also
// prescribes for that label; the controls themselves never belong in text.
func fixC1(s string) string {
	if !hasC1(s) {
		return s
	}
	return strings.Map(func(r rune) rune {
		if r >= 0x80 && r <= 0x9f {
			if d := charmap.Windows1252.DecodeByte(byte(r)); d != utf8.RuneError {
				return d
			}
		}
		return r
	}, s)
}

func hasC1(s string) bool {
	// U+0080–U+009F are encoded as C2 80 – C2 9F.
	for i := strings.IndexByte(s, 0xc2); i >= 0 && i+1 < len(s); {
		if c := s[i+1]; c >= 0x80 && c <= 0x9f {
			return true
		}
		j := strings.IndexByte(s[i+1:], 0xc2)
		if j < 0 {
			break
		}
		i += 1 + j
	}
	return false
}

// normalizeNewlinesBytes rewrites CRLF and lone CR as LF in place and
// returns the shortened b.
func normalizeNewlinesBytes(b []byte) []byte {
	i := bytes.IndexByte(b, '\r')
	if i < 0 {
		return b
	}
	w := i
	for ; i < len(b); i++ {
		switch {
		case b[i] != '\r':
			b[w] = b[i]
		case i+1 < len(b) && b[i+1] == '\n':
			continue // the LF that follows is copied next
		default:
			b[w] = '\n'
		}
		w++
	}
	return b[:w]
}

func normalizeNewlines(s string) string {
	if !strings.Contains(s, "\r") {
		return s
	}
	s = strings.ReplaceAll(s, "\r\n", "\n")
	return strings.ReplaceAll(s, "\r", "\n")
}

// truncate cuts s to at most n bytes on a rune boundary, marking the cut.
func truncate(s string, n int) string { return clip.UTF8(s, n, "…") }
