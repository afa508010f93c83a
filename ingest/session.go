package ingest

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/mailhook/mailhook/header"
	"github.com/mailhook/mailhook/inbound"
	"github.com/mailhook/mailhook/parse"
	"github.com/mailhook/mailhook/route"
)

// session is one SMTP session. go-smtp calls its methods one at a time.
type session struct {
	s      *Server
	c      *smtp.Conn
	ctx    context.Context
	cancel context.CancelFunc
	ip     string
	helo   string
	tls    bool
	log    *slog.Logger
	// conn is our connection under go-smtp's (and under TLS), for the
	// limits on session time and DATA rate; nil in tests that use
	// another listener.
	conn *sessionConn

	// errors and commands counted for the limits (go-smtp itself closes
	// the session after a few syntax errors)
	errors, commands int
	closing          bool

	// the transaction, reset after RSET and after DATA
	policy   *Policy
	mailFrom string
	null     bool
	utf8     bool
	rcpts    []string
	spf      chan inbound.SPFResult
	// bounces are the decisions for recipients that are bounce addresses
	bounces map[string]*route.Decision
}

var _ smtp.Session = (*session)(nil)

func (ss *session) Reset() {
	ss.mailFrom, ss.null, ss.utf8, ss.rcpts, ss.spf, ss.policy, ss.bounces = "", false, false, nil, nil, nil, nil
}

func (ss *session) Logout() error {
	ss.cancel()
	return nil
}

// Mail starts a transaction (RFC 5321 §4.1.1.2). SIZE was already checked
// against the limit by go-smtp (552 5.3.4). SPF is started now, so its DNS
// lookups overlap the rest of the transaction.
func (ss *session) Mail(from string, opts *smtp.MailOptions) error {
	if err := ss.count(); err != nil {
		return err
	}
	ss.Reset()
	if opts != nil {
		ss.utf8 = opts.UTF8
	}
	if hasControl(from) {
		ss.errors++
		return ErrBadSender
	}
	if !ss.utf8 && !isASCII(from) {
		return ErrNeedSMTPUTF8
	}
	ss.mailFrom = from
	ss.null = from == ""
	ss.policy = ss.s.o.Policy()
	if v := ss.s.o.Verifier; v != nil {
		ch := make(chan inbound.SPFResult, 1)
		ss.spf = ch
		ip := net.ParseIP(ss.ip)
		helo := ss.c.Hostname()
		go func() {
			defer func() {
				if r := recover(); r != nil {
					ss.log.Error("spf check panicked", "panic", r)
					ch <- inbound.SPFResult{Result: "temperror"}
				}
			}()
			ctx, cancel := context.WithTimeout(ss.ctx, ss.s.o.Limits.VerifyTimeout)
			defer cancel()
			ch <- v.CheckSPF(ctx, ip, helo, from)
		}()
	}
	return nil
}

// Rcpt applies the relay policy and asks the rules whether any could take
// the address (RFC 5321 §4.1.1.3). Everything else is refused here, never
// bounced later.
func (ss *session) Rcpt(to string, opts *smtp.RcptOptions) error {
	if err := ss.count(); err != nil {
		return err
	}
	p := ss.policy
	if p == nil {
		p = ss.s.o.Policy()
		ss.policy = p
	}
	addr, _, rerr := checkRecipient(to, ss.utf8, func(d string) bool { return p.Domains[d] })
	if rerr != nil {
		ss.refused(to, rerr, reasonOf(rerr))
		return rerr
	}
	if b := ss.s.o.Bounce; b != nil {
		if d, refuse, handled := b(ss.mailFrom, addr); handled {
			if refuse != nil {
				ss.refused(addr, refuse, ReasonUnknownUser)
				return refuse
			}
			if ss.bounces == nil {
				ss.bounces = map[string]*route.Decision{}
			}
			ss.bounces[addr] = d
			if !slices.Contains(ss.rcpts, addr) {
				ss.rcpts = append(ss.rcpts, addr)
			}
			return nil
		}
	}
	if e := rejectAtRcpt(p.Router, addr, ss.mailFrom); e != nil {
		ss.refused(addr, e, ReasonRejectedByRule)
		return e
	}
	if !p.Router.AcceptsEnvelope(addr, ss.mailFrom) {
		ss.refused(addr, ErrUnknownUser, ReasonUnknownUser)
		return ErrUnknownUser
	}
	if fw, ok := p.Router.(interface {
		MayForward(rcpt, mailFrom string) bool
	}); ok &&
		unforwardable(ss.mailFrom) && fw.MayForward(addr, ss.mailFrom) {
		ss.refused(addr, ErrSenderNotForwardable, ReasonNotForwardable)
		return ErrSenderNotForwardable
	}
	for _, r := range ss.rcpts {
		if r == addr {
			return nil // a duplicate RCPT is accepted and delivered once
		}
	}
	ss.rcpts = append(ss.rcpts, addr)
	return nil
}

