package admin

import (
	"bufio"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/emersion/go-message"
	"github.com/emersion/go-message/textproto"

	"github.com/mailhook/mailhook/parse"
)

// AttachmentKey signs and checks attachment URLs (HMAC-SHA256). It must be
// secret and at least 32 random bytes; every node serving the URLs needs
// the same key.
type AttachmentKey []byte

// Attachment URL errors, from Check.
var (
	ErrBadSignature = errors.New("admin: bad attachment signature")
	ErrExpired      = errors.New("admin: attachment link expired")
)

// maxAttachmentIndex bounds the index in an attachment URL.
const maxAttachmentIndex = 10000

// mac computes the URL signature: HMAC-SHA256 over a versioned,
// unambiguous encoding of the message ID, the attachment index and the
// expiry.
func (k AttachmentKey) mac(msgID string, index int, exp int64) []byte {
	m := hmac.New(sha256.New, k)
	var b [8]byte
	m.Write([]byte("mailhook attachment v1\x00"))
	binary.BigEndian.PutUint64(b[:], uint64(len(msgID)))
	m.Write(b[:])
	m.Write([]byte(msgID))
	binary.BigEndian.PutUint64(b[:], uint64(index))
	m.Write(b[:])
	binary.BigEndian.PutUint64(b[:], uint64(exp))
	m.Write(b[:])
	return m.Sum(nil)
}

// SignAttachmentURL returns the URL under base (the admin or public
// listener's external URL, e.g. "https://mx.example.test:8025") at which the
// index-th attachment of message msgID can be fetched until exp.
func (k AttachmentKey) SignAttachmentURL(base, msgID string, index int, exp time.Time) string {
	sig := base64.RawURLEncoding.EncodeToString(k.mac(msgID, index, exp.Unix()))
	return strings.TrimRight(base, "/") + "/attachments/" + url.PathEscape(msgID) + "/" + strconv.Itoa(index) +
		"?exp=" + strconv.FormatInt(exp.Unix(), 10) + "&sig=" + sig
}

// FillAttachmentURLs sets URL on every attachment of msg whose content was
// left out (over the inline limit), signed until exp.
func (k AttachmentKey) FillAttachmentURLs(msg *parse.Message, base, msgID string, exp time.Time) {
	if msg == nil || len(k) == 0 {
		return
	}
	for i := range msg.Attachments {
		if a := &msg.Attachments[i]; a.Content == "" && a.Size > 0 {
			a.URL = k.SignAttachmentURL(base, msgID, i, exp)
		}
	}
}

// Check verifies an attachment URL's signature (in constant time) and
// then its expiry. sig and exp are the query values.
func (k AttachmentKey) Check(msgID string, index int, expParam, sig string, now time.Time) error {
	exp, err := strconv.ParseInt(expParam, 10, 64)
	if err != nil || len(k) == 0 {
		return ErrBadSignature
	}
	got, err := base64.RawURLEncoding.DecodeString(sig)
	if err != nil || !hmac.Equal(got, k.mac(msgID, index, exp)) {
		return ErrBadSignature
	}
	if now.Unix() >= exp {
		return ErrExpired
	}
	return nil
}

// Bounds on the MIME walk of a raw message when serving an attachment
// (parse's defaults, so nothing parse listed is out of reach).
const (
	walkMaxDepth = parse.DefaultMaxDepth
	walkMaxParts = parse.DefaultMaxParts * 2
)

// partVisitor receives the entities of a message in pre-order, each with
// its decoded body (transfer encoding undone, text converted to UTF-8: the
// bytes parse hashes for Attachment.SHA256).
type partVisitor interface {
	// leaf gets a body that is neither multipart nor a message.
	leaf(ord int, body io.Reader) (stop bool, err error)
	// enter gets the body of an encapsulated message (RFC 2046 §5.2.1)
	// and returns the reader to walk its inside through, or nil when it
	// consumed the body.
	enter(ord int, body io.Reader) (r io.Reader, stop bool, err error)
	// leave follows enter once the whole body was read.
	leave(ord int)
}

// walker walks the MIME tree of a raw message (RFC 2045, RFC 2046).
type walker struct {
	v     partVisitor
	n     int
	stop  bool
	err   error
	depth int
}

func walkMessage(r io.Reader, v partVisitor) error {
	w := &walker{v: v}
	br := bufio.NewReaderSize(r, 32<<10)
	h, err := textproto.ReadHeader(br)
	if err != nil {
		return fmt.Errorf("read header: %w", err)
	}
	w.entity(message.Header{Header: h}, br, 0)
	return w.err
}

