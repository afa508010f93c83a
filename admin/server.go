package admin

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"strconv"
	"strings"
	"time"

	"github.com/mailhook/mailhook/deliver"
	"github.com/mailhook/mailhook/internal/loginlimit"
	"github.com/mailhook/mailhook/parse"
)

// ServerOptions configures NewServer.
type ServerOptions struct {
	// Token is the bearer token of the API and the dashboard's login. When
	// empty the API and the dashboard are disabled (403); health, readiness
	// and metrics still answer.
	Token string
	// Queue is the delivery queue the API inspects and acts on.
	Queue Queue
	// Activity is the message history; nil limits the message API to what
	// the queue still holds.
	Activity *Activity
	// Metrics is served on /metrics; nil leaves /metrics out.
	Metrics *Metrics
	// Ready reports whether the gateway can take traffic (store writable,
	// Redis reachable, listeners up); /readyz answers 503 with its error.
	// Nil means always ready.
	Ready func(ctx context.Context) error
	// AttachmentKey signs attachment URLs; empty disables /attachments/.
	AttachmentKey []byte
	// AttachmentOnce makes each attachment URL work for one download
	// only (later fetches get 410); it needs Activity, which remembers the
	// used links until they expire. Off by default: a receiver whose
	// download broke off may then fetch again until the expiry.
	AttachmentOnce bool
	// Logger receives request failures; nil discards.
	Logger *slog.Logger
	// EnablePprof serves /debug/pprof/ (behind the token).
	EnablePprof bool
	// MintReply serves POST /api/reply-addresses (reply.go); nil answers
	// 404.
	MintReply ReplyMinter
	// SessionTTL is how long a dashboard login lasts; zero means 12 hours.
	SessionTTL time.Duration
	// Now returns the current time; nil means time.Now.
	Now func() time.Time
	// RunningConfig returns the config.Fingerprint of what the server runs
	// (POST /api/config/diff); nil leaves that endpoint answering 501.
	RunningConfig func() map[string]string
	// Wake, when set, is called after jobs were made due by an operator
	// (retry now, replay), so the workers take them at once rather than
	// at their next poll.
	Wake func()
}

// Server is the admin listener: health and readiness probes, Prometheus
// metrics, the JSON API, the web dashboard and signed attachment URLs, all
// on one http.Handler.
//
// /healthz, /readyz and /metrics need no authentication, so admin.listen
// must stay on loopback or behind a firewall that only lets the monitoring
// system in. Everything else under /api/ and the dashboard needs the token.
type Server struct {
	opts     ServerOptions
	mux      *http.ServeMux
	hs       *http.Server
	tokenH   [32]byte
	attKey   AttachmentKey
	limiter  *loginlimit.Limiter
	sessions sessionStore
	log      *slog.Logger
	now      func() time.Time
}

// Header names of the dashboard's CSRF defence: a state-changing request
// authenticated by the session cookie must carry this header, which only
// same-origin JavaScript can set (a cross-site form cannot, and a
// cross-site fetch with it needs a CORS preflight we never grant).
const (
	csrfHeader  = "X-Mailhook-Request"
	sessionName = "mailhook_session"
)

// NewServer builds the admin server.
func NewServer(opts ServerOptions) *Server {
	s := &Server{opts: opts, mux: http.NewServeMux(), attKey: AttachmentKey(opts.AttachmentKey), log: opts.Logger, now: opts.Now}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.opts.SessionTTL <= 0 {
		s.opts.SessionTTL = 12 * time.Hour
	}
	if opts.Token != "" {
		s.tokenH = sha256.Sum256([]byte(opts.Token))
	}
	s.limiter = newAdminLimiter(s.now)
	s.routes()
	s.hs = &http.Server{
		Handler:           s,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       time.Minute,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
	return s
}

func (s *Server) routes() {
	m := s.mux
	m.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		io.WriteString(w, "ok\n")
	})
	m.HandleFunc("GET /readyz", s.readyz)
	if s.opts.Metrics != nil {
		m.Handle("GET /metrics", s.opts.Metrics.Handler())
	}

	m.HandleFunc("GET /api/session", s.api(func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]any{"ok": true})
	}))
	m.HandleFunc("GET /api/messages", s.api(s.listMessages))
	m.HandleFunc("GET /api/messages/{id}", s.api(s.getMessage))
	m.HandleFunc("GET /api/messages/{id}/raw", s.api(s.getRaw))
	m.HandleFunc("GET /api/refused", s.api(s.listRefused))
	m.HandleFunc("GET /api/queue/stats", s.api(s.queueStats))
	m.HandleFunc("GET /api/queue/dead", s.api(s.listDead))
	m.HandleFunc("POST /api/jobs/{id}/replay", s.api(s.replayJob))
	m.HandleFunc("POST /api/queue/replay", s.api(s.replayAll))
	m.HandleFunc("DELETE /api/jobs/{id}", s.api(s.dropJob))
	m.HandleFunc("GET /api/series", s.api(s.series))
	m.HandleFunc("POST /api/reply-addresses", s.api(s.mintReply))
	s.jobRoutes(m)
	m.HandleFunc("/api/", s.api(func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "no such API endpoint")
	}))

	m.HandleFunc("GET /attachments/{msgid}/{index}", s.attachment)

	m.HandleFunc("GET /{$}", s.dashboard(http.HandlerFunc(s.index)))
	m.Handle("GET /assets/", s.dashboard(s.assets()))
	m.HandleFunc("POST /login", s.dashboard(http.HandlerFunc(s.login)))
	m.HandleFunc("POST /logout", s.dashboard(http.HandlerFunc(s.logout)))

	if s.opts.EnablePprof {
		m.HandleFunc("/debug/pprof/", s.api(pprof.Index))
		m.HandleFunc("/debug/pprof/cmdline", s.api(pprof.Cmdline))
		m.HandleFunc("/debug/pprof/profile", s.api(pprof.Profile))
		m.HandleFunc("/debug/pprof/symbol", s.api(pprof.Symbol))
		m.HandleFunc("/debug/pprof/trace", s.api(pprof.Trace))
	}
}

