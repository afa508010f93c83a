package parse

import (
	"errors"
	"fmt"
	"io"
	"regexp"
)

// ErrNoPart means a part number names no attachment of the message.
var ErrNoPart = errors.New("no such attachment part")

// partRE matches a part number: "2", "1.3", "3.1.2".
var partRE = regexp.MustCompile(`^[1-9][0-9]{0,5}(\.[1-9][0-9]{0,5}){0,99}$`)

// OpenPart returns the decoded content of the attachment Parse listed with
// Attachment.Part equal to part: the bytes its Size and SHA256 describe
// (transfer encoding undone, text converted to UTF-8). It reads r with the
// walker that made the listing; given the Options the listing was made
// with, it reaches every attachment Parse listed, cut where Parse cut it,
// and no other.
//
// The content streams out of r as it is read, so memory stays bounded
// whatever its size. The caller reads to the end or closes the returned
// reader; Close stops the walk and waits for it, and r must not be used
// before. A read error of r surfaces from Read. A part that names no
// attachment (a body, a multipart, a number past the end or beyond a
// limit) is an error wrapping ErrNoPart.
func OpenPart(r io.Reader, opts Options, part string) (io.ReadCloser, error) {
	if !partRE.MatchString(part) {
		return nil, fmt.Errorf("parse: part %q: %w: want a part number such as 2 or 1.3", part, ErrNoPart)
	}
	opts = opts.withDefaults()
	opts.InlineLimit = -1 // the listing's content is not needed, only its walk
	pr, pw := io.Pipe()
	t := &target{part: part, w: pw, found: make(chan error, 1)}
	p := &parser{
		opts: opts,
		src:  &source{r: r, limit: opts.rawLimit()},
		msg:  &Message{Attachments: []Attachment{}},
		tgt:  t,
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		err := p.runTarget()
		if !t.hit {
			if err == nil {
				err = fmt.Errorf("parse: part %q: %w (the message lists %d attachments)", part, ErrNoPart, len(p.msg.Attachments))
			}
			t.found <- err
			return
		}
		pw.CloseWithError(err) // nil: the reader gets io.EOF
	}()
	if err := <-t.found; err != nil {
		<-done
		return nil, err
	}
	return &partReader{PipeReader: pr, done: done}, nil
}

// runTarget walks the message for OpenPart. It returns the read error of
// the message, or a panic as an error.
func (p *parser) runTarget() (err error) {
	defer func() {
		if v := recover(); v != nil {
			p.stop = true
			err = fmt.Errorf("parse: part %q: internal error: %v", p.tgt.part, v)
		}
	}()
	p.run()
	if p.src.ioErr != nil {
		return fmt.Errorf("parse: read message: %w", p.src.ioErr)
	}
	return nil
}

// target is the part OpenPart streams out.
type target struct {
	part  string
	w     *io.PipeWriter
	hit   bool
	found chan error // nil once the part is reached, else why it was not
	err   error      // the first write error: the reader was closed
}

// target returns w, or, when part is the part OpenPart wants, w teed into
// OpenPart's reader and hit true: the walk stops after this part.
func (p *parser) target(part string, w io.Writer) (io.Writer, bool) {
	t := p.tgt
	if t == nil || t.hit || part != t.part {
		return w, false
	}
	t.hit = true
	t.found <- nil
	return io.MultiWriter(w, targetWriter{p}), true
}

// targetWriter writes to OpenPart's reader; when that was closed, it
// stops the walk.
type targetWriter struct{ p *parser }

func (tw targetWriter) Write(b []byte) (int, error) {
	t := tw.p.tgt
	if t.err != nil {
		return 0, t.err
	}
	n, err := t.w.Write(b)
	if err != nil {
		t.err = err
		tw.p.stop = true
	}
	return n, err
}

// partReader is the reader OpenPart returns.
type partReader struct {
	*io.PipeReader
	done chan struct{}
}

// Close stops the walk and waits until it has stopped reading the message.
func (r *partReader) Close() error {
	r.PipeReader.Close()
	<-r.done
	return nil
}
