package relay

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/textproto"
	"strings"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
	"github.com/mailhook/mailhook/internal/clip"
)

// maxNotes bounds the failure notes kept in Attempt.Error.
const maxNotes = 20

// maxPreTLSBytes bounds what the server may send before STARTTLS: the
// greeting, the EHLO reply and the STARTTLS reply.
const maxPreTLSBytes = 64 << 10

// deliverHops tries hops in order until one of them takes the transaction
// (accepts or refuses MAIL FROM, RCPT TO and DATA). Connection failures,
// TLS failures and 4xx replies before RCPT move on to the next hop (RFC
// 5321 §5.1); when none is left every recipient is retried.
func (r *Relayer) deliverHops(ctx context.Context, res *result, hops []hop, from string, rcpts []string, msg *message) {
	tried := 0
	for _, h := range hops {
		if ctx.Err() != nil {
			break
		}
		tried++
		res.host = h.host
		if r.try(ctx, res, h, from, rcpts, msg, true) {
			return
		}
	}
	err := ctx.Err()
	if err == nil {
		err = fmt.Errorf("relay: %d of %d hosts tried, none took the message", tried, len(hops))
	}
	res.all(rcpts, false, err)
}

// try runs one SMTP session with h. It reports whether the hop took the
// transaction; if not, the caller moves on to the next hop. starttls is
// false only for the plaintext retry of an opportunistic session whose
// TLS handshake failed.
func (r *Relayer) try(ctx context.Context, res *result, h hop, from string, rcpts []string, msg *message, starttls bool) bool {
	c, isTLS, closeConn, err := r.open(ctx, h, starttls)
	if err != nil {
		var he *handshakeError
		if errors.As(err, &he) && r.o.TLS == TLSOpportunistic {
			// RFC 7435 §2: opportunistic security falls back to
			// cleartext when encryption cannot be had.
			res.addNote("%s: %v; retrying without tls", h.addr, err)
			return r.try(ctx, res, h, from, rcpts, msg, false)
		}
		res.hopFailed(h, err)
		return false
	}
	defer closeConn()

	if r.o.Username != "" {
		if err := r.auth(c, isTLS); err != nil {
			res.hopFailed(h, err)
			return false
		}
	}

	opts := &smtp.MailOptions{Size: msg.size}
	if !isASCII(from) || !allASCII(rcpts) {
		// RFC 6531 §3.4: an internationalized envelope needs SMTPUTF8,
		// and a server without it cannot take the message.
		if ok, _ := c.Extension("SMTPUTF8"); !ok {
			res.all(rcpts, true, fmt.Errorf("%s: 553 5.6.7 the envelope needs SMTPUTF8 (RFC 6531) and the server does not offer it", h.addr))
			_ = c.Quit()
			return true
		}
		opts.UTF8 = true
	}
	if err := c.Mail(from, opts); err != nil {
		var se *smtp.SMTPError
		if errors.As(err, &se) && se.Code >= 500 {
			res.setReply(se.Code, replyText(se))
			res.all(rcpts, true, fmt.Errorf("%s: MAIL FROM:<%s> refused: %s", h.addr, from, replyText(se)))
			_ = c.Quit()
			return true
		}
		res.hopFailed(h, err)
		return false
	}

	// RFC 5321 §3.3: each recipient gets its own reply.
	var accepted []string
	for i, rcpt := range rcpts {
		err := c.Rcpt(rcpt, nil)
		var se *smtp.SMTPError
		switch {
		case err == nil:
			accepted = append(accepted, rcpt)
		case errors.As(err, &se):
			res.setReply(se.Code, replyText(se))
			res.addNote("%s: RCPT TO:<%s>: %s", h.addr, rcpt, replyText(se))
			if se.Code >= 500 {
				res.failed = append(res.failed, rcpt)
			} else {
				res.retry = append(res.retry, rcpt)
			}
		default:
			// The connection is gone: everyone not refused is retried.
			res.retry = append(res.retry, accepted...)
			res.retry = append(res.retry, rcpts[i:]...)
			res.addNote("%s: RCPT TO:<%s>: %v", h.addr, rcpt, err)
			return true
		}
	}
	if len(accepted) == 0 {
		_ = c.Quit()
		return true
	}

	if err := r.data(c, msg, res); err != nil {
		var se *smtp.SMTPError
		switch {
		case errors.As(err, &se):
			res.setReply(se.Code, replyText(se))
			res.addNote("%s: DATA: %s", h.addr, replyText(se))
		default:
			res.addNote("%s: DATA: %v", h.addr, err)
		}
		if se != nil && se.Code >= 500 {
			res.failed = append(res.failed, accepted...)
		} else {
			// A 4xx, or the connection dropped mid-DATA: the server may or
			// may not have the message; delivery is at least once.
			res.retry = append(res.retry, accepted...)
		}
		return true
	}
	res.delivered = append(res.delivered, accepted...)
	_ = c.Quit()
	return true
}

