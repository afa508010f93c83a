package parse

// The MIME walk: each part, its place in the tree and where its decoded
// bytes go.

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"errors"
	"io"
	"mime"
	"strconv"
	"strings"

	"github.com/emersion/go-message"
	"github.com/emersion/go-message/charset"
	"github.com/emersion/go-message/textproto"
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