func (w *walker) fail(err error) {
	if err != nil && w.err == nil {
		w.err = err
	}
	w.stop = true
}

func (w *walker) entity(h message.Header, body io.Reader, depth int) {
	if w.stop {
		return
	}
	if w.n >= walkMaxParts {
		w.stop = true
		return
	}
	ord := w.n
	w.n++
	mt, params, _ := h.ContentType()
	if strings.HasPrefix(mt, "multipart/") && params["boundary"] != "" {
		if depth >= walkMaxDepth {
			return
		}
		mr := textproto.NewMultipartReader(body, params["boundary"])
		for !w.stop {
			p, err := mr.NextPart()
			if err != nil {
				return // the end, or a broken multipart: nothing more here
			}
			w.entity(message.Header{Header: p.Header}, p, depth+1)
		}
		return
	}
	e, _ := message.New(h, body) // unknown encodings and charsets pass through as is
	if mt == "message/rfc822" || mt == "message/global" {
		r, stop, err := w.v.enter(ord, e.Body)
		if stop || err != nil {
			w.fail(err)
			return
		}
		if r != nil {
			br := bufio.NewReaderSize(r, 4096)
			if depth < walkMaxDepth {
				if ih, err := textproto.ReadHeader(br); err == nil {
					w.entity(message.Header{Header: ih}, br, depth+1)
				}
			}
			if !w.stop {
				if _, err := io.Copy(io.Discard, br); err != nil {
					w.fail(err)
				}
			}
		}
		if !w.stop {
			w.v.leave(ord)
		}
		return
	}
	stop, err := w.v.leaf(ord, e.Body)
	if stop || err != nil {
		w.fail(err)
	}
}

// hashFinder finds the first entity whose decoded body has a given
// SHA-256.
type hashFinder struct {
	want  string
	found int
	open  map[int]hash.Hash
}

func (f *hashFinder) leaf(ord int, body io.Reader) (bool, error) {
	h := sha256.New()
	io.Copy(h, body) // after a broken encoding parse hashed what decoded, and so do we
	if hex.EncodeToString(h.Sum(nil)) == f.want {
		f.found = ord
		return true, nil
	}
	return false, nil
}

func (f *hashFinder) enter(ord int, body io.Reader) (io.Reader, bool, error) {
	h := sha256.New()
	f.open[ord] = h
	return io.TeeReader(body, h), false, nil
}

func (f *hashFinder) leave(ord int) {
	h := f.open[ord]
	delete(f.open, ord)
	if h != nil && f.found < 0 && hex.EncodeToString(h.Sum(nil)) == f.want {
		f.found = ord
	}
}

// partCopier copies the body of entity target to w.
type partCopier struct {
	target int
	w      io.Writer
	n      int64
	done   bool
}

func (c *partCopier) leaf(ord int, body io.Reader) (bool, error) {
	if ord != c.target {
		return false, nil
	}
	return true, c.copy(body)
}

func (c *partCopier) enter(ord int, body io.Reader) (io.Reader, bool, error) {
	if ord != c.target {
		return body, false, nil
	}
	return nil, true, c.copy(body)
}

func (c *partCopier) leave(int) {}

func (c *partCopier) copy(body io.Reader) error {
	c.done = true
	n, err := io.Copy(c.w, body)
	c.n = n
	var werr dstError
	if errors.As(err, &werr) {
		return werr.err
	}
	return nil // a decoding error ends the part where parse ended it
}

// dstError marks errors of the destination, to tell them from decoding
// errors of the source.
type dstError struct{ err error }

func (e dstError) Error() string { return e.err.Error() }

type markedWriter struct{ w io.Writer }

func (m markedWriter) Write(b []byte) (int, error) {
	n, err := m.w.Write(b)
	if err != nil {
		err = dstError{err}
	}
	return n, err
}

// attachmentDisposition returns a Content-Disposition value for serving a
// file: always "attachment", so that a browser never renders it in the
// admin origin (RFC 6266 §4), with the filename as RFC 2231 parameters.
func attachmentDisposition(name string) string {
	name = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f || r == '/' || r == '\\' {
			return '_'
		}
		return r
	}, name)
	if name == "" {
		name = "attachment"
	}
	if v := mime.FormatMediaType("attachment", map[string]string{"filename": name}); v != "" {
		return v
	}
	return "attachment"
}

