package pop3

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mailhook/mailhook/internal/clientip"
	"github.com/mailhook/mailhook/internal/loginlimit"
)

// Defaults for the zero values of Options.
const (
	// DefaultIdleTimeout is RFC 1939 §3's autologout timer: "at least 10
	// minutes".
	DefaultIdleTimeout = 10 * time.Minute
	// DefaultMaxLineLength is the longest command line accepted,
	// including CRLF. RFC 2449 §4 limits commands to 255 octets; we
	// accept twice that for clients that overshoot.
	DefaultMaxLineLength = 512
	// DefaultMaxSASLLineLength bounds an AUTH continuation line (RFC 5034
	// §4 lets it exceed the command limit).
	DefaultMaxSASLLineLength = 4096
	// DefaultMaxErrors is how many bad commands a session may send
	// before the server closes it.
	DefaultMaxErrors = 10
	// DefaultMaxConnections bounds concurrent sessions.
	DefaultMaxConnections = 1000
)

// ErrServerClosed is returned by Serve and ListenAndServe after Shutdown
// or Close.
var ErrServerClosed = errors.New("pop3: server closed")

// Options configures a Server.
type Options struct {
	// Backend authenticates users and opens maildrops. Required.
	Backend Backend
	// Addr is the address ListenAndServe and ListenAndServeTLS listen on.
	Addr string
	// Hostname is named in the greeting.
	Hostname string
	// TLSConfig enables STLS (RFC 2595 §4) and is used by
	// ListenAndServeTLS for implicit TLS.
	TLSConfig *tls.Config
	// AllowPlaintextAuth permits USER/PASS and AUTH PLAIN on connections
	// that are neither TLS nor from a loopback address.
	AllowPlaintextAuth bool
	// LoopbackIsRemote treats loopback clients like remote ones for the
	// plaintext rule; tests use it.
	LoopbackIsRemote bool
	// Limiter throttles failed logins; nil means the Backend's (see
	// StoreBackend) or else a loginlimit.Limiter with defaults.
	Limiter Limiter
	// Logger receives one line per session and, at debug level, the
	// protocol trace with credentials redacted. Nil discards.
	Logger *slog.Logger
	// IdleTimeout closes a session that sends no command for this long
	// (default DefaultIdleTimeout). It also bounds each write.
	IdleTimeout time.Duration
	// MaxLineLength bounds a command line (default DefaultMaxLineLength).
	MaxLineLength int
	// MaxErrors closes a session after this many rejected commands
	// (default DefaultMaxErrors).
	MaxErrors int
	// MaxConnections bounds concurrent sessions (default
	// DefaultMaxConnections); further clients get -ERR [SYS/TEMP].
	MaxConnections int
	// OnSession and OnFailedLogin, when set, are told of each session
	// opened and each failed login (metrics). They must not block.
	OnSession     func()
	OnFailedLogin func()
}

// Server is a POP3 server. Create it with New.
type Server struct {
	opts    Options
	log     *slog.Logger
	limiter Limiter

	mu        sync.Mutex
	listeners map[net.Listener]struct{}
	sessions  map[*session]struct{}
	closing   atomic.Bool
	active    sync.WaitGroup
	// afterFailure waits before a failed login is answered; tests hook it.
	afterFailure func(ctx context.Context, d time.Duration)
}

