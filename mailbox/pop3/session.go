package pop3

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/mailhook/mailhook/internal/clientip"
)

// state is the POP3 session state of RFC 1939 §3.
type state int

const (
	stateAuthorization state = iota // RFC 1939 §4: before a maildrop is opened
	stateTransaction                // RFC 1939 §5: the maildrop is locked
	stateUpdate                     // RFC 1939 §6: after QUIT, deletes applied
)

func (st state) String() string {
	switch st {
	case stateAuthorization:
		return "AUTHORIZATION"
	case stateTransaction:
		return "TRANSACTION"
	case stateUpdate:
		return "UPDATE"
	}
	return "state(" + strconv.Itoa(int(st)) + ")"
}

// commandStates says in which state each command is valid: the state guard
// in front of dispatch. CAPA is valid in both (RFC 2449 §5).
var commandStates = map[string][]state{
	"CAPA": {stateAuthorization, stateTransaction},
	"QUIT": {stateAuthorization, stateTransaction},
	"USER": {stateAuthorization},
	"PASS": {stateAuthorization},
	"AUTH": {stateAuthorization},
	"STLS": {stateAuthorization},
	"STAT": {stateTransaction},
	"LIST": {stateTransaction},
	"RETR": {stateTransaction},
	"TOP":  {stateTransaction},
	"UIDL": {stateTransaction},
	"DELE": {stateTransaction},
	"RSET": {stateTransaction},
	"NOOP": {stateTransaction},
}

// errPlaintext refuses a password sent in the clear (RFC 2595 §2.3).
const errPlaintext = codeAuth + "plaintext authentication disallowed without TLS, use STLS"

// Response codes of RFC 2449 §8 and RFC 3206.
const (
	codeAuth    = "[AUTH] "
	codeInUse   = "[IN-USE] "
	codeSysTemp = "[SYS/TEMP] "
)

const (
	loginTimeout  = 30 * time.Second
	updateTimeout = time.Minute
)

var errLineTooLong = errors.New("pop3: line too long")

// session is one POP3 connection.
type session struct {
	srv    *Server
	log    *slog.Logger
	remote net.Addr
	ip     netip.Addr
	ctx    context.Context
	cancel context.CancelFunc

	mu   sync.Mutex // guards conn: STLS swaps it while Shutdown may interrupt
	conn net.Conn

	r  *bufio.Reader
	w  *bufio.Writer
	mr *bufio.Reader // reused by RETR and TOP to read messages

	state    state
	tls      bool
	userArg  string // from USER, waiting for PASS
	user     string // authenticated user
	errors   int
	drop     Maildrop
	msgs     []Msg
	deleted  []bool // marked by DELE; len(msgs)
	retrieve int
	reason   string // why the session ended, for the log
}

