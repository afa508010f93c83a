package mailbox

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"
	"github.com/mailhook/mailhook/internal/clientip"
	"github.com/mailhook/mailhook/internal/loginlimit"
)

// IMAPOptions configures NewIMAPServer.
type IMAPOptions struct {
	// Store holds the mail. Required.
	Store *Store
	// Users authenticates logins. Required.
	Users *Users
	// Limiter throttles failed logins, schedules password checks and
	// counts sessions per user; it is shared with POP3. Nil means a
	// Limiter with default options.
	Limiter *loginlimit.Limiter
	// TLSConfig enables STARTTLS (RFC 3501 §6.2.1) and is used by
	// ServeTLS / ListenAndServeTLS for implicit TLS (RFC 8314).
	TLSConfig *tls.Config
	// AllowPlaintextAuth allows LOGIN and AUTHENTICATE without TLS from
	// any client. Without it passwords are taken only over TLS or from a
	// loopback address (RFC 3501 §6.2.3, RFC 8314 §3).
	AllowPlaintextAuth bool
	// Logger receives the server's log (default: discard).
	Logger *slog.Logger
	// OnSession and OnFailedLogin, when set, are told of each session
	// opened and each failed login (metrics). They must not block.
	OnSession     func()
	OnFailedLogin func()
}

// IMAPServer serves the Store over IMAP4rev1 and IMAP4rev2.
//
// It runs three go-imap servers that differ only in whether they take
// passwords on a connection without TLS and offer STARTTLS, and hands
// each accepted connection to the right one: imapserver decides that per
// server, we need it per connection (loopback or not, implicit TLS or
// not). Every connection goes through a frontConn first, which answers
// what imapserver gets wrong (see frontConn).
type IMAPServer struct {
	opts     IMAPOptions
	log      *slog.Logger
	limiter  *loginlimit.Limiter
	secure   *imapserver.Server // passwords only over TLS
	insecure *imapserver.Server // passwords also in clear
	// implicit serves implicit TLS, and connections after STARTTLS:
	// imapserver sees the frontConn, not the *tls.Conn, so it is told to
	// take passwords and not to offer STARTTLS.
	implicit  *imapserver.Server
	secureL   *chanListener
	insecL    *chanListener
	implicitL *chanListener

	// loopbackTrusted lets loopback clients log in without TLS; tests
	// turn it off to act as a remote client.
	loopbackTrusted atomic.Bool

	mu        sync.Mutex
	listeners map[net.Listener]struct{}
	sessions  map[*imapSession]struct{}
	closed    bool
	wg        sync.WaitGroup // Serve calls
	inner     sync.WaitGroup // the imapserver.Serve goroutines
}

// ErrServerClosed is returned by Serve after Close.
var ErrServerClosed = errors.New("mailbox: server closed")

// NewIMAPServer returns a server; start it with Serve or ListenAndServe.
func NewIMAPServer(opts IMAPOptions) (*IMAPServer, error) {
	if opts.Store == nil || opts.Users == nil {
		return nil, errors.New("mailbox: imap: Store and Users are required")
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	s := &IMAPServer{
		opts:      opts,
		log:       opts.Logger,
		limiter:   opts.Limiter,
		listeners: map[net.Listener]struct{}{},
		sessions:  map[*imapSession]struct{}{},
	}
	s.loopbackTrusted.Store(true)
	if s.limiter == nil {
		s.limiter = loginlimit.New(loginlimit.Options{})
	}
	caps := imap.CapSet{
		imap.CapIMAP4rev1: {}, imap.CapIMAP4rev2: {},
		imap.CapNamespace: {}, imap.CapUIDPlus: {}, imap.CapESearch: {}, imap.CapSearchRes: {},
		imap.CapListExtended: {}, imap.CapListStatus: {}, imap.CapMove: {}, imap.CapStatusSize: {},
		imap.CapSpecialUse: {}, imap.CapLiteralPlus: {}, imap.CapChildren: {}, imap.CapAppendLimit: {},
		imap.CapUnselect: {}, imap.CapIdle: {},
	}
	mk := func(insecure bool, tlsConfig *tls.Config) *imapserver.Server {
		return imapserver.New(&imapserver.Options{
			NewSession:   s.newSession,
			Caps:         caps,
			Logger:       slogPrintf{s.log},
			TLSConfig:    tlsConfig,
			InsecureAuth: insecure,
		})
	}
	s.secure, s.insecure, s.implicit = mk(false, opts.TLSConfig), mk(true, opts.TLSConfig), mk(true, nil)
	s.secureL, s.insecL, s.implicitL = newChanListener(), newChanListener(), newChanListener()
	for _, p := range []struct {
		srv *imapserver.Server
		l   *chanListener
	}{{s.secure, s.secureL}, {s.insecure, s.insecL}, {s.implicit, s.implicitL}} {
		s.inner.Add(1)
		go func() {
			defer s.inner.Done()
			defer s.recoverPanic("imap serve")
			p.srv.Serve(p.l)
		}()
	}
	return s, nil
}

func (s *IMAPServer) recoverPanic(where string) {
	if v := recover(); v != nil {
		s.log.Error("mailbox: panic", "where", where, "panic", v, "stack", string(debug.Stack()))
	}
}

// ListenAndServe listens on addr (plain IMAP with STARTTLS) and serves.
func (s *IMAPServer) ListenAndServe(addr string) error {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("mailbox: imap listen: %w", err)
	}
	return s.Serve(l)
}

