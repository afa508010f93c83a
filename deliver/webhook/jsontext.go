package webhook

// The message's bodies (text, html and their stripped forms) are most of
// an event's bytes. encoding/json escapes them a byte at a time, and hands
// the whole event over in a copy of its own buffer: 11% of serve's CPU at
// 100 KB x 20. marshalHead encodes the event with placeholders in their
// place and writes the bodies in itself, with appendJSONString, which
// gives byte for byte what encoding/json gives (SetEscapeHTML(false)),
// skips sixteen plain bytes at a time and escapes a line's CRLF at once
// (100 KB of mail text: 40 µs, encoding/json of Go 1.26 71 µs).

import (
	"crypto/rand"
	"encoding/hex"
	"math/bits"
	"unicode/utf8"
)

// bigText is the length from which a body is written by appendJSONString.
const bigText = 1 << 10

// placeholderTag makes the placeholders unguessable, so that no text of
// a message (a header decoded to hold a NUL, say) can pass for one.
var placeholderTag = func() string {
	var b [12]byte
	rand.Read(b[:])
	return "\x00mailhook-" + hex.EncodeToString(b[:]) + "-"
}()

// placeholder returns the i-th placeholder and its form in the JSON.
func placeholder(i int) (text, encoded string) {
	text = placeholderTag + string(rune('0'+i))
	return text, `"\u0000` + text[1:] + `"`
}

const (
	lsb = 0x0101010101010101
	msb = 0x8080808080808080
)

// special returns how many of the 8 bytes of x (little-endian) come
// before the first that needs a look (a control byte, quote, backslash or
// byte of a multi-byte sequence): 8 when none does. (A borrow may flag a
// byte after one that is flagged rightly, never before.)
func special(x uint64) int {
	return bits.TrailingZeros64(specialBits(x)) / 8
}

// specialBits has the high bit set of each byte of x that special would
// stop at (and perhaps of later ones): zero when all eight are plain.
func specialBits(x uint64) uint64 {
	q, b := x^(lsb*'"'), x^(lsb*'\\') // a zero byte where x has a quote, a backslash
	ctl := (x - lsb*0x20) &^ x        // high bit set where a byte is < 0x20
	return (ctl | (q-lsb)&^q | (b-lsb)&^b | x) & msb
}

// load64 reads the 8 bytes of s from i (the compiler makes it one load).
func load64(s string, i int) uint64 {
	_ = s[i+7]
	return uint64(s[i]) | uint64(s[i+1])<<8 | uint64(s[i+2])<<16 | uint64(s[i+3])<<24 |
		uint64(s[i+4])<<32 | uint64(s[i+5])<<40 | uint64(s[i+6])<<48 | uint64(s[i+7])<<56
}

const hexDigits = "0123456789abcdef"

// appendJSONString appends s as encoding/json writes a string with HTML
// escaping off: quoted, with ", \ and control characters escaped (\b, \f,
// \n, \r, \t by name, the rest as \u00XX), invalid UTF-8 as \ufffd, and
// U+2028 and U+2029 escaped.
func appendJSONString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	start := 0 // the first byte not yet appended
	i := 0
	for i < len(s) {
		// Sixteen, then eight plain bytes at a time, up to the first that
		// needs a look.
		for i+16 <= len(s) {
			if m := specialBits(load64(s, i)); m != 0 {
				i += bits.TrailingZeros64(m) / 8
				goto look
			}
			if m := specialBits(load64(s, i+8)); m != 0 {
				i += 8 + bits.TrailingZeros64(m)/8
				goto look
			}
			i += 16
		}
		for i+8 <= len(s) {
			k := special(load64(s, i))
			i += k
			if k < 8 {
				break
			}
		}
	look:
		if i >= len(s) {
			break
		}
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch c {
			case '"', '\\':
				dst = append(dst, '\\', c)
			case '\b':
				dst = append(dst, '\\', 'b')
			case '\f':
				dst = append(dst, '\\', 'f')
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				// A line's end in mail: both escapes at once.
				if i+1 < len(s) && s[i+1] == '\n' {
					dst = append(dst, `\r\n`...)
					i++
				} else {
					dst = append(dst, '\\', 'r')
				}
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
		case r == '\u2028' || r == '\u2029':
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
		default:
			i += size
			continue
		}
		i += size
		start = i
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}
