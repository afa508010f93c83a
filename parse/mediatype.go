package parse

// A part's Content-Type and Content-Disposition, repaired where mail
// clients break them, and the names and ids taken from them.

import (
	"mime"
	"path"
	"regexp"
	"strings"

	"github.com/emersion/go-message"
)

// contentType returns the media type (lower case) and parameters. sane is
// false when the header was broken and had to be repaired; the defaults of
// RFC 2045 §5.2 (text/plain) and RFC 2046 §5.1.5 (message/rfc822 in a
// digest) apply when it is missing.
func (p *parser) contentType(h message.Header, f frame) (string, map[string]string, bool) {
	raw := h.Get("Content-Type")
	if strings.TrimSpace(raw) == "" {
		if f.parent == "digest" {
			return "message/rfc822", map[string]string{}, false
		}
		return "text/plain", map[string]string{}, raw == ""
	}
	mt, params, err := h.ContentType()
	if err == nil {
		fixParams(params)
		return strings.ToLower(mt), params, true
	}
	mt, params = repairMediaType(raw)
	p.warnf("malformed Content-Type %q: read as %s", truncate(raw, 80), mt)
	return mt, params, false
}

// disposition returns the RFC 2183 disposition type ("" when absent) and
// its parameters.
func (p *parser) disposition(h message.Header) (string, map[string]string) {
	raw := h.Get("Content-Disposition")
	if strings.TrimSpace(raw) == "" {
		return "", map[string]string{}
	}
	d, params, err := h.ContentDisposition()
	if err != nil {
		d, params = repairMediaType(raw)
		if d == "text/plain" {
			d = ""
		}
	} else {
		fixParams(params)
	}
	d = strings.ToLower(d)
	if d != "inline" && d != "attachment" && d != "" {
		d = "attachment"
	}
	return d, params
}

var tokenRE = regexp.MustCompile(`^[!#$%&'*+.^_` + "`" + `|~0-9A-Za-z-]+$`)

// repairMediaType salvages a Content-Type (or Content-Disposition) that
// mime.ParseMediaType rejects: duplicate parameters, junk characters, a
// missing quote. Each parameter is parsed on its own with the standard
// library, the first occurrence wins, and unparseable ones are dropped.
func repairMediaType(raw string) (string, map[string]string) {
	pieces := splitParams(raw)
	first := strings.TrimSpace(pieces[0])
	mt := strings.ToLower(first)
	if m := mediaTypeRE.FindStringSubmatch(mt); m != nil {
		mt = m[1]
		// "application/pdf name=x.pdf": a parameter without its ";".
		if rest := strings.TrimSpace(first[len(m[0]):]); strings.Contains(rest, "=") {
			pieces = append(pieces[:1], append([]string{rest}, pieces[1:]...)...)
		}
	} else if tokenRE.MatchString(mt) && (mt == "inline" || mt == "attachment") {
		// a disposition type
	} else {
		mt = "text/plain"
	}
	params := map[string]string{}
	for _, piece := range pieces[1:] {
		if strings.TrimSpace(piece) == "" {
			continue
		}
		ps := map[string]string{}
		if _, parsed, err := mime.ParseMediaType("x/y;" + piece); err == nil {
			ps = parsed
		} else if k, v, ok := strings.Cut(piece, "="); ok && tokenRE.MatchString(strings.TrimSpace(k)) {
			// An unquoted value with 8-bit or special characters.
			v = strings.TrimSpace(v)
			if len(v) >= 2 && v[0] == '"' && v[len(v)-1] == '"' {
				v = v[1 : len(v)-1]
			}
			ps[strings.ToLower(strings.TrimSpace(k))] = strings.TrimLeft(v, `"`)
		}
		for k, v := range ps {
			if _, dup := params[k]; !dup {
				params[k] = v
			}
		}
	}
	fixParams(params)
	return mt, params
}

var mediaTypeRE = regexp.MustCompile(`^([a-z0-9!#$&^_.+-]+/[a-z0-9!#$&^_.+-]+)`)

// splitParams splits a header value at semicolons outside quoted strings.
func splitParams(s string) []string {
	var out []string
	quoted, esc, start := false, false, 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case esc:
			esc = false
		case c == '\\' && quoted:
			esc = true
		case c == '"':
			quoted = !quoted
		case c == ';' && !quoted:
			out = append(out, s[start:i])
			start = i + 1
		}
	}
	return append(out, s[start:])
}

// fixParams decodes RFC 2047 words left in parameter values (go-message
// does this for the values it parses; repaired ones need it too) and
// repairs invalid UTF-8.
func fixParams(params map[string]string) {
	for k, v := range params {
		if strings.Contains(v, "=?") {
			if d, err := wordDecoder.DecodeHeader(v); err == nil {
				v = d
			}
		}
		params[k] = fixUTF8(v, "")
	}
}

func formatMediaType(mt string, params map[string]string) string {
	if s := mime.FormatMediaType(mt, params); s != "" {
		return s
	}
	return mt
}

// rfc2231CharsetRE finds an RFC 2231 §4 extended parameter value's charset.
var rfc2231CharsetRE = regexp.MustCompile(`(?i)\*(?:0\*)?\s*=\s*"?([a-z0-9_.:+-]+)'[^']*'`)

// filename returns the attachment's file name: Content-Disposition filename
// (RFC 2183, with RFC 2231 extended values and RFC 2047 words decoded), else
// Content-Type name. Directory parts are removed.
func (p *parser) filename(h message.Header, dparams, ctparams map[string]string) string {
	// mime.ParseMediaType decodes RFC 2231 values only in UTF-8 and
	// US-ASCII; others (ISO-8859-1 is common) are dropped, or only their
	// continuations kept. Relabel them UTF-8 so the standard library
	// unescapes the bytes, then convert those bytes from their real charset.
	for _, field := range []string{"Content-Disposition", "Content-Type"} {
		raw := h.Get(field)
		m := rfc2231CharsetRE.FindStringSubmatch(raw)
		if m == nil {
			continue
		}
		cs := strings.ToLower(m[1])
		if cs == "utf-8" || cs == "us-ascii" {
			continue
		}
		fixed := regexp.MustCompile(`(?i)(\*(?:[0-9]+\*)?\s*=\s*"?)`+regexp.QuoteMeta(m[1])+`'`).ReplaceAllString(raw, "${1}utf-8'")
		_, ps, err := mime.ParseMediaType(fixed)
		if err != nil {
			continue
		}
		v := ps["filename"]
		if v == "" {
			v = ps["name"]
		}
		if v != "" {
			return cleanFilename(decodeCharset([]byte(v), cs))
		}
	}
	name := dparams["filename"]
	if name == "" {
		name = ctparams["name"]
	}
	return cleanFilename(name)
}

func cleanFilename(name string) string {
	name = fixUTF8(name, "")
	name = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return -1
		}
		return r
	}, name)
	if i := strings.LastIndexAny(name, `/\`); i >= 0 {
		name = name[i+1:]
	}
	name = strings.TrimSpace(name)
	if name == "." || name == ".." {
		return ""
	}
	return path.Clean("/" + name)[1:]
}

// cleanID strips the angle brackets and whitespace around a msg-id.
func cleanID(s string) string {
	s = strings.TrimSpace(s)
	s = strings.TrimPrefix(s, "<")
	s = strings.TrimSuffix(s, ">")
	return fixUTF8(strings.TrimSpace(s), "")
}
