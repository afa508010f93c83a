package parse

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"hash"
	"io"
	"mime"
	"path"
	"regexp"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/emersion/go-message"
	"github.com/emersion/go-message/charset"
	"github.com/emersion/go-message/textproto"
	"github.com/mailhook/mailhook/internal/clip"
	htmlcharset "golang.org/x/net/html/charset"
	"golang.org/x/text/encoding/charmap"
)

// frame is where an entity sits in the MIME tree.
type frame struct {
	depth  int
	parent string // subtype of the enclosing multipart, "" at a message root
	report bool   // inside multipart/report (RFC 6522)
	// path is the entity's part number (Attachment.Part); at a message
	// root (root) it is the message's own number ("" for the message
	// itself), which a multipart body shares and a single body extends
	// with ".1" (RFC 3501 §6.4.5).
	path string
	root bool
}

// partPath joins a part number and a child's number.
func partPath(parent string, n int) string {
	if parent == "" {
		return strconv.Itoa(n)
	}
	return parent + "." + strconv.Itoa(n)
}

// wordDecoder decodes RFC 2047 encoded words with every charset
// go-message's charset package knows.
var wordDecoder = &mime.WordDecoder{CharsetReader: charset.Reader}

// walk handles one MIME entity: h is its header, body its raw (still
// transfer-encoded) body.
func (p *parser) walk(h message.Header, body io.Reader, f frame) {
	if p.stop {
		return
	}
	p.parts++
	if p.parts > p.opts.MaxParts {
		p.warnf("more than %d MIME parts: the rest was skipped", p.opts.MaxParts)
		p.stop = true
		return
	}
	mt, params, sane := p.contentType(h, f)
	disp, dparams := p.disposition(h)
	if f.root && !(strings.HasPrefix(mt, "multipart/") && params["boundary"] != "") {
		f.path, f.root = partPath(f.path, 1), false
	}

	switch {
	case strings.HasPrefix(mt, "multipart/"):
		if params["boundary"] == "" {
			p.warnf("%s without boundary: body kept as text", mt)
			mt, params, sane = "text/plain", map[string]string{}, false
			break
		}
		if f.depth >= p.opts.MaxDepth {
			p.warnf("MIME nesting deeper than %d: skipped", p.opts.MaxDepth)
			return
		}
		p.multipart(mt, params, body, f)
		return
	case mt == "message/rfc822" || mt == "message/global":
		p.message(h, body, mt, params, disp, dparams, f)
		return
	}

	if params == nil {
		params = map[string]string{}
	}
	declared := cleanCharset(params["charset"])
	if declared != "" && declared != strings.ToLower(strings.TrimSpace(params["charset"])) {
		params["charset"] = declared
		sane = false
	}
	if !sane {
		// Give go-message the repaired Content-Type so its decoding
		// (transfer encoding, charset) follows what we understood.
		h = message.Header{Header: h.Header.Copy()}
		h.Set("Content-Type", formatMediaType(mt, params))
	}
	raw := &errReader{r: body}
	e, err := message.New(h, raw)
	// go-message returns one error: check the encoding on its own.
	switch cte := strings.ToLower(h.Get("Content-Transfer-Encoding")); cte {
	case "", "quoted-printable", "base64", "7bit", "8bit", "binary":
	default:
		p.warnf("%s: unknown transfer encoding %q, kept as is", mt, cte)
	}
	unknownCharset := err != nil && message.IsUnknownCharset(err)
	if unknownCharset {
		p.warnf("%s: unknown charset %q", mt, declared)
	}
	converted := strings.HasPrefix(mt, "text/") && declared != "" && declared != "utf-8" && declared != "us-ascii" && !unknownCharset

	filename := p.filename(h, dparams, params)
	isBody := (mt == "text/plain" || mt == "text/html") && disp != "attachment" && filename == ""
	if isBody {
		// Decoded into chunks, the body is copied once more, into its
		// string, with no growing buffer copying it on the way.
		var buf chunks
		p.copyDecoded(&buf, e.Body, raw, mt)
		s := p.chunksToUTF8(&buf, declared, converted, mt)
		if strings.TrimSpace(s) == "" {
			return
		}
		if mt == "text/plain" {
			// RFC 3676 §4.1: format=flowed text is unwrapped.
			if strings.EqualFold(params["format"], "flowed") {
				s = unflow(s, strings.EqualFold(params["delsp"], "yes"))
			}
			p.texts = append(p.texts, s)
			if p.nesting == 0 {
				p.rootTexts++
			}
		} else {
			p.htmls = append(p.htmls, s)
			if p.nesting == 0 {
				p.rootHTMLs = append(p.rootHTMLs, s)
			}
		}
		return
	}

	a := Attachment{
		Filename:    filename,
		ContentType: mt,
		ContentID:   cleanID(h.Get("Content-Id")),
		Part:        f.path,
	}
	if strings.HasPrefix(mt, "text/") {
		a.Charset = declared
	}
	switch {
	case disp == "inline" || disp == "attachment":
		a.Disposition = disp
	case f.parent == "related" && a.ContentID != "":
		a.Disposition = "inline"
	default:
		a.Disposition = "attachment"
	}
	// A report the message itself carries, not one inside a message it
	// forwards (a person forwarding a bounce is not a robot).
	isDSN := (mt == "message/delivery-status" || mt == "message/global-delivery-status") && p.nesting == 0
	var dsnBuf *bytes.Buffer
	var w io.Writer
	sink := newAttachmentSink(p.opts.InlineLimit)
	w = sink
	if isDSN {
		dsnBuf = &bytes.Buffer{}
		w = io.MultiWriter(sink, &limitedBuffer{b: dsnBuf, n: p.opts.MaxHeaderBytes})
	}
	w, hit := p.target(f.path, w)
	p.copyDecoded(w, e.Body, raw, mt)
	sink.fill(&a)
	p.msg.Attachments = append(p.msg.Attachments, a)
	p.stop = p.stop || hit
	if isDSN {
		p.parseDSN(dsnBuf.Bytes())
	}
}

