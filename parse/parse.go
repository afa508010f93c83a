package parse

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"

	"github.com/emersion/go-message"
	"github.com/emersion/go-message/textproto"

	"github.com/mailhook/mailhook/header"
	"github.com/mailhook/mailhook/internal/clip"
)

var (
	errHeaderTooBig = errors.New("header block exceeds limit")
	errRawLimit     = errors.New("raw input exceeds limit")
)

// maxHTMLRender is the most HTML rendered to text when a message has no
// text part (a variable so tests can lower it). Crafted HTML makes the
// HTML parser slower than linear; 1 MiB bounds it to well under a second.
var maxHTMLRender = 1 << 20

// maxWarnings caps Message.Warnings so hostile input cannot grow it without
// bound.
const maxWarnings = 50

// recoverPanics turns a panic inside Parse into a warning. The fuzz target
// switches it off so that any panic is found rather than hidden.
var recoverPanics = true

// Parse reads one RFC 5322 message from r and returns its parsed form.
//
// Malformed mail never makes Parse fail: whatever could be parsed is returned
// and each problem (including every limit in opts that was reached) is listed
// in Message.Warnings. The only error is an I/O failure reading r, wrapped.
// Parse reads r at most until the message ends or a limit stops it; memory
// use is bounded by opts, whatever the input.
func Parse(r io.Reader, opts Options) (msg *Message, err error) {
	opts = opts.withDefaults()
	src := &source{r: r, limit: opts.rawLimit()}
	p := &parser{
		opts: opts,
		src:  src,
		msg:  &Message{References: []string{}, To: []Address{}, Cc: []Address{}, ReplyTo: []Address{}, Headers: [][2]string{}, Attachments: []Attachment{}},
	}
	if recoverPanics {
		defer func() {
			if v := recover(); v != nil {
				p.warn(fmt.Sprintf("internal error: %v", v))
				msg, err = p.finishAfterPanic()
			}
		}()
	}
	p.run()
	return p.finish()
}

// source wraps the caller's reader. It remembers an I/O failure (the only
// error Parse reports) and caps the raw bytes read.
type source struct {
	r        io.Reader
	n, limit int64
	ioErr    error
}

func (s *source) Read(b []byte) (int, error) {
	if s.ioErr != nil {
		return 0, s.ioErr
	}
	if s.n >= s.limit {
		return 0, errRawLimit
	}
	if rem := s.limit - s.n; int64(len(b)) > rem {
		b = b[:rem]
	}
	n, err := s.r.Read(b)
	s.n += int64(n)
	if err != nil && err != io.EOF {
		s.ioErr = err
	}
	return n, err
}

// gate limits the bytes read through it while on; it is switched on around
// header reads, which go-message's textproto does not bound by itself.
type gate struct {
	r  io.Reader
	on bool
	n  int64
	// capture keeps up to capLeft raw bytes (the multipart preamble) so a
	// multipart whose boundary never appears can still be shown as text.
	capture *bytes.Buffer
	capLeft int
}

func (g *gate) Read(b []byte) (int, error) {
	if g.on {
		if g.n <= 0 {
			return 0, errHeaderTooBig
		}
		if int64(len(b)) > g.n {
			b = b[:g.n]
		}
	}
	n, err := g.r.Read(b)
	if g.on {
		g.n -= int64(n)
	}
	if g.capture != nil && g.capLeft > 0 && n > 0 {
		c := min(n, g.capLeft)
		g.capture.Write(b[:c])
		g.capLeft -= c
	}
	return n, err
}

func (g *gate) limit(n int64) { g.on, g.n = true, n }
func (g *gate) open()         { g.on = false }

type parser struct {
	opts    Options
	src     *source
	msg     *Message
	parts   int
	decoded int64
	stop    bool // a hard limit or an I/O failure: walk no further
	warned  map[string]bool
	buf     []byte

	texts, htmls []string
	nesting      int      // depth of message/rfc822 being walked
	rootTexts    int      // text bodies of the message itself, not of one it carries
	rootHTMLs    []string // HTML bodies of the message itself
	topCharset   string   // the top-level charset, for 8-bit header fallback
	author       header.Author
	tgt          *target // the part OpenPart wants; nil in Parse
}

