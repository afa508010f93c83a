package ingest

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base32"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/mailhook/mailhook/header"
)

// readBufSize is the buffer DATA is read through; pooled, so a session
// costs no allocation per message for it.
const readBufSize = 64 << 10

var readBufPool = sync.Pool{New: func() any { b := make([]byte, readBufSize); return &b }}

// memMax is the largest message kept in memory while it is received;
// a larger one goes to a spool file from the byte that passes it, so
// memory per session stays bounded whatever the message size. Below it a
// message reaches the disk once, in the queue's commit; above it, it is
// written to the spool file and again as the final file (finalize), which
// cost serve 14% more CPU per 100 KB message than holding it (Postfix's
// smtp-source, 100 KB × 20 sessions).
const memMax = 256 << 10

// memPool's buffers start at the size most mail fits in and grow to memMax.
var memPool = sync.Pool{New: func() any { return bytes.NewBuffer(make([]byte, 0, 64<<10)) }}

// spool receives the data of one message in one pass: it checks line
// endings (a bare CR or LF fails the message: SMTP smuggling) and hashes
// the bytes for the stable id. A small message stays in a pooled buffer and
// reaches the disk once, as the final file; a large one streams to a
// temporary file in dir and is never held in memory.
type spool struct {
	dir  string
	mem  *bytes.Buffer // the message while it is small
	f    *os.File      // the spool file once it is not
	size int64
	sum  hash.Hash
	// prevCR is true when the last byte seen was CR.
	prevCR bool
	bare   bool
	nul    bool
}

func newSpool(dir string) (*spool, error) {
	mem := memPool.Get().(*bytes.Buffer)
	mem.Reset()
	return &spool{dir: dir, mem: mem, sum: sha256.New()}, nil
}

// write appends chunk, moving to a spool file when the message outgrows
// memMax.
func (s *spool) write(chunk []byte) error {
	if s.f == nil && s.mem.Len()+len(chunk) <= memMax {
		s.mem.Write(chunk)
		return nil
	}
	if s.f == nil {
		f, err := os.CreateTemp(s.dir, "incoming-*.tmp")
		if err != nil {
			return fmt.Errorf("ingest: spool: %w", err)
		}
		s.f = f
		if _, err := f.Write(s.mem.Bytes()); err != nil {
			return fmt.Errorf("ingest: spool write: %w", err)
		}
	}
	if _, err := s.f.Write(chunk); err != nil {
		return fmt.Errorf("ingest: spool write: %w", err)
	}
	return nil
}

// reader returns a new reader over the whole message received.
func (s *spool) reader() io.ReadSeeker {
	if s.f != nil {
		return io.NewSectionReader(s.f, 0, s.size)
	}
	return bytes.NewReader(s.mem.Bytes())
}

// receive copies r to the spool file. It returns a reply (a bare
// *smtp.SMTPError, or a *Refusal) for the client's faults and a wrapped
// error for ours.
func (s *spool) receive(r io.Reader) error {
	bp := readBufPool.Get().(*[]byte)
	defer readBufPool.Put(bp)
	buf := *bp
	for {
		n, rerr := r.Read(buf)
		if n > 0 {
			chunk := buf[:n]
			s.checkEndings(chunk)
			if s.bare {
				return ErrBareLineEnding
			}
			if s.nul {
				return ErrNULInData
			}
			s.sum.Write(chunk)
			s.size += int64(n)
			if err := s.write(chunk); err != nil {
				return err
			}
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			var se *smtp.SMTPError
			switch {
			case errors.As(rerr, &se):
				return Refuse(se, ReasonSize) // 552 5.3.4 past the size limit
			case errors.Is(rerr, smtp.ErrTooLongLine):
				return ErrLineTooLong
			}
			return fmt.Errorf("ingest: reading data: %w", rerr)
		}
	}
	// The data reader hands over the final CRLF before ".", so a message
	// ending in a bare CR shows here.
	if s.prevCR {
		return ErrBareLineEnding
	}
	return nil
}

