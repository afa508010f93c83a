package relay

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"slices"
	"strings"
	"time"

	"github.com/mailhook/mailhook/deliver"
	"github.com/mailhook/mailhook/inbound"
)

// TLS modes for Options.TLS.
const (
	// TLSNone never uses TLS.
	TLSNone = "none"
	// TLSOpportunistic uses STARTTLS when offered, without checking the
	// certificate (RFC 7435), and falls back to plaintext when it is not
	// offered or the handshake fails.
	TLSOpportunistic = "opportunistic"
	// TLSRequired needs STARTTLS (RFC 3207) with a certificate valid for
	// the host name, or the attempt fails and is retried.
	TLSRequired = "required"
	// TLSImplicit connects with TLS from the start (RFC 8314 §3.3, port
	// 465); smarthost only.
	TLSImplicit = "implicit"
)

// Defaults for Options.
const (
	DefaultPort = 25
	// DefaultTimeout bounds each SMTP command, as RFC 5321 §4.5.3.2
	// suggests (5 minutes for most replies).
	DefaultTimeout = 5 * time.Minute
)

// Options configures a Relayer.
type Options struct {
	// Hostname is our name in EHLO (RFC 5321 §4.1.1.1). Required.
	Hostname string
	// Smarthost is "host:port" of a relay to hand all mail to. Empty means
	// direct delivery to the MX of each destination domain.
	Smarthost string
	// Username and Password, when Username is set, authenticate to the
	// smarthost with AUTH PLAIN, or LOGIN when PLAIN is not offered (RFC
	// 4954). Credentials are sent only over TLS with a valid certificate
	// (also in opportunistic mode), or in plaintext when TLS is "none".
	Username, Password string
	// TLS is none, opportunistic (the default), required or implicit.
	TLS string
	// Resolver answers MX and address lookups for direct delivery. Nil
	// means NetResolver("").
	Resolver MXResolver
	// Port is the port of MX hosts for direct delivery; zero means 25.
	// Only tests change it.
	Port int
	// DKIM, when set, signs every forwarded message.
	DKIM *DKIMSigner
	// SRS, when set, rewrites the envelope sender of forwarded mail.
	SRS *SRS
	// MaxReceived is the loop guard's hop limit; zero means
	// DefaultMaxReceived.
	MaxReceived int
	// LoopMarker is the value of the X-Loop field added to forwarded mail
	// and refused when seen again. Empty means Hostname.
	LoopMarker string
	// Timeout bounds each connection, TLS handshake, command and data
	// write; the final reply to DATA gets twice as long (RFC 5321
	// §4.5.3.2.6 asks for 10 minutes). Zero means DefaultTimeout.
	Timeout time.Duration
	// Logger receives one line per delivery attempt. Nil discards.
	Logger *slog.Logger
	// TLSConfig is the base TLS configuration (RootCAs for tests, client
	// certificates). ServerName is set per host. Nil means defaults.
	TLSConfig *tls.Config
}

// Relayer delivers relay jobs over SMTP. It implements deliver.Handler and
// is safe for concurrent use.
type Relayer struct {
	o   Options
	log *slog.Logger
}

var _ deliver.Handler = (*Relayer)(nil)