func (p *parser) warn(s string) {
	if p.warned == nil {
		p.warned = make(map[string]bool)
	}
	if p.warned[s] {
		return
	}
	p.warned[s] = true
	if len(p.msg.Warnings) < maxWarnings {
		p.msg.Warnings = append(p.msg.Warnings, s)
	} else if len(p.msg.Warnings) == maxWarnings {
		p.msg.Warnings = append(p.msg.Warnings, "further warnings omitted")
	}
}

func (p *parser) warnf(format string, args ...any) { p.warn(fmt.Sprintf(format, args...)) }

// ioFailed reports whether the caller's reader failed; parsing then stops.
func (p *parser) ioFailed() bool {
	if p.src.ioErr != nil {
		p.stop = true
		return true
	}
	return false
}

// Buffers reused across calls: the copy buffer and the top-level reader
// are the largest fixed allocations of a parse.
var (
	copyBufPool = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}
	readerPool  = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, 16<<10) }}
)

func (p *parser) run() {
	g := &gate{r: p.src}
	br := readerPool.Get().(*bufio.Reader)
	br.Reset(g)
	defer func() {
		br.Reset(nil)
		readerPool.Put(br)
		if b := p.buf; b != nil {
			p.buf = nil
			copyBufPool.Put(&b)
		}
	}()
	h, body, ok := p.readTopHeader(br)
	if p.ioFailed() {
		return
	}
	p.topHeader(h)
	if !ok {
		return
	}
	p.walk(h, body, frame{root: true})
}

func (p *parser) finish() (*Message, error) {
	if p.src.ioErr != nil {
		return nil, fmt.Errorf("parse: read message: %w", p.src.ioErr)
	}
	if p.src.n >= p.src.limit {
		p.warnf("message larger than %d bytes: the rest was not read", p.src.limit)
	}
	m := p.msg
	m.Text = joinBodies(p.texts)
	m.HTML = joinBodies(p.htmls)
	src := ""
	switch {
	case p.rootTexts == 0 && len(p.rootHTMLs) > 0:
		// No text part: text and stripped_text come from the HTML
		// (the message's own; a forwarded message's text follows).
		src = joinBodies(p.rootHTMLs)
	case m.Text == "":
		src = m.HTML
	}
	if src != "" {
		if len(src) > maxHTMLRender {
			// The HTML tree takes several times the size of its source.
			p.warnf("html larger than %d bytes: text taken from the first %d", maxHTMLRender, maxHTMLRender)
			src = clip.UTF8(src, maxHTMLRender, "")
		}
		full, quoteless := htmlTexts(src)
		m.Text = joinBodies([]string{full, m.Text})
		m.StrippedText = StripReply(quoteless)
		m.StrippedSignature = StripSignature(quoteless)
	} else {
		m.StrippedText = StripReply(m.Text)
		m.StrippedSignature = StripSignature(m.Text)
	}
	m.StrippedHTML = StripHTML(joinBodies(p.rootHTMLs)) // signature.go
	m.AutoSubmitted = m.AutoSubmitted || isAutoSubmitted(m)
	return m, nil
}

// finishAfterPanic completes the message after a recovered panic, without
// the HTML rendering and reply stripping that may have caused it.
func (p *parser) finishAfterPanic() (*Message, error) {
	if p.src.ioErr != nil {
		return nil, fmt.Errorf("parse: read message: %w", p.src.ioErr)
	}
	m := p.msg
	m.Text = fixUTF8(joinBodies(p.texts), "")
	m.HTML = fixUTF8(joinBodies(p.htmls), "")
	m.StrippedText = ""
	return m, nil
}

func joinBodies(parts []string) string {
	switch len(parts) {
	case 0:
		return ""
	case 1:
		return parts[0]
	}
	var b strings.Builder
	for _, s := range parts {
		if s == "" {
			continue
		}
		if b.Len() > 0 && !strings.HasSuffix(b.String(), "\n") {
			b.WriteByte('\n')
		}
		b.WriteString(s)
	}
	return b.String()
}

