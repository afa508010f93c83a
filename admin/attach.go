package admin

// Attachment URLs: signing them, and serving the attachment they name.

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/mailhook/mailhook/config"
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

// AttachmentLinker gives the attachments a message's webhook payload does
// not carry (over parse.inline_limit) a signed URL under the admin
// listener, or, when there is none, a parse warning saying so.
type AttachmentLinker struct {
	Key AttachmentKey
	// Base is the URLs' base (AttachmentBase); "" means no URL can be
	// given.
	Base string
	// TTL is how long a URL works (the activity retention, as long as the
	// raw message is kept).
	TTL time.Duration
	// Now returns the current time; nil means time.Now.
	Now func() time.Time
}

// Link completes msg, parsed from message msgID (ingest's Attachments).
func (l *AttachmentLinker) Link(msg *parse.Message, msgID string) {
	if msg == nil {
		return
	}
	if l.Base == "" || len(l.Key) == 0 {
		for i, at := range msg.Attachments {
			if at.Content == "" && at.URL == "" && at.Size > 0 {
				msg.Warnings = append(msg.Warnings, fmt.Sprintf(
					"attachment %d (%q, %d bytes) is over parse.inline_limit and has no url: the gateway has no admin.public_url or admin.listen", i, at.Filename, at.Size))
			}
		}
		return
	}
	now := time.Now
	if l.Now != nil {
		now = l.Now
	}
	l.Key.FillAttachmentURLs(msg, l.Base, msgID, now().Add(l.TTL))
}

// AttachmentBase returns the base of the URLs of attachments over
// parse.inline_limit: admin.public_url, or else the admin listener (the
// host name for an unspecified address), with a warning that receivers
// elsewhere may not reach it; or "" and a warning when there is no admin
// listener either.
func AttachmentBase(c *config.Config) (base, warning string) {
	if c.Admin.PublicURL != "" {
		return strings.TrimSuffix(c.Admin.PublicURL, "/"), ""
	}
	limit := fmt.Sprintf("attachments over parse.inline_limit (%d bytes)", c.Parse.InlineLimit)
	host, port, err := net.SplitHostPort(c.Admin.Listen)
	if c.Admin.Listen == "" || err != nil {
		return "", "admin.public_url and admin.listen are not set: " + limit + " reach webhooks with neither content nor url (the payload's parse_warnings says so)"
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = c.Hostname
	}
	base = "http://" + net.JoinHostPort(host, port)
	where := "receivers that reach it"
	if ip := net.ParseIP(host); (ip != nil && ip.IsLoopback()) || host == "localhost" {
		where = "only receivers on this machine"
	}
	return base, "admin.public_url is not set: " + limit + " get URLs under the admin listener " + base + ", which " + where +
		" can fetch; set admin.public_url to a base your webhook receivers reach"
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
// signature is checked first (403), then the expiry (410); the kept raw
// message is listed again by parse.Parse, and the index-th attachment
// streamed out of it by parse.OpenPart.
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
	// The listing (metadata only: nothing is inlined, memory stays
	// bounded), with the options ingest parsed with, so the index means
	// what it meant in the webhook.
	rc, err := s.openRaw(r.Context(), msgID)
	if errors.Is(err, ErrNotFound) {
		writeError(w, http.StatusNotFound, "the message is no longer kept")
		return
	}
	if err != nil {
		s.internalError(w, r, err)
		return
	}
	listOpts := s.opts.Parse
	listOpts.InlineLimit = -1
	msg, err := parse.Parse(rc, listOpts)
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
	// The part itself, opened by the walker that listed it.
	if rc, err = s.openRaw(r.Context(), msgID); errors.Is(err, ErrNotFound) {
		writeError(w, http.StatusNotFound, "the message is no longer kept") // purged meanwhile
		return
	} else if err != nil {
		s.internalError(w, r, err)
		return
	}
	defer rc.Close()
	body, err := parse.OpenPart(rc, s.opts.Parse, att.Part)
	if errors.Is(err, parse.ErrNoPart) {
		writeError(w, http.StatusNotFound, "no such attachment")
		return
	} else if err != nil {
		s.internalError(w, r, err)
		return
	}
	defer body.Close()
	// A HEAD neither downloads nor uses up a one-time link.
	if s.opts.AttachmentOnce && r.Method != http.MethodHead {
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
		w.WriteHeader(http.StatusOK)
		return
	}
	if _, err := io.Copy(w, body); err != nil {
		s.log.Debug("attachment copy ended", "msg_id", msgID, "index", index, "err", err)
	}
}
