package pop3

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/base64"
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

	"github.com/emersion/go-sasl"
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

func (s *session) userCmd(args []string) {
	if !s.plaintextAllowed() {
		s.fail(errPlaintext)
		return
	}
	if len(args) != 1 {
		s.fail("usage: USER name")
		return
	}
	s.userArg = args[0]
	s.reply("+OK")
}

func (s *session) pass(pass string) bool {
	user := s.userArg
	s.userArg = ""
	if !s.plaintextAllowed() {
		s.fail(errPlaintext)
		return false
	}
	if user == "" {
		s.fail("USER first")
		return false
	}
	if pass == "" {
		s.fail("usage: PASS password")
		return false
	}
	return s.login(user, pass)
}

var errAuthzID = errors.New("pop3: authorization identity differs from the user name")

// auth implements AUTH (RFC 5034) with the PLAIN mechanism (RFC 4616).
func (s *session) auth(args []string) bool {
	if len(args) == 0 {
		// Not in RFC 5034, but clients (Outlook) use it to list
		// mechanisms, as in the old RFC 1734 servers.
		s.reply("+OK")
		if s.plaintextAllowed() {
			s.reply("PLAIN")
		}
		s.reply(".")
		return false
	}
	if len(args) > 2 {
		s.fail("usage: AUTH mechanism [initial-response]")
		return false
	}
	if !strings.EqualFold(args[0], sasl.Plain) {
		s.fail("unsupported authentication mechanism")
		return false
	}
	if !s.plaintextAllowed() {
		s.fail(errPlaintext)
		return false
	}
	s.userArg = ""

	var user, pass string
	srv := sasl.NewPlainServer(func(identity, username, password string) error {
		if identity != "" && identity != username {
			return errAuthzID
		}
		user, pass = username, password
		return nil
	})
	var resp []byte // nil: no initial response
	if len(args) == 2 {
		// RFC 5034 §4: "=" is an empty initial response.
		if args[1] != "=" {
			b, err := base64.StdEncoding.DecodeString(args[1])
			if err != nil {
				s.fail("invalid base64 in initial response")
				return false
			}
			resp = b
		} else {
			resp = []byte{}
		}
	}
	for {
		challenge, done, err := srv.Next(resp)
		if err != nil {
			if errors.Is(err, errAuthzID) {
				s.fail(codeAuth + "authorization identity must be the user name")
			} else {
				s.fail("invalid PLAIN response")
			}
			return false
		}
		if done {
			break
		}
		s.reply("+ " + base64.StdEncoding.EncodeToString(challenge))
		if err := s.w.Flush(); err != nil {
			s.reason = "write: " + err.Error()
			return true
		}
		line, err := s.readLine(DefaultMaxSASLLineLength)
		if err != nil {
			s.readFailed(err)
			return true
		}
		if line == "*" {
			// RFC 5034 §4: the client cancels the exchange.
			s.fail("authentication cancelled")
			return false
		}
		b, err := base64.StdEncoding.DecodeString(line)
		if err != nil {
			s.fail("invalid base64 in response")
			return false
		}
		resp = b
	}
	return s.login(user, pass)
}

// checkPassword asks the backend in a turn of the limiter, so that a
// client from a clean address is not queued behind an attacker's hashes.
func (s *session) checkPassword(user, pass string) (Maildrop, error) {
	lim := s.srv.limiter
	done, err := lim.Turn(s.ctx, s.ip)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrThrottled, err)
	}
	defer done()
	// Failures counted while this attempt waited may have locked it out.
	if err := lim.Check(s.ip, user); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrThrottled, err)
	}
	ctx, cancel := context.WithTimeout(s.ctx, loginTimeout)
	defer cancel()
	return s.srv.opts.Backend.Login(ctx, user, pass, s.remote)
}