// PublicHandler serves only the signed attachment URLs (and /healthz), for
// a listener that receivers of webhooks can reach while admin.listen stays
// private.
func (s *Server) PublicHandler() http.Handler {
	m := http.NewServeMux()
	m.HandleFunc("GET /attachments/{msgid}/{index}", s.attachment)
	m.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		io.WriteString(w, "ok\n")
	})
	return m
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mux.ServeHTTP(w, r)
}

// Serve serves on l until Shutdown; it then returns http.ErrServerClosed.
func (s *Server) Serve(l net.Listener) error {
	return s.hs.Serve(l)
}

// Shutdown stops the listener and waits for requests in flight until ctx
// is done.
func (s *Server) Shutdown(ctx context.Context) error {
	return s.hs.Shutdown(ctx)
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

func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	if s.opts.Ready != nil {
		ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
		defer cancel()
		if err := s.opts.Ready(ctx); err != nil {
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprintf(w, "not ready: %v\n", err)
			return
		}
	}
	io.WriteString(w, "ready\n")
}

const disabledText = "admin API and dashboard are disabled: no admin token is configured (set admin.token or MAILHOOK_ADMIN_TOKEN)"

// authVia is how a request proved it holds the token.
type authVia int

const (
	authNone authVia = iota
	authBearer
	authCookie
)

// authenticate checks the bearer token (RFC 6750 §2.1) or the session
// cookie, in constant time.
func (s *Server) authenticate(r *http.Request) authVia {
	if h := r.Header.Get("Authorization"); h != "" {
		scheme, tok, ok := strings.Cut(h, " ")
		if !ok || !strings.EqualFold(scheme, "Bearer") {
			return authNone
		}
		if s.checkToken(tok) {
			return authBearer
		}
		return authNone
	}
	if c, err := r.Cookie(sessionName); err == nil && s.validSession(c.Value) {
		return authCookie
	}
	return authNone
}

// api wraps a handler that needs the token.
func (s *Server) api(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		if s.opts.Token == "" {
			writeError(w, http.StatusForbidden, disabledText)
			return
		}
		via := s.authenticate(r)
		switch {
		case via == authNone:
			if r.Header.Get("Authorization") != "" && s.refuseLogin(w, r) {
				return
			}
			w.Header().Set("WWW-Authenticate", `Bearer realm="mailhook admin"`)
			writeError(w, http.StatusUnauthorized, "authentication required: Authorization: Bearer <admin token>")
			return
		case via == authCookie && r.Method != http.MethodGet && r.Method != http.MethodHead && r.Header.Get(csrfHeader) == "":
			writeError(w, http.StatusForbidden, "missing "+csrfHeader+" header")
			return
		}
		h(w, r)
	}
}

// dashboard wraps the dashboard's handlers: disabled without a token, and
// with headers that keep the pages from being framed or loading anything
// from elsewhere.
func (s *Server) dashboard(h http.Handler) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if s.opts.Token == "" {
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			w.WriteHeader(http.StatusForbidden)
			io.WriteString(w, disabledText+"\n")
			return
		}
		hd := w.Header()
		hd.Set("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
		hd.Set("X-Frame-Options", "DENY")
		hd.Set("X-Content-Type-Options", "nosniff")
		hd.Set("Referrer-Policy", "no-referrer")
		h.ServeHTTP(w, r)
	}
}

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