// New checks o, fills its defaults and returns a Relayer.
func New(o Options) (*Relayer, error) {
	var errs []error
	if o.Hostname == "" || strings.ContainsAny(o.Hostname, " \t\r\n") {
		errs = append(errs, fmt.Errorf("relay: hostname %q is not a host name", o.Hostname))
	}
	if strings.ContainsAny(o.LoopMarker, "\r\n") {
		errs = append(errs, fmt.Errorf("relay: loop marker %q holds a line break", o.LoopMarker))
	}
	if o.TLS == "" {
		o.TLS = TLSOpportunistic
	}
	switch o.TLS {
	case TLSNone, TLSOpportunistic, TLSRequired:
	case TLSImplicit:
		if o.Smarthost == "" {
			errs = append(errs, errors.New("relay: tls implicit needs a smarthost (MX hosts use STARTTLS on port 25)"))
		}
	default:
		errs = append(errs, fmt.Errorf("relay: tls %q is not none, opportunistic, required or implicit", o.TLS))
	}
	if o.Smarthost != "" {
		if h, p, err := net.SplitHostPort(o.Smarthost); err != nil || h == "" || p == "" {
			errs = append(errs, fmt.Errorf("relay: smarthost %q is not host:port", o.Smarthost))
		}
	} else if o.Username != "" {
		errs = append(errs, errors.New("relay: username is only used with a smarthost"))
	}
	if o.Port < 0 || o.Port > 65535 {
		errs = append(errs, fmt.Errorf("relay: port %d out of range", o.Port))
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	if o.Port == 0 {
		o.Port = DefaultPort
	}
	if o.Resolver == nil {
		o.Resolver = NetResolver("")
	}
	if o.MaxReceived <= 0 {
		o.MaxReceived = DefaultMaxReceived
	}
	if o.LoopMarker == "" {
		o.LoopMarker = o.Hostname
	}
	if o.Timeout <= 0 {
		o.Timeout = DefaultTimeout
	}
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Relayer{o: o, log: log}, nil
}

// Handle makes one delivery attempt of a relay job: the raw message of
// mail, with our X-Loop field and DKIM signature in front, to job.Rcpts
// (all in the domain job.Target) with the envelope sender of mail,
// rewritten by SRS.
//
// The Outcome is Done when every recipient accepted the message. Otherwise
// Rcpts lists the recipients the job goes on with: those that got a 4xx
// reply or a connection failure, for a retry; when none is left to retry
// and some were refused with a 5xx reply, the Outcome is Permanent and
// Rcpts lists the refused ones (so a replay of the dead letter targets only
// them). Attempt.Status and Response are the remote server's last reply
// that decided the outcome, Attempt.Error says what failed for whom.
//
// Loops (ErrLoop), auto-submitted mail the action does not allow, null MX
// and domains that do not exist are Permanent at once.
func (r *Relayer) Handle(ctx context.Context, job *deliver.Job, mail *inbound.Mail, raw deliver.RawOpener) deliver.Outcome {
	start := time.Now()
	res := r.handle(ctx, job, mail, raw)
	out := res.outcome()
	out.Attempt.At = start
	out.Attempt.Latency = time.Since(start)
	lvl := slog.LevelInfo
	if !out.Done {
		lvl = slog.LevelWarn
	}
	r.log.Log(ctx, lvl, "relay attempt",
		"msg_id", job.MsgID, "route", job.Route, "rcpt", strings.Join(job.Rcpts, ","),
		"attempt", job.Attempts, "status", out.Attempt.Status,
		"host", res.host, "done", out.Done, "permanent", out.Permanent,
		"delivered", len(res.delivered), "retry", len(res.retry), "failed", len(res.failed),
		"error", out.Attempt.Error)
	return out
}

// result gathers what one attempt did to each recipient.
type result struct {
	delivered []string
	retry     []string
	failed    []string // permanently
	// notes say what went wrong, for Attempt.Error.
	notes []string
	// status and reply are the last remote reply that decided the outcome.
	status int
	reply  string
	// hopStatus and hopReply are the last reply of a hop that failed
	// before the transaction (greeting, EHLO, AUTH, MAIL 4xx).
	hopStatus int
	hopReply  string
	host      string
}

func (res *result) note(format string, args ...any) {
	res.notes = append(res.notes, truncate(fmt.Sprintf(format, args...), 2*maxReplyLen))
}

// setReply records a remote reply (an *smtp.SMTPError or a 2xx text).
func (res *result) setReply(code int, text string) {
	res.status, res.reply = code, text
}

// all marks every recipient as retried or failed, with a note.
func (res *result) all(rcpts []string, permanent bool, err error) {
	if permanent {
		res.failed = append(res.failed, rcpts...)
	} else {
		res.retry = append(res.retry, rcpts...)
	}
	res.note("%v", err)
}

func (res *result) outcome() deliver.Outcome {
	var out deliver.Outcome
	out.Attempt.Status = res.status
	out.Attempt.Response = res.reply
	if res.status == 0 {
		out.Attempt.Status, out.Attempt.Response = res.hopStatus, res.hopReply
	}
	if len(res.notes) > 0 {
		out.Attempt.Error = strings.Join(res.notes, "; ")
	}
	switch {
	case len(res.retry) > 0:
		out.Rcpts = res.retry
	case len(res.failed) > 0:
		out.Permanent = true
		out.Rcpts = res.failed
	default:
		out.Done = true
	}
	return out
}

func (r *Relayer) handle(ctx context.Context, job *deliver.Job, mail *inbound.Mail, raw deliver.RawOpener) *result {
	res := &result{}
	rcpts := slices.Clone(job.Rcpts)
	if len(rcpts) == 0 {
		return res // nothing left to deliver
	}
	if mail == nil {
		res.all(rcpts, true, errors.New("relay: job has no mail"))
		return res
	}

	// Loop guards and the auto-submitted rule, on the message as it is.
	hf, err := r.scan(raw)
	if err != nil {
		res.all(rcpts, false, err)
		return res
	}
	if err := CheckLoop(hf, r.o.LoopMarker, r.o.MaxReceived); err != nil {
		res.all(rcpts, true, err)
		return res
	}
	auto := hf.AutoSubmitted || (mail.Message != nil && mail.Message.AutoSubmitted)
	if auto && !job.Action.ForwardAutoSubmitted {
		res.all(rcpts, true, errors.New("relay: auto-submitted message not forwarded (RFC 3834 §2; the action does not set forward_auto_submitted)"))
		return res
	}

	from, err := r.sender(mail)
	if err != nil {
		res.all(rcpts, true, err)
		return res
	}
	if from != "" && !validAddr(from) {
		res.all(rcpts, true, fmt.Errorf("relay: envelope sender %q is not an address", from))
		return res
	}
	target := strings.ToLower(strings.TrimSuffix(job.Target, "."))
	rcpts = slices.DeleteFunc(rcpts, func(rc string) bool {
		_, domain, _ := splitAddr(rc)
		switch {
		case !validAddr(rc):
			res.failed = append(res.failed, rc)
			res.note("relay: recipient %q is not an address", rc)
			return true
		case r.o.Smarthost == "" && target != "" && !strings.EqualFold(domain, target):
			// A job is for one domain; sending another domain's
			// recipient to this MX would misroute it.
			res.failed = append(res.failed, rc)
			res.note("relay: recipient %q is not in the job's domain %q", rc, target)
			return true
		}
		return false
	})
	if len(rcpts) == 0 {
		return res
	}
	if target == "" {
		_, target, _ = splitAddr(rcpts[0])
	}

	prefix, err := r.prefix(ctx, job, raw)
	if err != nil {
		res.all(rcpts, false, err)
		return res
	}
	msg := &message{prefix: prefix, raw: raw}
	if mail.RawSize > 0 {
		// SIZE= (RFC 1870) lets the server refuse at MAIL what it would
		// refuse after DATA.
		msg.size = mail.RawSize + int64(len(prefix))
	}

	if r.o.Smarthost != "" {
		host, _, _ := net.SplitHostPort(r.o.Smarthost)
		r.deliverHops(ctx, res, []hop{{host: host, addr: r.o.Smarthost}}, from, rcpts, msg)
		return res
	}
	r.deliverDirect(ctx, res, target, from, rcpts, msg)
	return res
}

// scan reads the header of the raw message for the loop guards.
func (r *Relayer) scan(raw deliver.RawOpener) (HeaderFacts, error) {
	rc, err := raw()
	if err != nil {
		return HeaderFacts{}, fmt.Errorf("relay: open message: %w", err)
	}
	defer rc.Close()
	return ScanHeader(rc)
}

// sender is the envelope sender to use: the original, rewritten by SRS
// when configured. The null sender stays null.
func (r *Relayer) sender(mail *inbound.Mail) (string, error) {
	from := mail.Envelope.MailFrom
	if r.o.SRS == nil || from == "" {
		return from, nil
	}
	verified := false
	if a := mail.Auth; a != nil {
		verified = a.SPF.Result == "pass" || a.DMARC.Result == "pass"
	}
	var out string
	var err error
	if verified {
		out, err = r.o.SRS.ForwardVerified(from)
	} else {
		out, err = r.o.SRS.Forward(from)
	}
	if err != nil {
		return "", fmt.Errorf("relay: rewrite sender: %w", err)
	}
	return out, nil
}

// prefix builds the header fields put in front of the raw message: our
// DKIM-Signature (RFC 6376 §5.6: prepended) over the final message, then
// our X-Loop marker. The message is read once here to sign it and once
// more when sent, never held in memory.
//
// A message the signer cannot parse (no header/body separator, say) is
// sent unsigned, with a warning: it was accepted, and losing it or
// retrying it forever for want of a signature would be worse.
func (r *Relayer) prefix(ctx context.Context, job *deliver.Job, raw deliver.RawOpener) ([]byte, error) {
	var b bytes.Buffer
	b.WriteString(LoopHeader + ": " + r.o.LoopMarker + "\r\n")
	if r.o.DKIM == nil {
		return b.Bytes(), nil
	}
	rc, err := raw()
	if err != nil {
		return nil, fmt.Errorf("relay: open message: %w", err)
	}
	defer rc.Close()
	er := &errReader{r: rc}
	sig, err := r.o.DKIM.Sign(io.MultiReader(bytes.NewReader(b.Bytes()), er))
	switch {
	case er.err != nil:
		return nil, fmt.Errorf("relay: read message: %w", er.err)
	case err != nil:
		r.log.WarnContext(ctx, "relay: sending unsigned", "msg_id", job.MsgID, "route", job.Route, "err", err)
		return b.Bytes(), nil
	}
	return append([]byte(sig), b.Bytes()...), nil
}

// errReader remembers the first read error other than io.EOF.
type errReader struct {
	r   io.Reader
	err error
}

func (e *errReader) Read(p []byte) (int, error) {
	n, err := e.r.Read(p)
	if err != nil && err != io.EOF && e.err == nil {
		e.err = err
	}
	return n, err
}

// validAddr reports whether addr can go in MAIL FROM or RCPT TO: it has
// a local part and a domain, and no line break or angle bracket that would
// change the command (RFC 5321 §4.1.2).
func validAddr(addr string) bool {
	if len(addr) > 1024 || strings.ContainsAny(addr, "\r\n<>\x00") {
		return false
	}
	_, _, ok := splitAddr(addr)
	return ok
}

// message is what is sent after DATA.
type message struct {
	prefix []byte
	raw    deliver.RawOpener
	size   int64
}

// deliverDirect resolves the MX hosts of domain and tries them in order.
func (r *Relayer) deliverDirect(ctx context.Context, res *result, domain, from string, rcpts []string, msg *message) {
	lctx, cancel := context.WithTimeout(ctx, r.o.Timeout)
	hosts, err := mxHosts(lctx, r.o.Resolver, domain)
	cancel()
	if err != nil {
		var re *resolveError
		res.all(rcpts, errors.As(err, &re) && re.permanent, fmt.Errorf("relay: %w", err))
		return
	}
	if len(hosts) > maxMXHosts {
		hosts = hosts[:maxMXHosts]
	}
	var hops []hop
	var lastErr error
	allPermanent := true
	for _, h := range hosts {
		lctx, cancel := context.WithTimeout(ctx, r.o.Timeout)
		addrs, err := hostAddrs(lctx, r.o.Resolver, h, r.o.Port)
		cancel()
		if err != nil {
			var re *resolveError
			if !errors.As(err, &re) || !re.permanent {
				allPermanent = false
			}
			lastErr = err
			continue
		}
		for _, a := range addrs {
			hops = append(hops, hop{host: h, addr: a})
		}
	}
	if len(hops) == 0 {
		res.all(rcpts, allPermanent, fmt.Errorf("relay: no mail host for %s: %w", domain, lastErr))
		return
	}
	if lastErr != nil {
		res.note("%v", lastErr)
	}
	r.deliverHops(ctx, res, hops, from, rcpts, msg)
}