// message handles an encapsulated message (RFC 2046 §5.2.1). It is always
// listed as an attachment (the .eml, streamed through the attachment sink).
// Unless it is marked as an attachment, sits in a report or is too deep, it
// is also parsed: its bodies join ours after a "Forwarded message" block
// (where StripReply cuts) and its attachments join ours.
func (p *parser) message(h message.Header, body io.Reader, mt string, params map[string]string, disp string, dparams map[string]string, f frame) {
	e, err := message.New(h, body)
	if err != nil && message.IsUnknownEncoding(err) {
		p.warnf("%s: unknown transfer encoding %q, kept as is", mt, h.Get("Content-Transfer-Encoding"))
	}
	a := Attachment{
		Filename:    p.filename(h, dparams, params),
		ContentType: mt,
		ContentID:   cleanID(h.Get("Content-Id")),
		Disposition: "attachment",
		Part:        f.path,
	}
	if disp == "inline" {
		a.Disposition = "inline"
	}
	sink := newAttachmentSink(p.opts.InlineLimit)
	w, hit := p.target(f.path, sink)
	defer func() { p.stop = p.stop || hit }()
	raw := &errReader{r: e.Body}
	if disp == "attachment" || f.report || f.depth >= p.opts.MaxDepth {
		if f.depth >= p.opts.MaxDepth && disp != "attachment" && !f.report {
			p.warnf("MIME nesting deeper than %d: attached message not parsed", p.opts.MaxDepth)
		}
		p.copyDecoded(w, raw, raw, mt)
		if a.Filename == "" {
			a.Filename = "message.eml"
		}
		sink.fill(&a)
		p.msg.Attachments = append(p.msg.Attachments, a)
		return
	}
	g := &gate{r: io.TeeReader(raw, w)}
	br := bufio.NewReaderSize(g, 4096)
	nh := p.readHeader(br, g, "attached message header")
	if p.ioFailed() {
		return
	}
	at, tx := len(p.msg.Attachments), len(p.texts)
	p.nesting++
	p.walk(nh, br, frame{depth: f.depth + 1, path: f.path, root: true})
	p.nesting--
	if !p.stop {
		// The rest (an epilogue, a skipped part) still belongs to the .eml.
		n, _ := io.CopyBuffer(io.Discard, br, p.copyBuf())
		p.decoded += n
	} else {
		p.warn("attached message cut at a limit: its size and hash cover the part read")
	}
	if a.Filename == "" {
		a.Filename = "message.eml"
		if s, _ := nh.Text("Subject"); strings.TrimSpace(s) != "" {
			if c := cleanFilename(truncate(strings.TrimSpace(s), 100)); c != "" {
				a.Filename = c + ".eml"
			}
		}
	}
	sink.fill(&a)
	p.msg.Attachments = append(p.msg.Attachments[:at], append([]Attachment{a}, p.msg.Attachments[at:]...)...)
	if len(p.texts) > tx {
		// Introduce the forwarded text the way Gmail does inline.
		var b strings.Builder
		b.WriteString("---------- Forwarded message ----------\n")
		for _, k := range []string{"From", "Date", "Subject", "To", "Cc"} {
			if v, _ := nh.Text(k); v != "" {
				b.WriteString(k + ": " + fixUTF8(v, "") + "\n")
			}
		}
		b.WriteString("\n")
		p.texts = append(p.texts[:tx], append([]string{b.String()}, p.texts[tx:]...)...)
	}
}