func (s *Server) needQueue(w http.ResponseWriter) bool {
	if s.opts.Queue == nil {
		writeError(w, http.StatusServiceUnavailable, "no queue")
		return false
	}
	return true
}

// queueStatsJSON is Stats with the age in seconds.
type queueStatsJSON struct {
	Ready            int     `json:"ready"`
	Scheduled        int     `json:"scheduled"`
	Leased           int     `json:"leased"`
	Dead             int     `json:"dead"`
	OldestAgeSeconds float64 `json:"oldest_age_seconds"`
}

func (s *Server) queueStats(w http.ResponseWriter, r *http.Request) {
	if !s.needQueue(w) {
		return
	}
	st, err := s.opts.Queue.Stats(r.Context())
	if err != nil {
		s.internalError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, queueStatsJSON{st.Ready, st.Scheduled, st.Leased, st.Dead, st.OldestAge.Seconds()})
}

func (s *Server) listDead(w http.ResponseWriter, r *http.Request) {
	if !s.needQueue(w) {
		return
	}
	s.jobPage(w, r, s.opts.Queue.ListDead)
}

func (s *Server) replayJob(w http.ResponseWriter, r *http.Request) {
	if !s.needQueue(w) {
		return
	}
	id := r.PathValue("id")
	err := s.opts.Queue.Replay(r.Context(), id)
	switch {
	case errors.Is(err, deliver.ErrNotFound):
		writeError(w, http.StatusNotFound, "no such job")
		return
	case errors.Is(err, deliver.ErrNotDead):
		writeError(w, http.StatusConflict, "the job is not dead-lettered")
		return
	case err != nil:
		s.internalError(w, r, err)
		return
	}
	s.wake()
	s.log.Info("job replayed by operator", "job_id", id, "remote_ip", remoteIP(r))
	if s.opts.Activity != nil {
		if err := s.opts.Activity.RecordReplayed(id); err != nil && !errors.Is(err, ErrNotFound) {
			s.log.Warn("activity: record replay", "job_id", id, "err", err)
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"replayed": id})
}

// maxReplayNotes bounds the jobs a replay-all notes in the activity store.
const maxReplayNotes = 10000

func (s *Server) replayAll(w http.ResponseWriter, r *http.Request) {
	if !s.needQueue(w) {
		return
	}
	sinceV := r.URL.Query().Get("since")
	since, err := time.Parse(time.RFC3339, sinceV)
	if err != nil {
		writeError(w, http.StatusBadRequest, "since: required, an RFC 3339 time (jobs dead-lettered at or after it are replayed)")
		return
	}
	// Note the jobs first, so the activity store can mark them queued.
	var ids []string
	if s.opts.Activity != nil {
		after := ""
		for len(ids) < maxReplayNotes {
			jobs, err := s.opts.Queue.ListDead(r.Context(), deliver.ListOptions{After: after, Limit: 500})
			if err != nil || len(jobs) == 0 {
				break
			}
			done := false
			for _, j := range jobs {
				if j.DeadAt.Before(since) {
					done = true
					break
				}
				ids = append(ids, j.ID)
			}
			if done || len(jobs) < 500 {
				break
			}
			after = jobs[len(jobs)-1].ID
		}
	}
	n, err := s.opts.Queue.ReplayAll(r.Context(), since)
	if err != nil {
		s.internalError(w, r, err)
		return
	}
	s.wake()
	s.log.Info("dead letters replayed by operator", "since", since, "jobs", n, "remote_ip", remoteIP(r))
	for _, id := range ids {
		if err := s.opts.Activity.RecordReplayed(id); err != nil && !errors.Is(err, ErrNotFound) {
			s.log.Warn("activity: record replay", "job_id", id, "err", err)
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"replayed": n})
}

func (s *Server) dropJob(w http.ResponseWriter, r *http.Request) {
	if !s.needQueue(w) {
		return
	}
	id := r.PathValue("id")
	if err := s.opts.Queue.Drop(r.Context(), id); errors.Is(err, deliver.ErrNotFound) {
		writeError(w, http.StatusNotFound, "no such job")
		return
	} else if err != nil {
		s.internalError(w, r, err)
		return
	}
	s.log.Info("job dropped by operator", "job_id", id, "remote_ip", remoteIP(r))
	if s.opts.Activity != nil {
		if err := s.opts.Activity.RecordDropped(id); err != nil && !errors.Is(err, ErrNotFound) {
			s.log.Warn("activity: record drop", "job_id", id, "err", err)
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"dropped": id})
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