// checkEndings sets s.bare on a CR not followed by LF or an LF not preceded
// by CR. go-smtp ends data only at <CRLF>.<CRLF>; refusing any bare ending
// as well means no other MTA downstream can be made to see a different end
// of data than we did (the SMTP smuggling variants: <LF>.<LF>, <LF>.<CRLF>,
// <CR>.<CR>, <CRLF>.<LF> and friends).
func (s *spool) checkEndings(b []byte) {
	// The scans are bytes.IndexByte's (vectorised): a byte-at-a-time loop
	// over every byte received was 6% of serve's CPU at 100 KB.
	if k := bytes.IndexByte(b, 0); k >= 0 {
		// What comes before the NUL decides first, as a client reading
		// the reply would expect of a check made in order.
		if s.checkLines(b[:k]); !s.bare {
			s.nul = true
		}
		return
	}
	s.checkLines(b)
}

// checkLines is checkEndings for b without NULs: each LF must follow a CR
// and each CR precede an LF.
func (s *spool) checkLines(b []byte) {
	prevCR := s.prevCR
	for len(b) > 0 {
		if prevCR {
			if b[0] != '\n' {
				s.bare = true
				return
			}
			prevCR = false
			b = b[1:]
			continue
		}
		i := bytes.IndexByte(b, '\n')
		line := b
		if i >= 0 {
			line = b[:i]
		}
		cr := bytes.IndexByte(line, '\r')
		if i < 0 {
			// The rest holds no LF: it may end in the CR of one to come.
			if cr >= 0 && cr != len(line)-1 {
				s.bare = true
				return
			}
			prevCR = cr >= 0
			break
		}
		if i == 0 || cr != i-1 {
			s.bare = true
			return
		}
		b = b[i+1:]
	}
	s.prevCR = prevCR
}

// abandon keeps the buffer from the pool: a reader of it (a parser that
// did not finish) may still be running.
func (s *spool) abandon() { s.mem = nil }

// discard removes the spool file and returns the buffer.
func (s *spool) discard() {
	if s.f != nil {
		name := s.f.Name()
		s.f.Close()
		os.Remove(name)
		s.f = nil
	}
	if s.mem != nil {
		if s.mem.Cap() <= 2*memMax {
			memPool.Put(s.mem)
		}
		s.mem = nil
	}
}

// Buffers of spool.header and writeFinal, pooled: a message costs none.
var (
	headerReaders = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, 32<<10) }}
	finalWriters  = sync.Pool{New: func() any { return bufio.NewWriterSize(nil, 32<<10) }}
)

// header reads the header section of the message received, by the one
// rule of package header. (The header returned holds copies, nothing of
// the reader's buffer.)
func (s *spool) header(limit int) (*header.Header, error) {
	br := headerReaders.Get().(*bufio.Reader)
	br.Reset(s.reader())
	defer func() {
		br.Reset(nil)
		headerReaders.Put(br)
	}()
	return header.Read(br, limit)
}

// finalize writes the message as it will be stored and delivered: our
// trace fields first (RFC 5321 §4.4: each server prepends), then the header
// as hdr read it, without the fields for which drop is true (forged
// Authentication-Results, RFC 8601 §5), then the body. When nothing is
// dropped and the header ended with an empty line, the message follows our
// fields exactly as received; otherwise the header is written again, with
// the empty line header.Header.Write always puts, so that every reader of
// the copy sees the fields we saw.
//
// A message that stayed in memory is returned as bytes (raw): it reaches
// the disk once, in the queue's commit, with no file of its own. A larger
// one is written to a new file in dir, whose path is returned. It also
// returns the size and the indexes of the dropped fields. The spool file is
// removed.
func (s *spool) finalize(dir, id string, prepend []Field, hdr *header.Header, drop func(int, header.Field) bool) (path string, raw []byte, size int64, dropped map[int]bool, err error) {
	defer s.discard()
	if s.f == nil {
		var b bytes.Buffer
		b.Grow(int(s.size) + 1024)
		if dropped, err = s.writeFinal(&b, prepend, hdr, drop); err != nil {
			return "", nil, 0, nil, err
		}
		return "", b.Bytes(), int64(b.Len()), dropped, nil
	}
	// 0600: the message is private mail; the queue moves this file and
	// the admin history hard-links it, so its mode is theirs too.
	out, err := os.OpenFile(filepath.Join(dir, "msg-"+id+".eml"), os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return "", nil, 0, nil, fmt.Errorf("ingest: spool: %w", err)
	}
	ok := false
	defer func() {
		if !ok {
			out.Close()
			os.Remove(out.Name())
		}
	}()
	if dropped, err = s.writeFinal(out, prepend, hdr, drop); err != nil {
		return "", nil, 0, nil, err
	}
	st, err := out.Stat()
	if err != nil {
		return "", nil, 0, nil, fmt.Errorf("ingest: spool: %w", err)
	}
	if err := out.Close(); err != nil {
		return "", nil, 0, nil, fmt.Errorf("ingest: spool: %w", err)
	}
	ok = true
	return out.Name(), nil, st.Size(), dropped, nil
}