func (ss *session) refused(rcpt string, e *smtp.SMTPError, why Reason) {
	ss.errors++
	if obs := ss.s.o.Observer; obs != nil {
		obs.Refused(ss.ip, ss.mailFrom, []string{rcpt}, Refusal{Reply: e, Reason: why}, "rcpt")
	}
	ss.log.Info("recipient refused", "mail_from", ss.mailFrom, "rcpt", rcpt,
		"status", fmt.Sprintf("%d %d.%d.%d", e.Code, e.EnhancedCode[0], e.EnhancedCode[1], e.EnhancedCode[2]), "reason", e.Message)
}

// count counts a transaction command and, past the limit on commands or on
// error replies, ends the session with 421 (RFC 5321 §3.8: a server may
// close after 421). The reply is written to the connection directly, since
// go-smtp has no way to close after a reply; it goes through TLS when the
// session uses it.
func (ss *session) count() error {
	ss.commands++
	lim := ss.s.o.Limits
	var why string
	switch {
	case ss.closing:
		why = "Closing connection"
	case ss.errors >= lim.MaxErrors:
		why = "Too many errors"
	case ss.commands > lim.MaxCommands:
		why = "Too many commands"
	default:
		return nil
	}
	ss.closing = true
	ss.log.Info("session closed", "status", "421 4.7.0", "reason", why)
	c := ss.c.Conn()
	_ = c.SetWriteDeadline(time.Now().Add(5 * time.Second))
	fmt.Fprintf(c, "421 4.7.0 %s, closing connection\r\n", why)
	c.Close()
	return &smtp.SMTPError{Code: 421, EnhancedCode: smtp.EnhancedCode{4, 7, 0}, Message: why}
}

// Data receives, verifies, parses, routes and commits one message. It
// returns only bare *smtp.SMTPError values, so that go-smtp sends exactly
// the code chosen here (any other error would go out as 554 5.0.0).
func (ss *session) Data(r io.Reader) error {
	r = wrapData(r)
	if d, ok := r.(*exactData); ok {
		d.takeLineLimit(ss.c)
	}
	// The rest of a refused message is read here, by the exact reader,
	// not by go-smtp's after Data returns.
	defer drainData(r)
	if err := ss.count(); err != nil {
		return err
	}
	if ss.conn != nil {
		ss.conn.startData()
		defer ss.conn.endData()
	}
	err := ss.data(r)
	if rf, ok := refusalOf(err); ok {
		se := rf.Reply
		if se.Code >= 400 {
			ss.errors++
			if obs := ss.s.o.Observer; obs != nil {
				obs.Refused(ss.ip, ss.mailFrom, ss.rcpts, rf, "data")
			}
			ss.log.Info("message refused", "mail_from", ss.mailFrom, "rcpt", strings.Join(ss.rcpts, ","),
				"status", fmt.Sprintf("%d %d.%d.%d", se.Code, se.EnhancedCode[0], se.EnhancedCode[1], se.EnhancedCode[2]), "reason", se.Message)
		}
		return se
	}
	if err != nil {
		ss.log.Error("message deferred", "mail_from", ss.mailFrom, "rcpt", strings.Join(ss.rcpts, ","),
			"status", "451 4.3.0", "error", err)
		if obs := ss.s.o.Observer; obs != nil {
			obs.Refused(ss.ip, ss.mailFrom, ss.rcpts, Refusal{Reply: ErrTempFailure, Reason: ReasonTempFailure}, "commit")
		}
		return ErrTempFailure
	}
	return nil
}