// New returns a server configured by opts, with defaults filled in.
func New(opts Options) *Server {
	if opts.IdleTimeout <= 0 {
		opts.IdleTimeout = DefaultIdleTimeout
	}
	if opts.MaxLineLength <= 0 {
		opts.MaxLineLength = DefaultMaxLineLength
	}
	if opts.MaxErrors <= 0 {
		opts.MaxErrors = DefaultMaxErrors
	}
	if opts.MaxConnections <= 0 {
		opts.MaxConnections = DefaultMaxConnections
	}
	s := &Server{
		opts:         opts,
		log:          opts.Logger,
		limiter:      opts.Limiter,
		listeners:    make(map[net.Listener]struct{}),
		sessions:     make(map[*session]struct{}),
		afterFailure: sleepCtx,
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.limiter == nil {
		if lp, ok := opts.Backend.(limiterProvider); ok {
			s.limiter = lp.Limiter()
		} else {
			s.limiter = loginlimit.New(loginlimit.Options{})
		}
	}
	return s
}

func sleepCtx(ctx context.Context, d time.Duration) {
	if d <= 0 {
		return
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}

// ListenAndServe listens on Options.Addr (":110" when empty) and serves
// plain POP3 with STLS when Options.TLSConfig is set.
func (s *Server) ListenAndServe() error {
	addr := s.opts.Addr
	if addr == "" {
		addr = ":110"
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("pop3: listen: %w", err)
	}
	return s.Serve(l)
}

// ListenAndServeTLS listens on Options.Addr (":995" when empty) and serves
// POP3 over implicit TLS (RFC 8314 §3.3) with Options.TLSConfig.
func (s *Server) ListenAndServeTLS() error {
	if s.opts.TLSConfig == nil {
		return errors.New("pop3: implicit tls needs Options.TLSConfig")
	}
	addr := s.opts.Addr
	if addr == "" {
		addr = ":995"
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("pop3: listen: %w", err)
	}
	return s.Serve(tls.NewListener(l, s.opts.TLSConfig))
}

// Serve accepts connections on l until Shutdown or Close. Connections from
// a listener made by tls.NewListener are served with implicit TLS. Serve
// closes l when it returns, always with a non-nil error; after Shutdown or
// Close, ErrServerClosed.
func (s *Server) Serve(l net.Listener) error {
	if s.opts.Backend == nil {
		l.Close()
		return errors.New("pop3: Options.Backend is nil")
	}
	s.mu.Lock()
	if s.closing.Load() {
		s.mu.Unlock()
		l.Close()
		return ErrServerClosed
	}
	s.listeners[l] = struct{}{}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.listeners, l)
		s.mu.Unlock()
		l.Close()
	}()

	var backoff time.Duration
	for {
		c, err := l.Accept()
		if err != nil {
			if s.closing.Load() {
				return ErrServerClosed
			}
			if errors.Is(err, net.ErrClosed) {
				return fmt.Errorf("pop3: accept: %w", err)
			}
			// Anything else (EMFILE, ECONNABORTED...) may pass:
			// back off and go on, as net/http does.
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			s.log.Warn("pop3 accept", "err", err, "retry_in", backoff)
			time.Sleep(backoff)
			continue
		}
		backoff = 0
		s.start(c)
	}
}

// start registers a session for c and runs it in its own goroutine.
func (s *Server) start(c net.Conn) {
	sess := newSession(s, c)
	s.mu.Lock()
	if s.closing.Load() {
		s.mu.Unlock()
		c.Close()
		return
	}
	full := len(s.sessions) >= s.opts.MaxConnections
	if !full {
		s.sessions[sess] = struct{}{}
		s.active.Add(1)
	}
	s.mu.Unlock()
	if full {
		s.log.Warn("pop3 connection refused", "remote_ip", clientip.Of(c.RemoteAddr()), "reason", "too many connections")
		go func() {
			defer func() { _ = recover() }()
			c.SetWriteDeadline(time.Now().Add(5 * time.Second))
			_, _ = c.Write([]byte("-ERR [SYS/TEMP] too many connections, try again later\r\n"))
			c.Close()
		}()
		return
	}
	go func() {
		defer s.active.Done()
		defer func() {
			s.mu.Lock()
			delete(s.sessions, sess)
			s.mu.Unlock()
		}()
		defer func() {
			if r := recover(); r != nil {
				s.log.Error("pop3 session panic", "remote_ip", clientip.Of(c.RemoteAddr()),
					"panic", r, "stack", string(debug.Stack()))
				sess.abort()
			}
		}()
		sess.serve()
	}()
}

// Shutdown stops accepting connections and asks every session to end: a
// session waiting for a command is told "-ERR [SYS/TEMP]" and closed; a
// session running a command (a RETR, or the UPDATE state after QUIT)
// finishes it first. Deletes of sessions that did not reach QUIT are never
// applied. When ctx ends first, the remaining connections are closed and
// ctx's error is returned.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.closing.Store(true)
	for l := range s.listeners {
		l.Close()
	}
	for sess := range s.sessions {
		sess.interrupt()
	}
	s.mu.Unlock()

	done := make(chan struct{})
	go func() {
		defer func() { _ = recover() }()
		s.active.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		s.mu.Lock()
		for sess := range s.sessions {
			sess.abort()
		}
		s.mu.Unlock()
		<-done
		return ctx.Err()
	}
}

// Close closes the listeners and every connection at once. Deletes of
// sessions that did not reach QUIT are not applied.
func (s *Server) Close() error {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := s.Shutdown(ctx); err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return nil
}