func newSession(srv *Server, c net.Conn) *session {
	if srv.opts.OnSession != nil {
		srv.opts.OnSession()
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &session{
		srv:    srv,
		remote: c.RemoteAddr(),
		ctx:    ctx,
		cancel: cancel,
		conn:   c,
	}
	s.ip = clientip.Of(s.remote)
	s.log = srv.log.With("remote_ip", s.ip.String())
	size := max(srv.opts.MaxLineLength, DefaultMaxSASLLineLength)
	s.r = bufio.NewReaderSize(c, size)
	s.w = bufio.NewWriterSize(deadlineWriter{c, srv.opts.IdleTimeout}, 32*1024)
	return s
}

// deadlineWriter pushes the write deadline forward on every write, so a
// client that stops reading is dropped after the idle timeout while a long
// RETR to a slow but live client goes on.
type deadlineWriter struct {
	c net.Conn
	d time.Duration
}

func (w deadlineWriter) Write(p []byte) (int, error) {
	if err := w.c.SetWriteDeadline(time.Now().Add(w.d)); err != nil {
		return 0, err
	}
	return w.c.Write(p)
}

// interrupt wakes a session waiting for a command so that it notices the
// server is shutting down. A command in progress is not disturbed unless
// it is reading from the client.
func (s *session) interrupt() {
	s.mu.Lock()
	defer s.mu.Unlock()
	_ = s.conn.SetReadDeadline(time.Now())
}

// abort closes the connection at once; the session's goroutine then ends
// without applying deletes.
func (s *session) abort() {
	s.cancel()
	s.mu.Lock()
	defer s.mu.Unlock()
	_ = s.conn.Close()
}

func (s *session) serve() {
	start := time.Now()
	defer func() {
		if s.drop != nil {
			// Unlocks; deletes were applied (or not) in UPDATE.
			if err := s.drop.Close(); err != nil {
				s.log.Warn("pop3 maildrop close", "user", s.user, "err", err)
			}
		}
		_ = s.w.Flush()
		s.abort()
		n, _ := s.count()
		s.log.Info("pop3 session", "user", s.user, "state", s.state.String(),
			"retrieved", s.retrieve, "deleted", len(s.msgs)-n,
			"reason", s.reason, "duration", time.Since(start).Round(time.Millisecond))
	}()

	if tc, ok := s.conn.(*tls.Conn); ok {
		// Implicit TLS (RFC 8314 §3.3): the handshake precedes the greeting.
		if err := s.handshake(tc); err != nil {
			s.reason = "tls handshake: " + err.Error()
			return
		}
	}

	// RFC 1939 §4 greeting. No timestamp: APOP is not offered.
	host := s.srv.opts.Hostname
	if host != "" {
		host += " "
	}
	s.reply("+OK " + host + "POP3 server ready")
	_ = s.w.Flush()

	for {
		line, err := s.readCommand()
		if err != nil {
			s.readFailed(err)
			return
		}
		if s.dispatch(line) {
			return
		}
		if s.errors >= s.srv.opts.MaxErrors {
			s.reply("-ERR too many errors, closing connection")
			s.reason = "too many errors"
			return
		}
		// RFC 2449 §6.6 PIPELINING: answers to commands already
		// received go out together.
		if s.r.Buffered() == 0 {
			if err := s.w.Flush(); err != nil {
				s.reason = "write: " + err.Error()
				return
			}
		}
	}
}

func (s *session) handshake(tc *tls.Conn) error {
	d := min(s.srv.opts.IdleTimeout, time.Minute)
	_ = tc.SetDeadline(time.Now().Add(d))
	if err := tc.HandshakeContext(s.ctx); err != nil {
		return err
	}
	_ = tc.SetDeadline(time.Time{})
	s.tls = true
	return nil
}

// readCommand waits for the next command line under the idle timeout.
func (s *session) readCommand() (string, error) {
	s.mu.Lock()
	err := s.conn.SetReadDeadline(time.Now().Add(s.srv.opts.IdleTimeout))
	s.mu.Unlock()
	if err != nil {
		return "", err
	}
	// Checked after the deadline is set: Shutdown sets the flag before it
	// interrupts, so either we see it here or our read is interrupted.
	if s.srv.closing.Load() {
		return "", ErrServerClosed
	}
	return s.readLine(s.srv.opts.MaxLineLength)
}

// readLine reads one line of at most limit octets including the line end.
// CRLF is the line end (RFC 1939 §3); a bare LF is accepted too.
func (s *session) readLine(limit int) (string, error) {
	line, err := s.r.ReadSlice('\n')
	if errors.Is(err, bufio.ErrBufferFull) || len(line) > limit {
		return "", errLineTooLong
	}
	if err != nil {
		return "", err
	}
	line = line[:len(line)-1]
	if n := len(line); n > 0 && line[n-1] == '\r' {
		line = line[:n-1]
	}
	return string(line), nil
}

func (s *session) readFailed(err error) {
	var ne net.Error
	switch {
	case errors.Is(err, errLineTooLong):
		s.reply("-ERR line too long")
		s.reason = "line too long"
	case errors.Is(err, ErrServerClosed) || (s.srv.closing.Load() && errors.As(err, &ne) && ne.Timeout()):
		s.reply("-ERR " + codeSysTemp + "server shutting down")
		s.reason = "shutdown"
	case errors.As(err, &ne) && ne.Timeout():
		// RFC 1939 §3: the autologout timer closes the session
		// without entering the UPDATE state.
		s.reply("-ERR autologout, idle for too long")
		s.reason = "idle timeout"
	case errors.Is(err, io.EOF):
		s.reason = "client closed"
	default:
		s.reason = "read: " + err.Error()
	}
}

func (s *session) reply(line string) {
	_, _ = s.w.WriteString(line)
	_, _ = s.w.WriteString("\r\n")
}

// fail answers -ERR and counts the error towards MaxErrors.
func (s *session) fail(text string) {
	s.errors++
	s.reply("-ERR " + text)
}

// trace logs a client line at debug level with credentials redacted.
func (s *session) trace(cmd, line string) {
	if !s.log.Enabled(s.ctx, slog.LevelDebug) {
		return
	}
	switch cmd {
	case "PASS", "AUTH":
		line = cmd + " <redacted>"
	}
	s.log.Debug("pop3 command", "state", s.state.String(), "line", line)
}

// dispatch runs one command line; it reports whether the session ends.
func (s *session) dispatch(line string) (quit bool) {
	cmd, rest, _ := strings.Cut(line, " ")
	cmd = strings.ToUpper(cmd)
	s.trace(cmd, line)
	args := strings.Fields(rest)

	states, known := commandStates[cmd]
	if !known {
		s.fail("unknown command")
		return false
	}
	if !slices.Contains(states, s.state) {
		s.fail(cmd + " not valid in the " + s.state.String() + " state")
		return false
	}

	switch cmd {
	case "CAPA":
		s.capa()
	case "QUIT":
		return s.quit()
	case "USER":
		s.userCmd(args)
	case "PASS":
		// RFC 1939 §7: the password is the rest of the line and may
		// contain spaces.
		return s.pass(rest)
	case "AUTH":
		return s.auth(args)
	case "STLS":
		return s.stls(args)
	case "STAT":
		s.stat(args)
	case "LIST":
		s.list(args)
	case "RETR":
		return s.retr(args)
	case "TOP":
		return s.top(args)
	case "UIDL":
		s.uidl(args)
	case "DELE":
		s.dele(args)
	case "RSET":
		s.rset(args)
	case "NOOP":
		if len(args) != 0 {
			s.fail("NOOP takes no arguments")
			return false
		}
		s.reply("+OK")
	}
	return false
}

// plaintextAllowed says whether a password may be sent on this connection
// (RFC 2595 §2.3; mailbox.allow_plaintext_auth).
func (s *session) plaintextAllowed() bool {
	if s.tls || s.srv.opts.AllowPlaintextAuth {
		return true
	}
	return s.ip.IsLoopback() && !s.srv.opts.LoopbackIsRemote
}

// capa implements CAPA (RFC 2449 §5). USER and SASL PLAIN are listed only
// where a password may be sent; STLS only before TLS (RFC 2595 §4).
func (s *session) capa() {
	s.reply("+OK capability list follows")
	s.reply("TOP")
	if s.plaintextAllowed() {
		s.reply("USER")
	}
	s.reply("UIDL")
	s.reply("RESP-CODES")
	s.reply("AUTH-RESP-CODE")
	s.reply("PIPELINING")
	if s.plaintextAllowed() {
		s.reply("SASL PLAIN")
	}
	if s.srv.opts.TLSConfig != nil && !s.tls && s.state == stateAuthorization {
		s.reply("STLS")
	}
	s.reply("IMPLEMENTATION mailhook")
	s.reply(".")
}

// quit implements QUIT (RFC 1939 §4 and §6). From TRANSACTION it enters
// UPDATE and removes the messages marked as deleted.
func (s *session) quit() bool {
	s.reason = "quit"
	if s.state != stateTransaction {
		s.reply("+OK bye")
		return true
	}
	s.state = stateUpdate
	var uids []string
	for i, d := range s.deleted {
		if d {
			uids = append(uids, s.msgs[i].UID)
		}
	}
	if len(uids) > 0 {
		// The client asked for the update: finish it even if the
		// connection drops now, within a bound.
		ctx, cancel := context.WithTimeout(context.WithoutCancel(s.ctx), updateTimeout)
		err := s.drop.Delete(ctx, uids)
		cancel()
		if err != nil {
			s.log.Error("pop3 update", "user", s.user, "err", err)
			s.reply("-ERR " + codeSysTemp + "some deleted messages not removed")
			clear(s.deleted) // for the session log: none were removed
			return true
		}
	}
	s.reply(fmt.Sprintf("+OK bye (%d messages left)", len(s.msgs)-len(uids)))
	return true
}