// readTopHeader reads the message header with package header, the one
// reader the whole pipeline shares, so that the fields listed here and the
// author are those DMARC judged. body is the rest of the message; ok is
// false when there is none.
func (p *parser) readTopHeader(br *bufio.Reader) (h message.Header, body io.Reader, ok bool) {
	hdr, err := header.Read(br, int(min(p.opts.MaxHeaderBytes, 1<<30)))
	switch {
	case errors.Is(err, header.ErrTooBig):
		p.warnf("header: larger than %d bytes, truncated", p.opts.MaxHeaderBytes)
		skipToBlankLine(br)
	case err != nil:
		return message.Header{}, nil, false
	}
	p.author = header.ReadAuthor(hdr)
	if hdr.End == header.EndLine {
		if len(hdr.Fields) == 0 {
			p.warn("header: message has no header")
		} else {
			p.warn("header: a line that is not a field ended the header; the rest is body")
		}
	}
	var th textproto.Header
	// AddRaw puts a field first, so add them last to first.
	for i := len(hdr.Fields) - 1; i >= 0; i-- {
		th.AddRaw(hdr.Fields[i].Raw)
	}
	h = message.Header{Header: th}
	if hdr.End == header.EndEOF {
		return h, nil, false
	}
	if len(hdr.Rest) > 0 {
		return h, io.MultiReader(bytes.NewReader(hdr.Rest), br), true
	}
	_, perr := br.Peek(1)
	return h, br, perr == nil
}

// readHeader reads one header block with go-message's textproto reader,
// tolerating what real mail gets wrong: leading whitespace on the first
// line, malformed lines in the middle (skipped) and oversized blocks (cut at
// MaxHeaderBytes, the rest skipped up to the blank line).
func (p *parser) readHeader(br *bufio.Reader, g *gate, where string) message.Header {
	g.limit(p.opts.MaxHeaderBytes)
	defer g.open()
	if b, err := br.Peek(1); err == nil && (b[0] == ' ' || b[0] == '\t') {
		p.warnf("%s: first line starts with whitespace", where)
		for {
			b, err := br.Peek(1)
			if err != nil || (b[0] != ' ' && b[0] != '\t') {
				break
			}
			br.ReadByte()
		}
	}
	var chunks []textproto.Header
	for range 1000 {
		h, err := textproto.ReadHeader(br)
		chunks = append(chunks, h)
		if err == nil || err == io.EOF || err == io.ErrUnexpectedEOF || p.ioFailed() {
			break
		}
		if errors.Is(err, errHeaderTooBig) {
			p.warnf("%s: larger than %d bytes, truncated", where, p.opts.MaxHeaderBytes)
			g.open()
			skipToBlankLine(br)
			break
		}
		if errors.Is(err, errRawLimit) {
			break
		}
		p.warnf("%s: malformed line skipped", where)
	}
	if len(chunks) == 1 {
		return message.Header{Header: chunks[0]}
	}
	// Join the fields read around skipped lines, in order. AddRaw puts a
	// field first, so add them last to first.
	var raws [][]byte
	for i := range chunks {
		fs := chunks[i].Fields()
		for fs.Next() {
			if b, err := fs.Raw(); err == nil && bytes.IndexByte(b, ':') >= 0 {
				raws = append(raws, b)
			}
		}
	}
	var h textproto.Header
	for i := len(raws) - 1; i >= 0; i-- {
		h.AddRaw(raws[i])
	}
	return message.Header{Header: h}
}

func skipToBlankLine(br *bufio.Reader) {
	atStart := true
	for {
		line, err := br.ReadSlice('\n')
		if atStart && (len(line) == 1 || (len(line) == 2 && line[0] == '\r')) && err == nil {
			return
		}
		atStart = err == nil
		if err != nil && err != bufio.ErrBufferFull {
			return
		}
	}
}

func skipLine(br *bufio.Reader) {
	for {
		_, err := br.ReadSlice('\n')
		if err != bufio.ErrBufferFull {
			return
		}
	}
}