// data sends the message and reads the reply to the final dot. A reply
// other than 250 is returned as *smtp.SMTPError; on success the 250 reply
// is recorded in res.
func (r *Relayer) data(c *smtp.Client, msg *message, res *result) error {
	w, err := c.Data()
	if err != nil {
		return err
	}
	rc, err := msg.raw()
	if err != nil {
		// Without the message we must not end DATA: closing the
		// connection aborts the transaction (RFC 5321 §3.8).
		_ = c.Close()
		return fmt.Errorf("open message: %w", err)
	}
	_, err = io.Copy(w, io.MultiReader(bytes.NewReader(msg.prefix), rc))
	rc.Close()
	if err != nil {
		_ = c.Close()
		return fmt.Errorf("send message: %w", err)
	}
	resp, err := w.CloseWithResponse()
	if err != nil {
		var se *smtp.SMTPError
		if errors.As(err, &se) {
			return se
		}
		return fmt.Errorf("end of data: %w", err)
	}
	// A recipient's refusal stays the reply that explains the outcome.
	if res.status < 400 {
		res.setReply(250, truncate("250 "+resp.StatusText, maxReplyLen))
	}
	return nil
}

// auth authenticates to the smarthost (RFC 4954), PLAIN preferred.
func (r *Relayer) auth(c *smtp.Client, isTLS bool) error {
	if !isTLS && r.o.TLS != TLSNone {
		return errors.New("refusing to send credentials without tls (set tls: none to allow)")
	}
	var a sasl.Client
	switch {
	case c.SupportsAuth(sasl.Plain):
		a = sasl.NewPlainClient("", r.o.Username, r.o.Password)
	case c.SupportsAuth(sasl.Login):
		a = sasl.NewLoginClient(r.o.Username, r.o.Password)
	default:
		_, mechs := c.Extension("AUTH")
		return fmt.Errorf("smarthost offers no PLAIN or LOGIN authentication (AUTH %s)", mechs)
	}
	if err := c.Auth(a); err != nil {
		return fmt.Errorf("auth: %w", err)
	}
	return nil
}

// handshakeError is a failed TLS handshake after STARTTLS.
type handshakeError struct{ err error }

func (e *handshakeError) Error() string { return "tls handshake: " + e.err.Error() }
func (e *handshakeError) Unwrap() error { return e.err }

// open connects to h, greets it, sets up TLS per the mode and returns a
// client ready for AUTH or MAIL, whether the session is encrypted, and a
// func that ends it.
//
// The relay reads the greeting and sends EHLO itself (go-smtp's client
// would greet with "EHLO localhost" before STARTTLS, and falls back to
// HELO only on 500 and 502), then hands the connection to go-smtp. Each
// session says EHLO once per TLS state: after STARTTLS go-smtp sends it
// again, as RFC 3207 §4.2 requires; a session that stays as it was gets
// the first reply replayed instead of a second EHLO, which strict servers
// refuse with 503.
func (r *Relayer) open(ctx context.Context, h hop, starttls bool) (*smtp.Client, bool, func(), error) {
	d := net.Dialer{Timeout: r.o.Timeout}
	raw, err := d.DialContext(ctx, "tcp", h.addr)
	if err != nil {
		return nil, false, nil, fmt.Errorf("connect: %w", err)
	}
	// Cancelling ctx closes the connection, which ends any blocked read
	// or write: go-smtp's client takes no context.
	stop := context.AfterFunc(ctx, func() { raw.Close() })
	closeConn := func() {
		stop()
		raw.Close()
	}
	fail := func(err error) (*smtp.Client, bool, func(), error) {
		closeConn()
		return nil, false, nil, err
	}
	var conn net.Conn = &deadlineConn{Conn: raw, timeout: r.o.Timeout}
	isTLS := false
	if r.o.TLS == TLSImplicit {
		tc := tls.Client(conn, r.tlsConfig(h.host, true))
		hctx, cancel := context.WithTimeout(ctx, r.o.Timeout)
		err := tc.HandshakeContext(hctx)
		cancel()
		if err != nil {
			return fail(fmt.Errorf("tls: %w", err))
		}
		conn, isTLS = tc, true
	}

	pre, err := r.hello(conn)
	if err != nil {
		return fail(err)
	}
	replay := "220 " + h.host + "\r\n" + pre.reply
	if !isTLS && r.o.TLS != TLSNone && starttls {
		tc, err := r.startTLS(ctx, conn, h, pre)
		if err != nil {
			return fail(err)
		}
		if tc != nil {
			// A new TLS session starts from scratch: go-smtp says
			// EHLO again and nothing from before TLS is reused.
			conn, isTLS = tc, true
			replay = "220 " + h.host + "\r\n"
		}
	}
	rc := &replayConn{Conn: conn, r: io.MultiReader(strings.NewReader(replay), conn)}
	// go-smtp always starts with EHLO: when the first reply is replayed
	// its command is swallowed, not sent.
	rc.swallow = strings.Count(replay, "\n") > 1
	c := smtp.NewClient(rc)
	c.CommandTimeout = r.o.Timeout
	c.SubmissionTimeout = 2 * r.o.Timeout
	if err := c.Hello(r.o.Hostname); err != nil {
		c.Close()
		return fail(fmt.Errorf("ehlo: %w", err))
	}
	return c, isTLS, closeConn, nil
}