func (ss *session) data(r io.Reader) (err error) {
	defer func() {
		if p := recover(); p != nil {
			ss.log.Error("panic in data", "panic", p)
			err = ErrTempFailure
		}
	}()
	o := &ss.s.o
	now := o.Now()
	sp, err := newSpool(o.SpoolDir)
	if err != nil {
		return err
	}
	defer sp.discard()
	if err := sp.receive(r); err != nil {
		return err
	}
	// The header as every stage reads it (package header): verification
	// and parsing read it again by the same rule, the copy we store is
	// written from this reading, and the author is judged from it.
	hdr, err := sp.header(o.Limits.MaxHeaderBytes)
	if errors.Is(err, header.ErrTooBig) {
		return ErrHeaderTooBig
	}
	if err != nil {
		return err
	}
	// RFC 5322 §3.6 requires one From field; DMARC (RFC 7489 §6.6.1) needs
	// exactly one author domain and leaves the handling of anything else
	// to the receiver. A message whose From does not give exactly one
	// author address, none included, is refused unless multiple_from is
	// "strictest" (then DMARC judges every domain any reading recovers, and
	// a message with no From at all shows no author).
	if author := header.ReadAuthor(hdr); !author.Exact && o.MultipleFrom != MultipleFromStrictest {
		return ErrAuthor
	}

	id := newID(now)
	mail := &inbound.Mail{
		ID:         id,
		StableID:   stableID(ss.mailFrom, ss.rcpts, sp.sum.Sum(nil)),
		ReceivedAt: now.UTC(),
		Envelope: inbound.Envelope{
			MailFrom: ss.mailFrom, RcptTo: append([]string(nil), ss.rcpts...),
			ClientIP: ss.ip, Helo: ss.c.Hostname(), TLS: ss.isTLS(),
		},
	}

	// Verification and parsing both read the spool file; they run side by
	// side, each through its own reader.
	ctx, cancel := context.WithTimeout(ss.ctx, o.Limits.VerifyTimeout)
	defer cancel()
	type parsed struct {
		m   *parse.Message
		err error
	}
	pc := make(chan parsed, 1)
	pr := sp.reader() // made here: the goroutine may outlive the spool
	go func() {
		var res parsed
		defer func() {
			if p := recover(); p != nil {
				res.err = fmt.Errorf("parse panicked: %v", p)
			}
			pc <- res
		}()
		res.m, res.err = o.Parse(pr)
	}()
	var verr error
	mail.Auth, verr = ss.verify(ctx, sp.reader())
	// Parsing is bounded like verification: a parser that does not finish
	// (a bug on some input) costs the sender a retry (451), never a
	// session stuck for good.
	select {
	case res := <-pc:
		if res.err != nil {
			return fmt.Errorf("parse: %w", res.err)
		}
		mail.Message = res.m
		if o.Attachments != nil && res.m != nil {
			o.Attachments(res.m, mail.ID)
		}
	case <-ctx.Done():
		sp.abandon() // the parser may still read the buffer
		return fmt.Errorf("parse: not done within %s", o.Limits.VerifyTimeout)
	}
	if verr != nil {
		return fmt.Errorf("verify: %w", verr)
	}
	// quarantine is the flag rules match (inbound.Auth.Quarantine): DMARC
	// failed under p=quarantine, or under p=reject without enforcement, or
	// the spam verdict asks for it. It is written once, below, after both
	// verdicts; the verifier leaves it unset.
	var quarantine bool
	if a := mail.Auth; a != nil {
		if a.Reject() {
			if o.EnforceDMARC {
				return ErrDMARCReject
			}
			// Not enforced: passed on flagged, as p=quarantine is.
			quarantine = true
		}
		if a.DMARC.Result == inbound.Fail && a.DMARC.Policy == "quarantine" {
			quarantine = true
		}
		if o.DeferOnTempError && (a.SPF.Result == inbound.TempError || a.DMARC.Result == inbound.TempError) {
			return ErrDNSTempFailure
		}
	}
	spamFlag, err := ss.checkSpam(ss.ctx, sp, mail)
	if err != nil {
		return err
	}
	if mail.Auth != nil {
		mail.Auth.Quarantine = quarantine || spamFlag
	}

	decisions := make([]route.Decision, 0, len(ss.rcpts))
	for _, rcpt := range ss.rcpts {
		if bd, ok := ss.bounces[rcpt]; ok {
			d := *bd
			d.Rcpt = rcpt
			decisions = append(decisions, d)
			continue
		}
		d := ss.policy.Router.Decide(mail, rcpt)
		if !d.Matched() {
			// Refused whole rather than delivered for some recipients and
			// silently dropped for this one.
			return Refuse(&smtp.SMTPError{Code: ErrNoRoute.Code, EnhancedCode: ErrNoRoute.EnhancedCode,
				Message: ErrNoRoute.Message + " for <" + rcpt + ">"}, ReasonNoRoute)
		}
		for _, a := range d.Actions {
			if a.Kind == route.ActReject {
				return Refuse(&smtp.SMTPError{Code: a.RejectCode, EnhancedCode: smtp.EnhancedCode(a.RejectEnhanced), Message: a.RejectText}, ReasonRejectedByRule)
			}
		}
		decisions = append(decisions, d)
	}
	mail.Reply, mail.ReplyRcpt = route.ReplyOf(decisions)
	if o.CheckLoop != nil && forwards(decisions) {
		if err := o.CheckLoop(hdr); err != nil {
			return Refuse(&smtp.SMTPError{Code: ErrMailLoop.Code, EnhancedCode: ErrMailLoop.EnhancedCode, Message: ErrMailLoop.Message + ": " + err.Error()}, ReasonMailLoop)
		}
	}

	prepend := []Field{
		{"Received", ss.received(id, now)},
	}
	if mail.Auth != nil && mail.Auth.AuthenticationResults != "" {
		prepend = append([]Field{{"Authentication-Results", mail.Auth.AuthenticationResults}}, prepend...)
	}
	forged := o.forgedAR(hdr, mail.Message)
	path, raw, size, dropped, err := sp.finalize(o.SpoolDir, id, prepend, hdr, forged)
	if err != nil {
		return err
	}
	mail.RawPath, mail.Raw, mail.RawSize = path, raw, size
	if mail.Message != nil {
		mail.Message.Headers = deliveredHeaders(prepend, mail.Message.Headers, hdr, dropped)
	}
	if o.BeforeCommit != nil {
		if err := o.BeforeCommit(ss.ctx, mail, decisions); err != nil {
			if path != "" {
				os.Remove(path)
			}
			return err
		}
	}
	cerr := o.Committer.Commit(ss.ctx, mail, decisions)
	// The committer took the file (renamed into its store) or copied it.
	if path != "" {
		if rmErr := os.Remove(path); rmErr != nil && !errors.Is(rmErr, os.ErrNotExist) {
			ss.log.Warn("removing spool file", "error", rmErr)
		}
	}
	if cerr != nil {
		if rf, ok := refusalOf(cerr); ok && rf.Reason == ReasonOther {
			// The committer's own reply: a synchronous webhook's.
			cerr = Refuse(rf.Reply, ReasonSyncWebhook)
		}
		return fmt.Errorf("commit: %w", cerr)
	}
	if obs := o.Observer; obs != nil {
		obs.Accepted(mail, decisions)
	}
	// The line's values are made only when it is written (at level info).
	if ss.log.Enabled(ss.ctx, slog.LevelInfo) {
		routes := make([]string, 0, len(decisions))
		for _, d := range decisions {
			routes = append(routes, strings.Join(d.Rules, "+"))
		}
		ss.log.Info("message accepted", "msg_id", id, "mail_from", ss.mailFrom, "rcpt", strings.Join(ss.rcpts, ","),
			"route", strings.Join(routes, ","), "status", "250 2.0.0", "size", size)
	}
	return &smtp.SMTPError{Code: 250, EnhancedCode: smtp.EnhancedCode{2, 0, 0}, Message: "Ok: queued as " + id}
}