// multipart walks the parts of a multipart entity (RFC 2046 §5.1) with
// go-message's textproto reader, recovering from what it can: malformed part
// headers (the part is skipped), a missing closing boundary, and a boundary
// that never appears (the body is shown as text).
func (p *parser) multipart(mt string, params map[string]string, body io.Reader, f frame) {
	sub := strings.TrimPrefix(mt, "multipart/")
	g := &gate{r: body, capture: &bytes.Buffer{}, capLeft: int(min(p.opts.MaxHeaderBytes, 1<<20))}
	mr := textproto.NewMultipartReader(g, params["boundary"])
	child := frame{depth: f.depth + 1, parent: sub, report: f.report || sub == "report"}
	found := false
	for bad, n := 0, 1; !p.stop; n++ {
		// The gate bounds a part's header (and the line scanning before
		// it): the previous part has been read to its end already.
		g.limit(2*p.opts.MaxHeaderBytes + 16<<10)
		part, err := mr.NextPart()
		g.open()
		if err == io.EOF {
			break
		}
		if err != nil {
			if p.ioFailed() {
				return
			}
			if errors.Is(err, errHeaderTooBig) {
				p.warnf("%s: part header larger than %d bytes: rest of the multipart skipped", mt, p.opts.MaxHeaderBytes)
				break
			}
			if strings.HasPrefix(err.Error(), "multipart: NextPart:") {
				if found {
					p.warnf("%s: closing boundary missing", mt)
				}
				break
			}
			bad++
			p.warnf("%s: malformed part skipped", mt)
			p.parts++
			if bad > 100 || p.parts > p.opts.MaxParts {
				break
			}
			continue
		}
		if !found {
			found = true
			g.capture, g.capLeft = nil, 0
		}
		child.path = partPath(f.path, n)
		p.walk(message.Header{Header: part.Header}, part, child)
		if p.stop {
			return
		}
		// Whatever the walk left unread (a skipped entity) is raw input.
		io.CopyBuffer(io.Discard, part, p.copyBuf())
		if p.ioFailed() {
			return
		}
	}
	if !found && g.capture != nil && !p.stop {
		p.warnf("%s: boundary not found: body kept as text", mt)
		s := p.toUTF8(g.capture.Bytes(), "", false, "text/plain")
		if s = strings.TrimSpace(s); s != "" {
			p.decoded += int64(len(s))
			p.texts = append(p.texts, s)
			if p.nesting == 0 {
				p.rootTexts++
			}
		}
	}
}

func (p *parser) copyBuf() []byte {
	if p.buf == nil {
		p.buf = *copyBufPool.Get().(*[]byte)
	}
	return p.buf
}

// copyDecoded copies a decoded body to w within the message's decoded-bytes
// budget and turns decoding problems into warnings. It returns the bytes
// written.
func (p *parser) copyDecoded(w io.Writer, r io.Reader, raw *errReader, mt string) int64 {
	buf := p.copyBuf()
	rem := p.opts.MaxDecodedBytes - p.decoded
	var n int64
	for empty := 0; ; {
		nr, err := r.Read(buf)
		if nr == 0 && err == nil {
			if empty++; empty > 100 {
				err = io.ErrNoProgress
			}
		} else {
			empty = 0
		}
		if nr > 0 {
			if int64(nr) > rem-n {
				nr = int(rem - n)
				w.Write(buf[:nr])
				n += int64(nr)
				p.decoded += n
				p.warnf("decoded size over %d bytes: parsing stopped", p.opts.MaxDecodedBytes)
				p.stop = true
				return n
			}
			if _, err := w.Write(buf[:nr]); err != nil {
				// Only OpenPart's reader fails a write: it was closed.
				p.decoded += n
				p.stop = true
				return n
			}
			n += int64(nr)
		}
		if err == nil {
			continue
		}
		p.decoded += n
		if err == io.EOF || p.ioFailed() {
			return n
		}
		var cie base64.CorruptInputError
		switch {
		case errors.As(err, &cie):
			p.warnf("%s: malformed base64, decoded up to the error", mt)
		case err == io.ErrUnexpectedEOF && raw.err == io.ErrUnexpectedEOF:
			p.warnf("%s: part ends without its boundary", mt)
		case err == io.ErrUnexpectedEOF:
			p.warnf("%s: encoded data truncated", mt)
		case errors.Is(err, errRawLimit):
			p.stop = true
		default:
			p.warnf("%s: decoding stopped: %v", mt, err)
		}
		return n
	}
}