// login checks credentials through the limiter and the backend and, on
// success, opens the maildrop and enters the TRANSACTION state.
func (s *session) login(user, pass string) bool {
	lim := s.srv.limiter
	var err error
	if cerr := lim.Check(s.ip, user); cerr != nil {
		err = fmt.Errorf("%w: %w", ErrThrottled, cerr)
	}
	var drop Maildrop
	if err == nil {
		drop, err = s.checkPassword(user, pass)
	}
	switch {
	case err == nil:
		lim.Succeeded(s.ip, user)
	case errors.Is(err, ErrInUse):
		// RFC 2449 §8.1.2.
		lim.Succeeded(s.ip, user)
		s.log.Info("pop3 login", "user", user, "result", "in-use")
		s.fail(codeInUse + "maildrop is locked by another session")
		return false
	case errors.Is(err, ErrAuthFailed), errors.Is(err, ErrThrottled):
		d := lim.Failed(s.ip, user)
		if f := s.srv.opts.OnFailedLogin; f != nil {
			f()
		}
		s.log.Info("pop3 login", "user", user, "result", "failed", "err", err, "delay", d)
		s.srv.afterFailure(s.ctx, d)
		if errors.Is(err, ErrThrottled) {
			s.fail(codeSysTemp + "too many failed logins, try again later")
		} else {
			// RFC 3206 §4: the credentials are wrong.
			s.fail(codeAuth + "invalid user name or password")
		}
		return s.ctx.Err() != nil
	default:
		s.log.Error("pop3 login", "user", user, "err", err)
		s.reply("-ERR " + codeSysTemp + "cannot open the maildrop now")
		return false
	}

	msgs, err := drop.Messages(s.ctx)
	if err != nil {
		_ = drop.Close()
		s.log.Error("pop3 maildrop list", "user", user, "err", err)
		s.reply("-ERR " + codeSysTemp + "cannot read the maildrop now")
		return false
	}
	s.user, s.drop, s.msgs = user, drop, msgs
	s.deleted = make([]bool, len(msgs))
	s.state = stateTransaction
	s.log = s.log.With("user", user)
	s.log.Info("pop3 login", "user", user, "result", "ok", "messages", len(msgs))
	n, size := s.count()
	s.reply(fmt.Sprintf("+OK maildrop has %d messages (%d octets)", n, size))
	return false
}

// stls implements STLS (RFC 2595 §4).
func (s *session) stls(args []string) bool {
	cfg := s.srv.opts.TLSConfig
	switch {
	case cfg == nil:
		s.fail("STLS not available")
		return false
	case s.tls:
		s.fail("already using TLS")
		return false
	case len(args) != 0:
		s.fail("STLS takes no arguments")
		return false
	}
	s.reply("+OK begin TLS negotiation")
	if err := s.w.Flush(); err != nil {
		s.reason = "write: " + err.Error()
		return true
	}
	// Anything the client pipelined after STLS came in the clear and
	// must not be taken as sent under TLS (the CVE-2011-0411 injection).
	s.r.Discard(s.r.Buffered())
	s.mu.Lock()
	tc := tls.Server(s.conn, cfg)
	s.conn = tc
	s.mu.Unlock()
	if err := s.handshake(tc); err != nil {
		s.reason = "stls handshake: " + err.Error()
		return true
	}
	s.r.Reset(tc)
	s.w.Reset(deadlineWriter{tc, s.srv.opts.IdleTimeout})
	// RFC 2595 §4: the client must discard what it learnt before TLS;
	// so does the server.
	s.userArg = ""
	return false
}

// count returns the number and total size of messages not marked deleted.
func (s *session) count() (n int, size int64) {
	for i, m := range s.msgs {
		if !s.deleted[i] {
			n++
			size += m.Size
		}
	}
	return n, size
}

// msgArg parses a message-number argument (RFC 1939 §5): a decimal number
// from 1 to the number of messages, not marked as deleted. It answers -ERR
// itself and returns -1 when the argument is not acceptable.
func (s *session) msgArg(arg string) int {
	n, ok := parseNum(arg)
	if !ok {
		s.fail("invalid message number")
		return -1
	}
	if n < 1 || n > len(s.msgs) {
		s.fail(fmt.Sprintf("no such message, only %d messages in maildrop", len(s.msgs)))
		return -1
	}
	if s.deleted[n-1] {
		s.fail(fmt.Sprintf("message %d already deleted", n))
		return -1
	}
	return n - 1
}

