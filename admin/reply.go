package admin

import (
	"encoding/json"
	"errors"
	"net/http"
	"time"

	"github.com/mailhook/mailhook/replyaddr"
)

// ReplyMinter mints a signed reply address for a thread (ttl zero: the
// configured default; negative: never expires). It returns
// ErrReplyNotConfigured when reply addresses are off.
type ReplyMinter func(thread string, ttl time.Duration) (replyaddr.Minted, error)

// ErrReplyNotConfigured means reply.secrets is not set.
var ErrReplyNotConfigured = errors.New("reply addresses are not configured (set reply.secrets)")

// replyRequest is the body of POST /api/reply-addresses.
type replyRequest struct {
	Thread string `json:"thread"`
	// TTL is like the command line's --ttl: "30d", "2w", "72h", "never";
	// empty for the configured default.
	TTL string `json:"ttl"`
}

// mintReply answers POST /api/reply-addresses with
// {"address", "thread", "expires_at"} (201).
func (s *Server) mintReply(w http.ResponseWriter, r *http.Request) {
	if s.opts.MintReply == nil {
		writeError(w, http.StatusNotFound, ErrReplyNotConfigured.Error())
		return
	}
	var req replyRequest
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 4<<10))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		writeError(w, http.StatusBadRequest, `want a JSON body like {"thread": "ticket-42", "ttl": "30d"}: `+err.Error())
		return
	}
	ttl, err := replyaddr.ParseTTL(req.TTL)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	m, err := s.opts.MintReply(req.Thread, ttl)
	switch {
	case errors.Is(err, ErrReplyNotConfigured):
		writeError(w, http.StatusNotFound, err.Error())
	case err != nil:
		writeError(w, http.StatusBadRequest, err.Error())
	default:
		writeJSON(w, http.StatusCreated, m)
	}
}
