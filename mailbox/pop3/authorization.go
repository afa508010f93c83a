package pop3

// The AUTHORIZATION state (RFC 1939 §4): USER/PASS, AUTH (RFC 5034), STLS
// (RFC 2595) and the login they end in.

import (
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"

	"github.com/emersion/go-sasl"
)

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