// preTLS is the start of a session as the relay ran it: the reader that
// holds what the server sent, and its reply to EHLO (or HELO).
type preTLS struct {
	tp *textproto.Conn
	// reply is the hello reply re-encoded as sent, CRLF-terminated lines.
	reply string
	// starttls reports whether the EHLO reply offered STARTTLS.
	starttls bool
}

// hello reads the greeting and sends EHLO; a server that refuses EHLO
// with any 5xx gets HELO (RFC 5321 §4.1.1.1: servers that do not know
// EHLO answer 500, 502 or 550 and the client falls back; some answer
// other 5xx).
func (r *Relayer) hello(conn net.Conn) (*preTLS, error) {
	_ = conn.SetDeadline(time.Now().Add(r.o.Timeout))
	defer conn.SetDeadline(time.Time{})
	// The replies before go-smtp takes over are small; a bound keeps a
	// hostile server from feeding us an endless line.
	tp := textproto.NewConn(struct {
		io.Reader
		io.Writer
		io.Closer
	}{io.LimitReader(conn, maxPreTLSBytes), conn, conn})
	if _, _, err := tp.ReadResponse(220); err != nil {
		return nil, fmt.Errorf("greeting: %w", protoErr(err))
	}
	if err := tp.PrintfLine("EHLO %s", r.o.Hostname); err != nil {
		return nil, fmt.Errorf("ehlo: %w", err)
	}
	code, text, err := tp.ReadResponse(250)
	ehlo := err == nil
	if te := (*textproto.Error)(nil); errors.As(err, &te) && te.Code >= 500 {
		if err := tp.PrintfLine("HELO %s", r.o.Hostname); err != nil {
			return nil, fmt.Errorf("helo: %w", err)
		}
		if code, text, err = tp.ReadResponse(250); err != nil {
			return nil, fmt.Errorf("helo after ehlo was refused: %w", protoErr(err))
		}
	} else if err != nil {
		return nil, fmt.Errorf("ehlo: %w", protoErr(err))
	}
	pre := &preTLS{tp: tp}
	lines := strings.Split(text, "\n")
	var b strings.Builder
	for i, line := range lines {
		sep := '-'
		if i == len(lines)-1 {
			sep = ' '
		}
		fmt.Fprintf(&b, "%d%c%s\r\n", code, sep, line)
		if f := strings.Fields(line); ehlo && i > 0 && len(f) > 0 && strings.EqualFold(f[0], "STARTTLS") {
			pre.starttls = true
		}
	}
	pre.reply = b.String()
	return pre, nil
}

// startTLS sends STARTTLS when the EHLO reply offered it and does the
// handshake (RFC 3207 §4). tc is nil when the session stays in plaintext
// (opportunistic mode, STARTTLS not offered or refused).
func (r *Relayer) startTLS(ctx context.Context, conn net.Conn, h hop, pre *preTLS) (tc *tls.Conn, err error) {
	_ = conn.SetDeadline(time.Now().Add(r.o.Timeout))
	defer conn.SetDeadline(time.Time{})
	tp := pre.tp
	if !pre.starttls {
		if r.o.TLS == TLSRequired {
			_ = tp.PrintfLine("QUIT")
			return nil, errors.New("starttls not offered and tls is required")
		}
		return nil, nil
	}
	if err := tp.PrintfLine("STARTTLS"); err != nil {
		return nil, fmt.Errorf("starttls: %w", err)
	}
	if _, _, err := tp.ReadResponse(220); err != nil {
		if _, isProto := err.(*textproto.Error); isProto && r.o.TLS != TLSRequired {
			// RFC 3207 §4: after a refused STARTTLS the session goes on
			// as before it, EHLO reply included.
			return nil, nil
		}
		return nil, fmt.Errorf("starttls: %w", protoErr(err))
	}
	// Anything the server sent after its 220 sits in tp's buffer and is
	// dropped with it: nothing from before TLS may be taken as said
	// after it (RFC 3207 §6).
	// Credentials go only over TLS whose certificate checks out, even in
	// opportunistic mode: unauthenticated TLS would hand them to whoever
	// sits in the middle.
	tc = tls.Client(conn, r.tlsConfig(h.host, r.o.TLS == TLSRequired || r.o.Username != ""))
	hctx, cancel := context.WithTimeout(ctx, r.o.Timeout)
	defer cancel()
	if err := tc.HandshakeContext(hctx); err != nil {
		return nil, &handshakeError{err}
	}
	return tc, nil
}

