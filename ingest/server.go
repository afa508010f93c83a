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
	"time"

	"github.com/emersion/go-smtp"

	"github.com/mailhook/mailhook/header"
	"github.com/mailhook/mailhook/inbound"
	"github.com/mailhook/mailhook/ingest/auth"
	"github.com/mailhook/mailhook/internal/clientip"
	"github.com/mailhook/mailhook/parse"
	"github.com/mailhook/mailhook/route"
)

// Router is what ingest needs of the routing rules.
type Router interface {
	// AcceptsEnvelope reports at RCPT whether any rule could take rcpt.
	AcceptsEnvelope(rcpt, mailFrom string) bool
	// Decide applies the rules at end of data.
	Decide(m *inbound.Mail, rcpt string) route.Decision
}

// Policy is the part of the configuration that can change while running
// (hot reload): the domains we accept mail for and the rules.
type Policy struct {
	Domains map[string]bool
	Router  Router
}

// Verifier checks SPF, DKIM and DMARC.
type Verifier interface {
	CheckSPF(ctx context.Context, ip net.IP, helo, mailFrom string) inbound.SPFResult
	Verify(ctx context.Context, spf inbound.SPFResult, msg io.Reader) (*inbound.Auth, error)
}

// Committer is the commit step: it durably records every action of the
// message (the queue) before ingest answers 250. It takes ownership of
// m.RawPath, or stores m.Raw (a small message, held in memory). An error means nothing was recorded; the client gets 451,
// unless the error is a reply: a *Refusal, or a bare *smtp.SMTPError (a
// synchronous webhook's refusal or deferral, ReasonSyncWebhook), which is
// sent as it is.
type Committer interface {
	Commit(ctx context.Context, m *inbound.Mail, decisions []route.Decision) error
}

// Limits bound what one client can make the listener do.
type Limits struct {
	MaxMessageBytes     int64
	MaxRecipients       int
	MaxLineLength       int
	MaxErrors           int
	MaxCommands         int
	MaxConnections      int
	MaxConnectionsPerIP int
	// ReadTimeout is the idle timeout: the longest wait for a byte from the
	// client, in commands and in DATA.
	ReadTimeout  time.Duration
	WriteTimeout time.Duration
	// VerifyTimeout bounds verification of one message.
	VerifyTimeout time.Duration
	// MaxHeaderBytes bounds the header section (header.DefaultMaxBytes if
	// zero); a larger one is refused 552 5.3.4. The verifier and the
	// parser are given the same limit.
	MaxHeaderBytes int
	// MaxSessionTime bounds a whole connection (smtp.max_session_time,
	// 10 minutes if zero); then the client gets 421 4.4.2 and is closed.
	MaxSessionTime time.Duration
	// MinDataRate is the slowest DATA or BDAT transfer accepted, in bytes
	// a second (smtp.min_data_rate, DefaultMinDataRate if zero, off if
	// negative): past its first 30 seconds (dataGrace), a client that has sent fewer than
	// MinDataRate bytes for each second of DATA gets 421 4.4.2 and is
	// closed, so that slow clients cannot hold every slot.
	MinDataRate int64
}

// Defaults for Limits.
const (
	DefaultMaxSessionTime = 10 * time.Minute
	DefaultMinDataRate    = 500
)

// dataGrace is the time DATA may take before MinDataRate applies (a
// variable so that tests can shorten it).
var dataGrace = 30 * time.Second

// Values of Options.MultipleFrom (verify.multiple_from).
const (
	MultipleFromReject    = "reject"
	MultipleFromStrictest = "strictest"
)

