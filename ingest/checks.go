package ingest

import (
	"strings"

	"github.com/mailhook/mailhook/header"
	"github.com/mailhook/mailhook/parse"
	"github.com/mailhook/mailhook/route"
)

// deliveredHeaders returns the header fields of the message as stored and
// delivered, for the webhook: our fields first, then the original ones as
// parse decoded them (it lists them in the order and number package header
// read them as hdr), without the ones finalize dropped.
func deliveredHeaders(prepend []Field, orig [][2]string, hdr *header.Header, dropped map[int]bool) [][2]string {
	if len(orig) != len(hdr.Fields) {
		// parse did not list the fields one for one (it should): list
		// them as read, so that the indexes dropped hold.
		orig = make([][2]string, len(hdr.Fields))
		for i, f := range hdr.Fields {
			orig[i] = [2]string{f.Name, f.Value}
		}
	}
	out := make([][2]string, 0, len(prepend)+len(orig))
	for _, f := range prepend {
		out = append(out, [2]string{f.Name, unfold(f.Value)})
	}
	for i, h := range orig {
		if dropped[i] {
			continue
		}
		out = append(out, h)
	}
	return out
}

// unfold undoes header folding (RFC 5322 §2.2.3).
func unfold(v string) string {
	return unfolder.Replace(v)
}

var unfolder = strings.NewReplacer("\r\n\t", " ", "\r\n ", " ")

// forgedAR returns whether the i-th field of hdr is an
// Authentication-Results to drop: forged as received, or as parse decoded
// it for the webhook's headers (an RFC 2047 word could spell our name
// there; parse lists the fields in the order and number package header
// read them).
func (o *Options) forgedAR(hdr *header.Header, m *parse.Message) func(i int, f header.Field) bool {
	var decoded [][2]string
	if m != nil && len(m.Headers) == len(hdr.Fields) {
		decoded = m.Headers
	}
	return func(i int, f header.Field) bool {
		if !f.Is("Authentication-Results") {
			return false
		}
		return o.IsForgedAR(f.Value, o.Hostname) || (decoded != nil && o.IsForgedAR(decoded[i][1], o.Hostname))
	}
}

// forwards reports whether a decision relays the message.
func forwards(ds []route.Decision) bool {
	for _, d := range ds {
		for _, a := range d.Actions {
			if a.Kind == route.ActForward {
				return true
			}
		}
	}
	return false
}

// hasControl reports whether s holds a NUL or another control byte.
func hasControl(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] == 0x7f {
			return true
		}
	}
	return false
}

// unforwardable reports whether SRS cannot rewrite addr: its domain is an
// address literal ("[192.0.2.1]", RFC 5321 §4.1.3) or its local part is
// not a dot-atom (go-smtp hands a quoted one over unquoted); neither can
// go inside the local part of an SRS address.
func unforwardable(addr string) bool {
	i := strings.LastIndexByte(addr, '@')
	if i < 0 {
		return false
	}
	local := addr[:i]
	if strings.HasPrefix(addr[i+1:], "[") || local == "" || local[0] == '.' || local[len(local)-1] == '.' || strings.Contains(local, "..") {
		return true
	}
	for j := 0; j < len(local); j++ {
		c := local[j]
		atext := c >= 0x80 || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
			strings.IndexByte("!#$%&'*+-/=?^_`{|}~.", c) >= 0
		if !atext {
			return true
		}
	}
	return false
}