// tlsConfig is the client TLS configuration for host. Unverified
// (opportunistic) sessions still encrypt but accept any certificate (RFC
// 7435 §3).
func (r *Relayer) tlsConfig(host string, verify bool) *tls.Config {
	var cfg *tls.Config
	if r.o.TLSConfig != nil {
		cfg = r.o.TLSConfig.Clone()
	} else {
		cfg = &tls.Config{}
	}
	if cfg.ServerName == "" {
		cfg.ServerName = host
	}
	if cfg.MinVersion == 0 {
		cfg.MinVersion = tls.VersionTLS12
	}
	if !verify {
		cfg.InsecureSkipVerify = true
	}
	return cfg
}

// hopFailed notes a failure that moves on to the next hop. Its reply is
// reported only if no hop takes the transaction.
func (res *result) hopFailed(h hop, err error) {
	msg := err.Error()
	var se *smtp.SMTPError
	if errors.As(err, &se) {
		res.hopStatus, res.hopReply = se.Code, replyText(se)
		// go-smtp's text drops the enhanced code; show the reply as sent.
		msg = strings.Replace(msg, se.Error(), res.hopReply, 1)
	}
	res.addNote("%s: %s", h.addr, msg)
}

func (res *result) addNote(format string, args ...any) {
	if len(res.notes) < maxNotes {
		res.note(format, args...)
	}
}

// maxReplyLen bounds a reply kept in an Attempt; a hostile server's reply
// can be long.
const maxReplyLen = 512

// replyText formats an SMTP reply as "550 5.1.1 text", at most maxReplyLen
// bytes.
func replyText(se *smtp.SMTPError) string {
	msg := strings.ReplaceAll(se.Message, "\n", " ")
	ec := se.EnhancedCode
	var s string
	if ec != (smtp.EnhancedCode{}) && ec != smtp.NoEnhancedCode {
		s = fmt.Sprintf("%d %d.%d.%d %s", se.Code, ec[0], ec[1], ec[2], msg)
	} else {
		s = fmt.Sprintf("%d %s", se.Code, msg)
	}
	return truncate(s, maxReplyLen)
}

// truncate cuts s to at most n bytes, on a rune boundary.
func truncate(s string, n int) string { return clip.UTF8(s, n, "...") }

// protoErr turns a textproto reply error into an *smtp.SMTPError, as
// go-smtp's client reports them.
func protoErr(err error) error {
	var te *textproto.Error
	if !errors.As(err, &te) {
		return err
	}
	se := &smtp.SMTPError{Code: te.Code, Message: te.Msg}
	if parts := strings.SplitN(te.Msg, " ", 2); len(parts) == 2 {
		var ec smtp.EnhancedCode
		if n, _ := fmt.Sscanf(parts[0], "%d.%d.%d", &ec[0], &ec[1], &ec[2]); n == 3 {
			se.EnhancedCode, se.Message = ec, parts[1]
		}
	}
	return se
}

// deadlineConn gives every write a deadline: go-smtp's client sets none
// while the message is written after DATA.
type deadlineConn struct {
	net.Conn
	timeout time.Duration
}

func (c *deadlineConn) Write(b []byte) (int, error) {
	_ = c.Conn.SetWriteDeadline(time.Now().Add(c.timeout))
	return c.Conn.Write(b)
}

// replayConn replays what the relay already read from the server (the
// greeting, and the hello reply when swallow is set) to go-smtp's client,
// and, when swallow is set, drops the client's first command line (its
// EHLO), which the replayed reply answers.
type replayConn struct {
	net.Conn
	r       io.Reader
	swallow bool
}

func (c *replayConn) Read(b []byte) (int, error) { return c.r.Read(b) }

func (c *replayConn) Write(b []byte) (int, error) {
	if !c.swallow {
		return c.Conn.Write(b)
	}
	i := bytes.IndexByte(b, '\n')
	if i < 0 {
		return len(b), nil
	}
	c.swallow = false
	if rest := b[i+1:]; len(rest) > 0 {
		if _, err := c.Conn.Write(rest); err != nil {
			return 0, err
		}
	}
	return len(b), nil
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

func allASCII(ss []string) bool {
	for _, s := range ss {
		if !isASCII(s) {
			return false
		}
	}
	return true
}