// writeFinal writes the message as finalize describes to out and returns
// the indexes of the dropped fields.
func (s *spool) writeFinal(out io.Writer, prepend []Field, hdr *header.Header, drop func(int, header.Field) bool) (map[int]bool, error) {
	src := s.reader()
	w := finalWriters.Get().(*bufio.Writer)
	w.Reset(out)
	defer func() {
		w.Reset(nil)
		finalWriters.Put(w)
	}()
	for _, f := range prepend {
		if _, err := fmt.Fprintf(w, "%s: %s\r\n", f.Name, f.Value); err != nil {
			return nil, fmt.Errorf("ingest: spool: %w", err)
		}
	}
	dropped := map[int]bool{}
	for i, f := range hdr.Fields {
		if drop != nil && drop(i, f) {
			dropped[i] = true
		}
	}
	if len(dropped) > 0 || hdr.End != header.EndBlank {
		if err := hdr.Write(w, func(i int, _ header.Field) bool { return !dropped[i] }); err != nil {
			return nil, fmt.Errorf("ingest: spool: %w", err)
		}
		if _, err := src.Seek(hdr.BodyOffset, io.SeekStart); err != nil {
			return nil, fmt.Errorf("ingest: spool: %w", err)
		}
	}
	if err := w.Flush(); err != nil {
		return nil, fmt.Errorf("ingest: spool: %w", err)
	}
	// The body (or the whole message) streams from the buffer or the
	// spool file, never held twice.
	if _, err := io.Copy(out, src); err != nil {
		return nil, fmt.Errorf("ingest: spool: %w", err)
	}
	return dropped, nil
}

// Field is a header field to prepend.
type Field struct{ Name, Value string }

// stableID derives the id that is the same when the sending MTA retries the
// same message after a lost 250: the envelope and the data's hash.
func stableID(mailFrom string, rcpts []string, dataSum []byte) string {
	h := sha256.New()
	h.Write([]byte(strings.ToLower(mailFrom)))
	h.Write([]byte{0})
	rs := append([]string(nil), rcpts...)
	sort.Strings(rs)
	for _, r := range rs {
		h.Write([]byte(strings.ToLower(r)))
		h.Write([]byte{0})
	}
	h.Write(dataSum)
	return idEncoding.EncodeToString(h.Sum(nil)[:16])
}

var idEncoding = base32.NewEncoding("0123456789abcdefghjkmnpqrstvwxyz").WithPadding(base32.NoPadding)

// newID returns a unique, time-ordered id: 48 bits of milliseconds and 80
// random bits (like a ULID), 26 characters.
func newID(now time.Time) string {
	var b [16]byte
	binary.BigEndian.PutUint64(b[:8], uint64(now.UnixMilli())<<16)
	if _, err := rand.Read(b[6:]); err != nil {
		panic(err) // crypto/rand never fails on Linux
	}
	return idEncoding.EncodeToString(b[:])
}

// cleanSpool removes spool files left by a crash: they were never
// acknowledged (the commit step takes ownership before 250).
func cleanSpool(dir string) error {
	for _, pat := range []string{"incoming-*.tmp", "msg-*.eml"} {
		names, err := filepath.Glob(filepath.Join(dir, pat))
		if err != nil {
			return err
		}
		for _, n := range names {
			os.Remove(n)
		}
	}
	return nil
}
