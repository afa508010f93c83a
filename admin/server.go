package admin

// The admin listener: options, routes, serving and shutdown.

import (
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"time"

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
	// Parse are the options ingest parses messages with, so that
	// /attachments/ lists a message's attachments as its webhook did;
	// zero values mean parse's defaults.
	Parse parse.Options
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