// ListenAndServeTLS listens on addr for implicit TLS (IMAPS, RFC 8314).
func (s *IMAPServer) ListenAndServeTLS(addr string) error {
	if s.opts.TLSConfig == nil {
		return errors.New("mailbox: imaps needs a TLS config")
	}
	l, err := tls.Listen("tcp", addr, s.opts.TLSConfig)
	if err != nil {
		return fmt.Errorf("mailbox: imaps listen: %w", err)
	}
	return s.Serve(l)
}

// ServeTLS serves implicit TLS on l.
func (s *IMAPServer) ServeTLS(l net.Listener) error {
	if s.opts.TLSConfig == nil {
		return errors.New("mailbox: imaps needs a TLS config")
	}
	return s.Serve(tls.NewListener(l, s.opts.TLSConfig))
}

// Serve accepts connections on l until Close. It returns ErrServerClosed
// after Close.
func (s *IMAPServer) Serve(l net.Listener) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return ErrServerClosed
	}
	s.listeners[l] = struct{}{}
	s.wg.Add(1)
	s.mu.Unlock()
	defer s.wg.Done()
	var delay time.Duration
	for {
		c, err := l.Accept()
		if err != nil {
			s.mu.Lock()
			closed := s.closed
			s.mu.Unlock()
			if closed {
				return ErrServerClosed
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				delay = min(max(2*delay, 5*time.Millisecond), time.Second)
				time.Sleep(delay)
				continue
			}
			return fmt.Errorf("mailbox: imap accept: %w", err)
		}
		delay = 0
		target := s.secureL
		_, isTLS := c.(*tls.Conn)
		if isTLS {
			target = s.implicitL
		} else if s.opts.AllowPlaintextAuth || (s.loopbackTrusted.Load() && clientip.Of(c.RemoteAddr()).IsLoopback()) {
			target = s.insecL
		}
		fc := newFrontConn(c, s.opts.Store.opts.MaxMessageSize)
		if !isTLS && s.opts.TLSConfig != nil {
			// STARTTLS: the front does the TLS and hands the connection
			// on to the implicit-TLS server (see frontConn.startTLS).
			fc.tlsConfig, fc.toTLS = s.opts.TLSConfig, s.implicitL.deliver
		}
		if !target.deliver(fc) {
			c.Close()
			return ErrServerClosed
		}
	}
}

// Shutdown is Close shaped like http.Server.Shutdown. IMAP sessions are
// long-lived (IDLE), so there is nothing to drain: every client gets BYE
// and reconnects to another node or after the restart. It returns ctx's
// error if ctx ended first.
func (s *IMAPServer) Shutdown(ctx context.Context) error {
	done := make(chan error, 1)
	go func() {
		defer s.recoverPanic("imap shutdown")
		done <- s.Close()
	}()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Close stops the listeners, says BYE to every client (RFC 3501 §7.1.5)
// and closes the connections.
func (s *IMAPServer) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	for l := range s.listeners {
		l.Close()
	}
	sessions := make([]*imapSession, 0, len(s.sessions))
	for sess := range s.sessions {
		sessions = append(sessions, sess)
	}
	s.mu.Unlock()
	for _, sess := range sessions {
		sess.conn.Bye("Server shutting down")
	}
	s.wg.Wait()
	// Stop the inner servers' Serve loops before closing them, so that
	// imapserver.Server.Close never races their start.
	s.secureL.Close()
	s.insecL.Close()
	s.implicitL.Close()
	s.inner.Wait()
	s.secure.Close()
	s.insecure.Close()
	s.implicit.Close()
	return nil
}

