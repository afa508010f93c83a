package admin

// The JSON API over the message history: messages, raw sources,
// refusals, chart series; and the JSON answers every endpoint uses.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/mailhook/mailhook/deliver"
)

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}

func writeError(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, map[string]string{"error": msg})
}

// internalError logs err and answers 500 without details.
func (s *Server) internalError(w http.ResponseWriter, r *http.Request, err error) {
	s.log.Error("admin request failed", "path", r.URL.Path, "err", err)
	writeError(w, http.StatusInternalServerError, "internal error (see the server log)")
}

func parseTime(v string) (time.Time, error) {
	if v == "" {
		return time.Time{}, nil
	}
	return time.Parse(time.RFC3339, v)
}

func (s *Server) listMessages(w http.ResponseWriter, r *http.Request) {
	if s.opts.Activity == nil {
		writeError(w, http.StatusServiceUnavailable, "the activity store is not enabled")
		return
	}
	v := r.URL.Query()
	q := Query{Rcpt: v.Get("rcpt"), Route: v.Get("route"), Status: v.Get("status"), Text: v.Get("q"), Cursor: v.Get("cursor")}
	if id := strings.TrimSpace(q.Text); id != "" && q.Cursor == "" {
		// Any of a message's ids finds it, even those (job ids) the list
		// does not show.
		if d, err := s.opts.Activity.Message(id); err == nil {
			writeJSON(w, http.StatusOK, map[string]any{"messages": []MessageSummary{d.MessageSummary}, "next": ""})
			return
		}
	}
	var err error
	if q.Since, err = parseTime(v.Get("since")); err != nil {
		writeError(w, http.StatusBadRequest, "since: want an RFC 3339 time")
		return
	}
	if q.Until, err = parseTime(v.Get("until")); err != nil {
		writeError(w, http.StatusBadRequest, "until: want an RFC 3339 time")
		return
	}
	if l := v.Get("limit"); l != "" {
		if q.Limit, err = strconv.Atoi(l); err != nil || q.Limit < 1 {
			writeError(w, http.StatusBadRequest, "limit: want a positive number (at most 500)")
			return
		}
	}
	page, next, err := s.opts.Activity.Messages(q)
	if errors.Is(err, ErrBadCursor) {
		writeError(w, http.StatusBadRequest, "cursor: not a cursor this API returned")
		return
	}
	if err != nil {
		s.internalError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"messages": page, "next": next})
}

func (s *Server) getMessage(w http.ResponseWriter, r *http.Request) {
	d, err := FindMessage(r.Context(), s.opts.Queue, s.opts.Activity, r.PathValue("id"), s.now())
	if errors.Is(err, ErrNotFound) {
		writeError(w, http.StatusNotFound, "no such message (no message, stable id or job has this id)")
		return
	}
	if err != nil {
		s.internalError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, d)
}

// FindMessage returns what is known about the message any of whose ids is
// id (its msg_id, its stable id, or a job id, which is the webhook-id of a
// webhook delivery): the activity store's record, else what the queue still
// holds, with each job's live state in the queue. act or q may be nil. It
// returns ErrNotFound when neither knows the id.
func FindMessage(ctx context.Context, q Queue, act *Activity, id string, now time.Time) (*MessageDetail, error) {
	var d *MessageDetail
	if act != nil {
		var err error
		d, err = act.Message(id)
		if err != nil && !errors.Is(err, ErrNotFound) {
			return nil, err
		}
	}
	if d == nil {
		var err error
		if d, err = detailFromQueue(ctx, q, id, now); errors.Is(err, deliver.ErrNotFound) {
			return nil, ErrNotFound
		} else if err != nil {
			return nil, err
		}
	}
	addQueueState(ctx, q, d, now)
	return d, nil
}

// detailFromQueue builds what it can of a message the activity store does
// not know from the queue; id is the message's or one of its jobs'.
func detailFromQueue(ctx context.Context, q Queue, id string, now time.Time) (*MessageDetail, error) {
	if q == nil {
		return nil, deliver.ErrNotFound
	}
	mail, err := q.Mail(ctx, id)
	if errors.Is(err, deliver.ErrNotFound) {
		j, jerr := q.Get(ctx, id)
		if jerr != nil {
			return nil, err
		}
		id = j.MsgID
		mail, err = q.Mail(ctx, id)
	}
	if err != nil {
		return nil, err
	}
	jobs, err := q.List(ctx, deliver.ListOptions{MsgID: id, Limit: 1000})
	if err != nil {
		return nil, err
	}
	d := &MessageDetail{RawSize: mail.RawSize, Envelope: mail.Envelope, Auth: mail.Auth}
	d.Message, d.Truncated = trimMessage(mail.Message)
	d.ID, d.StableID, d.ReceivedAt, d.MailFrom, d.RcptTo = mail.ID, mail.StableID, mail.ReceivedAt, mail.Envelope.MailFrom, mail.Envelope.RcptTo
	d.Timeline = []Event{{At: mail.ReceivedAt, Type: "accepted"}}
	d.HasRaw = true
	for _, j := range jobs {
		jr := newJobRecord(j)
		for _, a := range j.History {
			jr.Attempts = append(jr.Attempts, newAttemptRecord(a, ""))
		}
		switch j.StateAt(now) {
		case deliver.StateDead:
			jr.Status = StatusDead
		default:
			if len(j.History) > 0 {
				jr.Status = StatusRetrying
			}
		}
		d.Jobs = append(d.Jobs, jr)
		if j.Route != "" {
			d.Routes = append(d.Routes, j.Route)
		}
	}
	d.Status = messageStatus(d.Jobs)
	d.MessageSummary.Jobs = len(d.Jobs)
	return d, nil
}