// Options configure a Server. Hostname, Policy, Parse, Committer and
// SpoolDir are required.
type Options struct {
	Hostname string
	Policy   func() *Policy
	// Verifier may be nil: then every result is "none".
	Verifier Verifier
	Parse    func(io.Reader) (*parse.Message, error)
	// Attachments, when set, completes the parsed message of msgID before
	// it is routed: the attachments parse left out (over
	// parse.inline_limit) get their signed URL, or a parse warning that
	// they have none (admin.AttachmentLinker.Link). After it, only the
	// header fields ingest prepends are added to the message, before the
	// commit.
	Attachments func(msg *parse.Message, msgID string)
	Committer   Committer
	SpoolDir    string
	Limits      Limits
	// TLSConfig enables STARTTLS.
	TLSConfig *tls.Config
	// EnforceDMARC refuses DMARC failures under p=reject with 550 5.7.1.
	EnforceDMARC bool
	// DeferOnTempError answers 451 4.4.3 when verification hit a DNS
	// temporary error; otherwise the message is accepted and flagged.
	DeferOnTempError bool
	// MultipleFrom is what to do with a message that has From fields
	// that do not give exactly one author address (header.Author.Exact
	// false; a message without From is DMARC "none" and shows no author):
	// MultipleFromReject (the default, also for "") refuses it 550 5.7.1;
	// MultipleFromStrictest accepts it for DMARC to judge every domain any
	// reading recovers, the strictest policy winning.
	MultipleFrom string
	// CheckLoop, when set, is asked at end of data about a message a
	// route forwards; an error (our X-Loop marker, too many Received
	// fields) refuses it 554 5.4.6 with the error's text.
	CheckLoop func(h *header.Header) error
	// IsForgedAR reports whether an Authentication-Results value claims
	// our authserv-id; nil uses a plain prefix check.
	IsForgedAR func(value, authServID string) bool
	Logger     *slog.Logger
	// Bounce, when set, is asked first about every recipient in our
	// domains: handled reports that the address is a bounce address of ours
	// (an SRS address of the relay); then refuse, if set, is the reply for
	// a bad or expired one, else d is the decision for it (relay the bounce
	// back, or drop it) in place of the rules.
	Bounce func(mailFrom, rcpt string) (d *route.Decision, refuse *smtp.SMTPError, handled bool)
	// BeforeCommit, when set, may refuse a routed message before it is
	// committed: a *Refusal it returns gives the reply and the reason (452
	// 4.2.2 and ReasonMailboxFull for a full mailbox), a bare
	// *smtp.SMTPError the reply (ReasonOther), any other error a 451.
	BeforeCommit func(ctx context.Context, m *inbound.Mail, d []route.Decision) error
	// Observer, when set, is told of every connection, acceptance and
	// refusal (metrics, the activity log).
	Observer Observer
	// Now is the clock; nil is time.Now.
	Now func() time.Time
	// Spam, when set, asks rspamd about every message at end of data
	// (spam.go).
	Spam *SpamOptions
}

// Observer is told what the listener does. Its methods must not block.
type Observer interface {
	Connection(remoteIP string)
	Accepted(m *inbound.Mail, d []route.Decision)
	// Refused is told of each refusal: the reply sent and its reason, at
	// stage "rcpt" (one recipient), "data" or "commit" (the message).
	Refused(remoteIP, mailFrom string, rcpts []string, r Refusal, stage string)
}

// Server is the SMTP MX listener.
type Server struct {
	o    Options
	smtp *smtp.Server
}