// parseNum parses a non-negative decimal of at most 9 digits.
func parseNum(arg string) (int, bool) {
	if arg == "" || len(arg) > 9 {
		return 0, false
	}
	n := 0
	for _, c := range []byte(arg) {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int(c-'0')
	}
	return n, true
}

// stat implements STAT (RFC 1939 §5).
func (s *session) stat(args []string) {
	if len(args) != 0 {
		s.fail("STAT takes no arguments")
		return
	}
	n, size := s.count()
	s.reply(fmt.Sprintf("+OK %d %d", n, size))
}

// list implements LIST [msg] (RFC 1939 §5).
func (s *session) list(args []string) {
	switch len(args) {
	case 0:
		n, size := s.count()
		s.reply(fmt.Sprintf("+OK %d messages (%d octets)", n, size))
		for i, m := range s.msgs {
			if !s.deleted[i] {
				s.reply(strconv.Itoa(i+1) + " " + strconv.FormatInt(m.Size, 10))
			}
		}
		s.reply(".")
	case 1:
		if i := s.msgArg(args[0]); i >= 0 {
			s.reply(fmt.Sprintf("+OK %d %d", i+1, s.msgs[i].Size))
		}
	default:
		s.fail("usage: LIST [msg]")
	}
}

// uidl implements UIDL [msg] (RFC 1939 §7).
func (s *session) uidl(args []string) {
	switch len(args) {
	case 0:
		s.reply("+OK unique-id listing follows")
		for i, m := range s.msgs {
			if !s.deleted[i] {
				s.reply(strconv.Itoa(i+1) + " " + m.UID)
			}
		}
		s.reply(".")
	case 1:
		if i := s.msgArg(args[0]); i >= 0 {
			s.reply(fmt.Sprintf("+OK %d %s", i+1, s.msgs[i].UID))
		}
	default:
		s.fail("usage: UIDL [msg]")
	}
}

// dele implements DELE (RFC 1939 §5): it only marks; QUIT removes.
func (s *session) dele(args []string) {
	if len(args) != 1 {
		s.fail("usage: DELE msg")
		return
	}
	if i := s.msgArg(args[0]); i >= 0 {
		s.deleted[i] = true
		s.reply(fmt.Sprintf("+OK message %d deleted", i+1))
	}
}

// rset implements RSET (RFC 1939 §5).
func (s *session) rset(args []string) {
	if len(args) != 0 {
		s.fail("RSET takes no arguments")
		return
	}
	clear(s.deleted)
	n, size := s.count()
	s.reply(fmt.Sprintf("+OK maildrop has %d messages (%d octets)", n, size))
}

// retr implements RETR (RFC 1939 §5).
func (s *session) retr(args []string) bool {
	if len(args) != 1 {
		s.fail("usage: RETR msg")
		return false
	}
	i := s.msgArg(args[0])
	if i < 0 {
		return false
	}
	s.retrieve++
	return s.send(i, -1, fmt.Sprintf("+OK %d octets", s.msgs[i].Size))
}

// top implements TOP (RFC 1939 §7).
func (s *session) top(args []string) bool {
	if len(args) != 2 {
		s.fail("usage: TOP msg n")
		return false
	}
	i := s.msgArg(args[0])
	if i < 0 {
		return false
	}
	n, ok := parseNum(args[1])
	if !ok {
		s.fail("invalid line count")
		return false
	}
	return s.send(i, n, "+OK top of message follows")
}