// cleanCharset normalises a charset parameter, including the broken
// "charset=charset=utf-8" and quoted forms seen in the wild.
func cleanCharset(cs string) string {
	cs = strings.ToLower(strings.TrimSpace(cs))
	if i := strings.LastIndexByte(cs, '='); i >= 0 {
		cs = cs[i+1:]
	}
	return strings.Trim(cs, `"' `)
}

// errReader remembers the error of the raw body, to tell a missing
// boundary from a truncated encoding.
type errReader struct {
	r   io.Reader
	err error
}

func (e *errReader) Read(b []byte) (int, error) {
	n, err := e.r.Read(b)
	if err != nil {
		e.err = err
	}
	return n, err
}

// limitedBuffer keeps the first n bytes written to it and drops the rest.
type limitedBuffer struct {
	b *bytes.Buffer
	n int64
}

func (l *limitedBuffer) Write(b []byte) (int, error) {
	if l.n > 0 {
		c := min(int64(len(b)), l.n)
		l.b.Write(b[:c])
		l.n -= c
	}
	return len(b), nil
}

// attachmentSink streams an attachment once: through SHA-256 and, while
// within the inline limit, through a base64 encoder into chunks. The decoded
// bytes are never held, and the chunks are dropped as soon as the size passes
// the limit, so no attachment over the limit is ever held at all. The chunks
// become the Content string once, at the end, in one exact allocation.
type attachmentSink struct {
	h     hash.Hash
	limit int64
	n     int64
	b64   *chunks
	enc   io.WriteCloser
}

func newAttachmentSink(limit int64) *attachmentSink {
	s := &attachmentSink{h: sha256.New(), limit: limit}
	if limit > 0 {
		s.b64 = &chunks{}
		s.enc = base64.NewEncoder(base64.StdEncoding, s.b64)
	}
	return s
}

func (s *attachmentSink) Write(b []byte) (int, error) {
	s.h.Write(b)
	s.n += int64(len(b))
	if s.enc != nil {
		if s.n > s.limit {
			s.enc, s.b64 = nil, nil
		} else {
			s.enc.Write(b)
		}
	}
	return len(b), nil
}

func (s *attachmentSink) fill(a *Attachment) {
	a.Size = s.n
	a.SHA256 = hex.EncodeToString(s.h.Sum(nil))
	if s.enc != nil {
		s.enc.Close()
		a.Content = s.b64.String()
	}
}

// chunks collects bytes in pieces of at most 64 KiB, so growing never
// copies what was already written.
type chunks struct {
	bufs [][]byte
	n    int
}

func (c *chunks) Write(b []byte) (int, error) {
	written := len(b)
	for len(b) > 0 {
		if len(c.bufs) == 0 || len(c.bufs[len(c.bufs)-1]) == cap(c.bufs[len(c.bufs)-1]) {
			c.bufs = append(c.bufs, make([]byte, 0, min(64<<10, max(512, c.n))))
		}
		last := &c.bufs[len(c.bufs)-1]
		k := min(len(b), cap(*last)-len(*last))
		*last = append(*last, b[:k]...)
		b = b[k:]
		c.n += k
	}
	return written, nil
}

// lfString returns the bytes collected as one string with CRLF and lone CR
// written as LF, in one allocation of at most the size collected. The
// chunks are kept.
func (c *chunks) lfString() string {
	var sb strings.Builder
	sb.Grow(c.n)
	cr := false // the previous chunk ended in CR, already written as LF
	for _, b := range c.bufs {
		if cr && b[0] == '\n' {
			b = b[1:]
		}
		cr = false
		for len(b) > 0 {
			i := bytes.IndexByte(b, '\r')
			if i < 0 {
				sb.Write(b)
				break
			}
			sb.Write(b[:i])
			sb.WriteByte('\n')
			b = b[i+1:]
			if len(b) == 0 {
				cr = true
			} else if b[0] == '\n' {
				b = b[1:]
			}
		}
	}
	return sb.String()
}

// bytes returns the bytes collected, in one slice.
func (c *chunks) bytes() []byte {
	b := make([]byte, 0, c.n)
	for _, p := range c.bufs {
		b = append(b, p...)
	}
	return b
}

func (c *chunks) String() string {
	var sb strings.Builder
	sb.Grow(c.n)
	for _, b := range c.bufs {
		sb.Write(b)
	}
	c.bufs = nil
	return sb.String()
}

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