// New checks the options and makes a server.
func New(o Options) (*Server, error) {
	switch {
	case o.Hostname == "":
		return nil, errors.New("ingest: hostname is required")
	case o.Policy == nil:
		return nil, errors.New("ingest: policy is required")
	case o.Parse == nil:
		return nil, errors.New("ingest: parser is required")
	case o.Committer == nil:
		return nil, errors.New("ingest: committer is required")
	case o.SpoolDir == "":
		return nil, errors.New("ingest: spool dir is required")
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.IsForgedAR == nil {
		o.IsForgedAR = auth.IsForgedAR
	}
	l := &o.Limits
	def := func(p *int, v int) {
		if *p <= 0 {
			*p = v
		}
	}
	if l.MaxMessageBytes <= 0 {
		l.MaxMessageBytes = 25 << 20
	}
	def(&l.MaxRecipients, 100)
	def(&l.MaxLineLength, 4096)
	def(&l.MaxErrors, 10)
	def(&l.MaxCommands, 1000)
	def(&l.MaxConnections, 1000)
	def(&l.MaxConnectionsPerIP, 20)
	if l.ReadTimeout <= 0 {
		l.ReadTimeout = 5 * time.Minute
	}
	if l.WriteTimeout <= 0 {
		l.WriteTimeout = 5 * time.Minute
	}
	if l.VerifyTimeout <= 0 {
		l.VerifyTimeout = 20 * time.Second
	}
	if l.MaxHeaderBytes <= 0 {
		l.MaxHeaderBytes = header.DefaultMaxBytes
	}
	if l.MaxSessionTime <= 0 {
		l.MaxSessionTime = DefaultMaxSessionTime
	}
	if l.MinDataRate == 0 {
		l.MinDataRate = DefaultMinDataRate
	}
	if err := os.MkdirAll(o.SpoolDir, 0o700); err != nil {
		return nil, fmt.Errorf("ingest: spool dir: %w", err)
	}
	if err := cleanSpool(o.SpoolDir); err != nil {
		return nil, fmt.Errorf("ingest: spool dir: %w", err)
	}
	s := &Server{o: o}
	srv := smtp.NewServer(s)
	srv.Domain = o.Hostname
	srv.MaxMessageBytes = l.MaxMessageBytes
	srv.MaxRecipients = l.MaxRecipients
	srv.MaxLineLength = l.MaxLineLength
	srv.ReadTimeout = l.ReadTimeout
	srv.WriteTimeout = l.WriteTimeout
	srv.EnableSMTPUTF8 = true
	srv.TLSConfig = o.TLSConfig
	srv.ErrorLog = slogLogger{o.Logger}
	s.smtp = srv
	return s, nil
}

// Listen opens the SMTP listener on addr ("host:port"). Its connections
// have TCP keep-alive on with the kernel's timers (net.ipv4.tcp_keepalive_*,
// which operators behind NAT tune), as Postfix's accept does, rather than
// Go's 15 s ones set on each connection: one setsockopt call per
// connection instead of four. A session's read and write timeouts
// (Limits.ReadTimeout, WriteTimeout) bound an idle client either way.
func Listen(addr string) (net.Listener, error) {
	lc := net.ListenConfig{KeepAliveConfig: net.KeepAliveConfig{Enable: true, Idle: -1, Interval: -1, Count: -1}}
	return lc.Listen(context.Background(), "tcp", addr)
}

// Serve accepts connections on l until Shutdown or Close.
func (s *Server) Serve(l net.Listener) error {
	ll := &limitListener{Listener: l, s: s, perIP: map[string]int{}}
	err := s.smtp.Serve(ll)
	if errors.Is(err, smtp.ErrServerClosed) {
		return nil
	}
	return err
}

// Shutdown stops accepting connections and waits for sessions in flight to
// end until ctx is done; then it closes what is left. A message whose DATA
// was cut off this way was never acknowledged.
func (s *Server) Shutdown(ctx context.Context) error {
	err := s.smtp.Shutdown(ctx)
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		s.smtp.Close()
	}
	if errors.Is(err, smtp.ErrServerClosed) {
		return nil
	}
	return err
}

// Close closes the listeners and every connection at once.
func (s *Server) Close() error { return s.smtp.Close() }

// NewSession implements smtp.Backend.
func (s *Server) NewSession(c *smtp.Conn) (smtp.Session, error) {
	ctx, cancel := context.WithCancel(context.Background())
	_, isTLS := c.TLSConnectionState()
	ip := clientip.String(c.Conn().RemoteAddr())
	sc, _ := c.Conn().(*sessionConn)
	return &session{
		s: s, c: c, ctx: ctx, cancel: cancel, conn: sc,
		ip: ip, helo: c.Hostname(), tls: isTLS,
		log: s.o.Logger.With("remote_ip", ip),
	}, nil
}

type slogLogger struct{ l *slog.Logger }

func (l slogLogger) Printf(format string, v ...any) { l.l.Debug(fmt.Sprintf(format, v...)) }
func (l slogLogger) Println(v ...any)               { l.l.Debug(fmt.Sprint(v...)) }
