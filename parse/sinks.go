package parse

// The writers a part's decoded bytes go to: bounded buffers, the
// attachment sink (size, hash, inline content) and the chunks a text body
// is gathered in.

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"hash"
	"io"
	"strings"
)

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