// send writes message i as a multi-line response; bodyLines < 0 sends all
// of it. A failure after +OK went out cannot be reported in-band, so the
// connection is closed instead (the client sees no terminating "." and
// does not take a truncated message for a whole one).
func (s *session) send(i, bodyLines int, status string) bool {
	rc, err := s.drop.Open(s.ctx, i)
	if errors.Is(err, ErrNoSuchMessage) {
		s.fail("message was removed by another session")
		return false
	}
	if err != nil {
		s.log.Error("pop3 open message", "uid", s.msgs[i].UID, "err", err)
		s.reply("-ERR " + codeSysTemp + "cannot read the message now")
		return false
	}
	defer rc.Close()
	if s.mr == nil {
		s.mr = bufio.NewReaderSize(rc, 32*1024)
	} else {
		s.mr.Reset(rc)
	}
	defer s.mr.Reset(nil) // do not keep the message reader reachable
	s.reply(status)
	if err := writeMessage(s.w, s.mr, bodyLines); err != nil {
		s.log.Error("pop3 send message", "uid", s.msgs[i].UID, "err", err)
		s.reason = "send message: " + err.Error()
		return true
	}
	return false
}

// writeMessage copies a message from r to w as the body of a multi-line
// response (RFC 1939 §3): every line ends in CRLF (a bare LF in the stored
// message becomes CRLF), a line starting with "." gets another "." in front
// (byte-stuffing), and ".CRLF" ends it. bodyLines >= 0 stops after the
// header, the blank line and that many body lines (TOP).
func writeMessage(w *bufio.Writer, r *bufio.Reader, bodyLines int) error {
	if err := copyLines(w, r, bodyLines, true); err != nil {
		return err
	}
	_, err := w.WriteString(".\r\n")
	return err
}

// WireSize returns the size of a message as RETR sends it: lines ending in
// CRLF, without byte-stuffing and the terminating ".", which is the size
// RFC 1939 §5 asks LIST and STAT to report.
func WireSize(r io.Reader) (int64, error) {
	var c countWriter
	w := bufio.NewWriterSize(&c, 4096)
	if err := copyLines(w, bufio.NewReaderSize(r, 32*1024), -1, false); err != nil {
		return 0, err
	}
	if err := w.Flush(); err != nil {
		return 0, err
	}
	return c.n, nil
}

type countWriter struct{ n int64 }

func (c *countWriter) Write(p []byte) (int, error) { c.n += int64(len(p)); return len(p), nil }

// copyLines copies r to w with CRLF line ends, byte-stuffing when stuff is
// set; see writeMessage.
func copyLines(w *bufio.Writer, br *bufio.Reader, bodyLines int, stuff bool) error {
	bol := true        // at the beginning of a line
	header := true     // still in the header section
	pendingCR := false // a chunk ended in CR; the next decides if it was CRLF
	for {
		chunk, err := br.ReadSlice('\n')
		if len(chunk) > 0 {
			if pendingCR {
				pendingCR = false
				if chunk[0] != '\n' {
					w.WriteByte('\r') // a bare CR inside a line: kept
				}
			}
			if bol {
				if !header && bodyLines >= 0 {
					if bodyLines == 0 {
						break
					}
					bodyLines--
				}
				if header && (len(chunk) == 1 && chunk[0] == '\n' || len(chunk) == 2 && chunk[0] == '\r' && chunk[1] == '\n') {
					header = false
				}
				if stuff && chunk[0] == '.' {
					w.WriteByte('.')
				}
			}
			if chunk[len(chunk)-1] == '\n' {
				line := chunk[:len(chunk)-1]
				if n := len(line); n > 0 && line[n-1] == '\r' {
					line = line[:n-1]
				}
				w.Write(line)
				w.WriteString("\r\n")
				bol = true
			} else {
				if chunk[len(chunk)-1] == '\r' {
					chunk = chunk[:len(chunk)-1]
					pendingCR = true
				}
				w.Write(chunk)
				bol = false
			}
		}
		if err == io.EOF {
			break
		}
		if err != nil && !errors.Is(err, bufio.ErrBufferFull) {
			return fmt.Errorf("read message: %w", err)
		}
	}
	if !bol || pendingCR {
		w.WriteString("\r\n")
	}
	return nil
}