// chanListener is a net.Listener fed by IMAPServer.Serve.
type chanListener struct {
	c    chan net.Conn
	done chan struct{}
	once sync.Once
}

func newChanListener() *chanListener {
	return &chanListener{c: make(chan net.Conn), done: make(chan struct{})}
}

func (l *chanListener) deliver(c net.Conn) bool {
	select {
	case l.c <- c:
		return true
	case <-l.done:
		return false
	}
}

func (l *chanListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.c:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *chanListener) Close() error {
	l.once.Do(func() { close(l.done) })
	return nil
}

func (l *chanListener) Addr() net.Addr { return &net.TCPAddr{} }

// slogPrintf adapts slog to imapserver.Logger.
type slogPrintf struct{ l *slog.Logger }

func (p slogPrintf) Printf(format string, args ...any) {
	msg := "imap: " + fmt.Sprintf(format, args...)
	if strings.HasPrefix(format, "failed to read command") {
		// Clients that hang up without LOGOUT: routine, not a warning.
		p.l.Debug(msg)
		return
	}
	p.l.Warn(msg)
}

func (s *IMAPServer) newSession(c *imapserver.Conn) (imapserver.Session, *imapserver.GreetingData, error) {
	fc, _ := c.NetConn().(*frontConn)
	if s.opts.OnSession != nil && (fc == nil || !fc.afterTLS) {
		s.opts.OnSession() // once per client, not again after STARTTLS
	}
	ip := clientip.Of(c.NetConn().RemoteAddr())
	ctx, cancel := context.WithCancel(context.Background())
	sess := &imapSession{
		srv:    s,
		conn:   c,
		ctx:    ctx,
		cancel: cancel,
		ip:     ip,
		log:    s.log.With("remote_ip", ip.String(), "proto", "imap"),
	}
	if fc != nil {
		fc.sess = sess
	}
	s.mu.Lock()
	closed := s.closed
	if !closed {
		s.sessions[sess] = struct{}{}
	}
	s.mu.Unlock()
	if closed {
		cancel()
		return nil, nil, &imap.Error{Type: imap.StatusResponseTypeBye, Text: "Server shutting down"}
	}
	sess.log.Debug("imap: connected")
	return sess, nil, nil
}

// imapError maps store errors onto IMAP response codes (RFC 5530).
func imapError(err error) error {
	var ie *imap.Error
	if err == nil || errors.As(err, &ie) {
		return err
	}
	mk := func(code imap.ResponseCode, text string) error {
		return &imap.Error{Type: imap.StatusResponseTypeNo, Code: code, Text: text}
	}
	switch {
	case errors.Is(err, ErrNoSuchFolder):
		return mk(imap.ResponseCodeNonExistent, "No such mailbox")
	case errors.Is(err, ErrFolderExists):
		return mk(imap.ResponseCodeAlreadyExists, "Mailbox already exists")
	case errors.Is(err, ErrInvalidName):
		return mk(imap.ResponseCodeCannot, "Invalid or forbidden mailbox name")
	case errors.Is(err, ErrOverQuota):
		return mk(imap.ResponseCodeOverQuota, "Quota exceeded")
	case errors.Is(err, ErrTooLarge):
		return mk(imap.ResponseCodeTooBig, "Message too large")
	case errors.Is(err, ErrNoSuchMessage):
		return mk(imap.ResponseCodeNonExistent, "No such message")
	}
	return err
}

// tryCreate turns "no such folder" into [TRYCREATE] for APPEND, COPY and
// MOVE (RFC 3501 §6.3.11, §6.4.7).
func tryCreate(err error) error {
	if errors.Is(err, ErrNoSuchFolder) {
		return &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeTryCreate, Text: "No such mailbox"}
	}
	return imapError(err)
}