// addQueueState fills each job's live state from the queue.
func addQueueState(ctx context.Context, q deliver.Operator, d *MessageDetail, now time.Time) {
	if q == nil {
		return
	}
	for i := range d.Jobs {
		j, err := q.Get(ctx, d.Jobs[i].ID)
		if err != nil {
			continue
		}
		d.Jobs[i].QueueState = j.StateAt(now)
		if d.Jobs[i].QueueState != deliver.StateDead {
			t := j.NextAt
			d.Jobs[i].NextAt = &t
		}
	}
}

func (s *Server) getRaw(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	rc, err := s.openRaw(r.Context(), id)
	if errors.Is(err, ErrNotFound) {
		writeError(w, http.StatusNotFound, "no raw source kept for this message")
		return
	}
	if err != nil {
		s.internalError(w, r, err)
		return
	}
	defer rc.Close()
	h := w.Header()
	h.Set("Content-Type", "message/rfc822")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Content-Security-Policy", "sandbox")
	h.Set("Content-Disposition", attachmentDisposition(id+".eml"))
	if _, err := io.Copy(w, rc); err != nil {
		s.log.Debug("admin: raw copy ended", "msg_id", id, "err", err)
	}
}

// openRaw opens the activity store's copy of a raw message, else the
// queue's.
func (s *Server) openRaw(ctx context.Context, id string) (io.ReadCloser, error) {
	if s.opts.Activity != nil {
		f, err := s.opts.Activity.OpenRaw(id)
		if err == nil {
			return f, nil
		}
		if !errors.Is(err, ErrNotFound) {
			return nil, err
		}
	}
	if s.opts.Queue != nil {
		rc, err := s.opts.Queue.OpenRaw(ctx, id)
		if errors.Is(err, deliver.ErrNotFound) {
			return nil, ErrNotFound
		}
		return rc, err
	}
	return nil, ErrNotFound
}

func (s *Server) listRefused(w http.ResponseWriter, r *http.Request) {
	if s.opts.Activity == nil {
		writeError(w, http.StatusServiceUnavailable, "the activity store is not enabled")
		return
	}
	since, err := parseTime(r.URL.Query().Get("since"))
	if err != nil {
		writeError(w, http.StatusBadRequest, "since: want an RFC 3339 time")
		return
	}
	v := r.URL.Query()
	limit, _ := strconv.Atoi(v.Get("limit"))
	list, err := s.opts.Activity.RefusalsMatching(since, limit, refusedFilter(v.Get("q"), v.Get("stage"), v.Get("class")))
	if err != nil {
		s.internalError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"refused": list})
}

// refusedFilter matches refusals by text (in the client IP, MAIL FROM,
// recipients or reply), SMTP stage, and reply class ("4xx" or "5xx"); nil
// when there is nothing to filter by.
func refusedFilter(text, stage, class string) func(*Refused) bool {
	text = strings.ToLower(strings.TrimSpace(text))
	if text == "" && stage == "" && class == "" {
		return nil
	}
	return func(r *Refused) bool {
		if stage != "" && r.Stage != stage {
			return false
		}
		if class != "" && fmt.Sprintf("%dxx", r.Code/100) != class {
			return false
		}
		if text == "" {
			return true
		}
		for _, f := range append([]string{r.RemoteIP, r.MailFrom, r.Reason, r.Enhanced, strconv.Itoa(r.Code)}, r.Rcpts...) {
			if strings.Contains(strings.ToLower(f), text) {
				return true
			}
		}
		return false
	}
}

// maxSeriesHours bounds /api/series?hours=.
const maxSeriesHours = 24 * 7

func (s *Server) series(w http.ResponseWriter, r *http.Request) {
	if s.opts.Activity == nil {
		writeError(w, http.StatusServiceUnavailable, "the activity store is not enabled")
		return
	}
	hours := 6
	if v := r.URL.Query().Get("hours"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > maxSeriesHours {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("hours: want 1 to %d", maxSeriesHours))
			return
		}
		hours = n
	}
	// About 180 points whatever the span.
	step := max(time.Duration(hours)*time.Hour/180, time.Minute).Truncate(time.Minute)
	pts, err := s.opts.Activity.Series(s.now().Add(-time.Duration(hours)*time.Hour), step)
	if err != nil {
		s.internalError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"step_seconds": int(step / time.Second), "points": pts})
}