// SignAttachmentURL signs an attachment URL with the server's
// AttachmentKey (see AttachmentKey.SignAttachmentURL).
func (s *Server) SignAttachmentURL(base, msgID string, index int, exp time.Time) string {
	return s.attKey.SignAttachmentURL(base, msgID, index, exp)
}

// FillAttachmentURLs sets the URL of msg's attachments that are not inline
// (see AttachmentKey.FillAttachmentURLs).
func (s *Server) FillAttachmentURLs(msg *parse.Message, base, msgID string, exp time.Time) {
	s.attKey.FillAttachmentURLs(msg, base, msgID, exp)
}

// attachment serves GET /attachments/{msgid}/{index}?exp=&sig=: the
// signature is checked first (403), then the expiry (410); the attachment
// is found by re-parsing the kept raw message and streamed out of it.
func (s *Server) attachment(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "private, no-store")
	if len(s.attKey) == 0 {
		writeError(w, http.StatusNotFound, "attachment links are not enabled")
		return
	}
	msgID := r.PathValue("msgid")
	index, err := strconv.Atoi(r.PathValue("index"))
	if err != nil || index < 0 || index > maxAttachmentIndex {
		writeError(w, http.StatusNotFound, "no such attachment")
		return
	}
	q := r.URL.Query()
	switch err := s.attKey.Check(msgID, index, q.Get("exp"), q.Get("sig"), s.now()); {
	case errors.Is(err, ErrExpired):
		writeError(w, http.StatusGone, "this attachment link has expired")
		return
	case err != nil:
		writeError(w, http.StatusForbidden, "bad attachment signature")
		return
	}
	open := func() (io.ReadCloser, error) { return s.openRaw(r.Context(), msgID) }
	// Pass 1: what parse lists as the index-th attachment (its metadata
	// only: nothing is inlined, memory stays bounded).
	rc, err := open()
	if errors.Is(err, ErrNotFound) {
		writeError(w, http.StatusNotFound, "the message is no longer kept")
		return
	}
	if err != nil {
		s.internalError(w, r, err)
		return
	}
	msg, err := parse.Parse(rc, parse.Options{InlineLimit: -1})
	rc.Close()
	if err != nil {
		s.internalError(w, r, err)
		return
	}
	if index >= len(msg.Attachments) {
		writeError(w, http.StatusNotFound, "no such attachment")
		return
	}
	att := msg.Attachments[index]
	// Pass 2: find the MIME entity holding exactly those bytes (by their
	// SHA-256, so what is served is what the webhook described).
	f := &hashFinder{want: att.SHA256, found: -1, open: map[int]hash.Hash{}}
	if err := s.walkRaw(open, f); err != nil {
		s.internalError(w, r, err)
		return
	}
	if f.found < 0 {
		s.log.Warn("attachment not found in raw message", "msg_id", msgID, "index", index)
		writeError(w, http.StatusNotFound, "the attachment could not be located in the raw message")
		return
	}
	h := w.Header()
	ct := att.ContentType
	if ct == "" {
		ct = "application/octet-stream"
	}
	if strings.HasPrefix(ct, "text/") {
		ct += "; charset=utf-8" // decoded to UTF-8, as parse hashed it
	}
	h.Set("Content-Type", ct)
	h.Set("Content-Disposition", attachmentDisposition(att.Filename))
	h.Set("Content-Length", strconv.FormatInt(att.Size, 10))
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Content-Security-Policy", "sandbox")
	if r.Method == http.MethodHead {
		w.WriteHeader(http.StatusOK) // a HEAD neither downloads nor uses up a one-time link
		return
	}
	if s.opts.AttachmentOnce {
		if s.opts.Activity == nil {
			writeError(w, http.StatusServiceUnavailable, "one-time attachment links need the activity store")
			return
		}
		exp, _ := strconv.ParseInt(q.Get("exp"), 10, 64)
		switch err := s.opts.Activity.Claim("att:"+q.Get("sig"), time.Unix(exp, 0)); {
		case errors.Is(err, ErrClaimed):
			writeError(w, http.StatusGone, "this attachment link was used already")
			return
		case err != nil:
			s.internalError(w, r, err)
			return
		}
	}
	// Pass 3: stream it out.
	c := &partCopier{target: f.found, w: markedWriter{w}}
	if err := s.walkRaw(open, c); err != nil {
		s.log.Debug("attachment copy ended", "msg_id", msgID, "index", index, "err", err)
	}
}

func (s *Server) walkRaw(open func() (io.ReadCloser, error), v partVisitor) error {
	rc, err := open()
	if err != nil {
		return err
	}
	defer rc.Close()
	return walkMessage(rc, v)
}