// verify runs SPF (started at MAIL) and DKIM/DMARC, or says "none" for each
// when there is no verifier.
func (ss *session) verify(ctx context.Context, msg io.Reader) (*inbound.Auth, error) {
	v := ss.s.o.Verifier
	if v == nil {
		return &inbound.Auth{
			SPF:                   inbound.SPFResult{Result: "none"},
			DKIM:                  []inbound.DKIMResult{},
			DMARC:                 inbound.DMARCResult{Result: "none", Policy: "none"},
			AuthenticationResults: ss.s.o.Hostname + "; none",
		}, nil
	}
	var spf inbound.SPFResult
	select {
	case spf = <-ss.spf:
	case <-ctx.Done():
		spf = inbound.SPFResult{Result: "temperror"}
	}
	return v.Verify(ctx, spf, msg)
}

func (ss *session) isTLS() bool {
	_, ok := ss.c.TLSConnectionState()
	return ok
}

// received is the Received field (RFC 5321 §4.4) we prepend: the client's
// HELO and IP, our name, the protocol (RFC 3848: ESMTP, ESMTPS, UTF8SMTPS…),
// the TLS version and cipher, our id, and the recipient when there is one.
func (ss *session) received(id string, now time.Time) string {
	proto := "ESMTP"
	if ss.utf8 {
		proto = "UTF8SMTP"
	}
	var tlsInfo string
	if st, ok := ss.c.TLSConnectionState(); ok {
		proto += "S"
		tlsInfo = fmt.Sprintf(" (%s %s)", tls.VersionName(st.Version), tls.CipherSuiteName(st.CipherSuite))
	}
	helo := ss.c.Hostname()
	if helo == "" {
		helo = "unknown"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "from %s ([%s])\r\n\tby %s (mailhook) with %s%s id %s", sanitize(helo), ss.ip, ss.s.o.Hostname, proto, tlsInfo, id)
	if len(ss.rcpts) == 1 {
		fmt.Fprintf(&b, "\r\n\tfor <%s>", ss.rcpts[0])
	}
	fmt.Fprintf(&b, "; %s", now.Format(time.RFC1123Z))
	return b.String()
}

// sanitize keeps a client-supplied HELO from breaking the header.
func sanitize(s string) string {
	return strings.Map(func(r rune) rune {
		if r < 0x21 || r == 0x7f || r == '(' || r == ')' || r == ';' {
			return '_'
		}
		return r
	}, s)
}
