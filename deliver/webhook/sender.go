package webhook

import (
	"bytes"
	"cmp"
	"context"
	"crypto/ed25519"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"time"

	"golang.org/x/net/http/httpguts"

	"github.com/mailhook/mailhook/deliver"
	"github.com/mailhook/mailhook/inbound"
	"github.com/mailhook/mailhook/internal/specialip"
)

// Defaults.
const (
	// DefaultTimeout bounds one attempt (Endpoint.Timeout).
	DefaultTimeout = 10 * time.Second
	// DefaultConcurrency is the attempts in flight per endpoint.
	DefaultConcurrency = 10
	// DefaultMaxResponseBytes of a response body are recorded.
	DefaultMaxResponseBytes = 1 << 10
	// DefaultDrainBytes more are read and dropped to keep the connection.
	DefaultDrainBytes = 64 << 10
)

// Endpoint is one configured webhook destination (config key
// webhooks.NAME).
type Endpoint struct {
	Name string
	// URL is where events are POSTed (https, or http).
	URL string
	// Secrets are "whsec_" symmetric secrets; each gives one "v1"
	// signature. Several are active during a rotation (new and old).
	Secrets []string
	// SigningKeys are optional "whsk_" ed25519 secret keys; each gives one
	// asymmetric "v1a" signature, which receivers verify with the "whpk_"
	// public key (see PublicKey). With raw: true they make the sender hold
	// the whole body in memory (ed25519 does not stream).
	SigningKeys []string
	// Timeout bounds one attempt: connect, send, and read the response.
	// Zero means DefaultTimeout.
	Timeout time.Duration
	// Concurrency is the most attempts in flight to this endpoint at once.
	// Zero means DefaultConcurrency.
	Concurrency int
	// Headers are extra request header fields (an Authorization, say).
	// They cannot replace Content-Type, the webhook-* fields or framing.
	Headers map[string]string
	// Raw adds "raw", the base64 of the whole message as received.
	Raw bool
	// AllowPrivate lets the endpoint reach loopback, private, link-local
	// and other internal addresses, refused by default (see CheckAddr).
	AllowPrivate bool
	// Mode is ModeAsync (the default) or ModeSync (see SyncStep).
	Mode string
	// SyncTimeout bounds a sync POST; zero means DefaultSyncTimeout.
	SyncTimeout time.Duration
	// OnFailure is what a failed sync POST does: OnFailureDefer (451, the
	// default) or OnFailureQueue.
	OnFailure string
}

// reserved are header fields the sender owns.
var reserved = map[string]bool{
	"content-type": true, "content-length": true, "transfer-encoding": true,
	"connection": true, "host": true, "te": true, "upgrade": true, "trailer": true,
	HeaderID: true, HeaderTimestamp: true, HeaderSignature: true,
}

// Validate reports every problem of e at once, each naming the key
// (webhooks.NAME.KEY), each wrapping ErrBadEndpoint.
func (e Endpoint) Validate() error {
	_, err := e.compile()
	return err
}

// endpoint is an Endpoint ready to send to.
type endpoint struct {
	Endpoint
	host    string // host[:port], for error texts (never the path or query)
	secrets [][]byte
	keys    []ed25519.PrivateKey
	sem     chan struct{}
	client  *http.Client
	err     error // the configuration problem; every job fails permanently
}

func (e Endpoint) compile() (*endpoint, error) {
	ep := &endpoint{Endpoint: e}
	if ep.Timeout == 0 {
		ep.Timeout = DefaultTimeout
	}
	if ep.Concurrency == 0 {
		ep.Concurrency = DefaultConcurrency
	}
	ep.Mode, ep.SyncTimeout, ep.OnFailure = cmp.Or(ep.Mode, ModeAsync), cmp.Or(ep.SyncTimeout, DefaultSyncTimeout), cmp.Or(ep.OnFailure, OnFailureDefer)
	var errs []error
	bad := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%w: webhooks.%s.%s: %s", ErrBadEndpoint, e.Name, key, fmt.Sprintf(format, args...)))
	}
	u, err := url.Parse(e.URL)
	switch {
	case e.URL == "":
		bad("url", "missing")
	case err != nil:
		bad("url", "not a url")
	case u.Scheme != "https" && u.Scheme != "http":
		bad("url", "scheme %q, want https or http", u.Scheme)
	case u.Host == "" || u.Hostname() == "":
		bad("url", "no host")
	default:
		ep.host = u.Host
		if a, err := netip.ParseAddr(u.Hostname()); err == nil && !e.AllowPrivate {
			if r := specialip.Reason(a); r != "" {
				bad("url", "%s is a %s; set allow_private to allow it", a, r)
			}
		}
	}
	for i, s := range e.Secrets {
		k, err := ParseSecret(s)
		if err != nil {
			bad(fmt.Sprintf("secrets[%d]", i), "%v", errors.Unwrap(err)) // never echo the secret
			continue
		}
		ep.secrets = append(ep.secrets, k)
	}
	for i, s := range e.SigningKeys {
		k, err := ParseSigningKey(s)
		if err != nil {
			bad(fmt.Sprintf("signing_keys[%d]", i), "%v", err)
			continue
		}
		ep.keys = append(ep.keys, k)
	}
	if len(e.Secrets) == 0 && len(e.SigningKeys) == 0 {
		bad("secret", "missing: every webhook is signed (generate one with a whsec_ prefix)")
	}
	if e.Timeout < 0 {
		bad("timeout", "negative")
	}
	if e.Concurrency < 0 {
		bad("concurrency", "negative")
	}
	for k, v := range e.Headers {
		switch {
		case !httpguts.ValidHeaderFieldName(k):
			bad("headers", "%q is not a valid header field name", k)
		case reserved[strings.ToLower(k)]:
			bad("headers", "%q is set by mailhook and cannot be replaced", k)
		case !httpguts.ValidHeaderFieldValue(v):
			bad("headers", "value of %q has invalid characters", k)
		}
	}
	checkSync(ep, bad)
	ep.sem = make(chan struct{}, max(ep.Concurrency, 1))
	if len(errs) > 0 {
		ep.err = errors.Join(errs...)
	}
	return ep, ep.err
}

// TransportOptions tune the HTTP transports (one for endpoints that may
// reach private addresses, one for those that may not; both keep
// connections alive and pooled, and speak HTTP/2 where the server offers it).
type TransportOptions struct {
	// DialTimeout bounds a TCP connect (default 10s).
	DialTimeout time.Duration
	// TLSHandshakeTimeout bounds a TLS handshake (default 10s).
	TLSHandshakeTimeout time.Duration
	// MaxIdleConnsPerHost is the idle connections kept per host (default:
	// the largest endpoint concurrency).
	MaxIdleConnsPerHost int
	// IdleConnTimeout closes idle connections after this long (default 90s).
	IdleConnTimeout time.Duration
	// TLSConfig is the client TLS configuration (nil: system roots).
	TLSConfig *tls.Config
	// DisableHTTP2 keeps to HTTP/1.1.
	DisableHTTP2 bool
}

// Options configure a Sender.
type Options struct {
	// Endpoints by name (the Job.Target of webhook jobs).
	Endpoints map[string]Endpoint
	// Version is mailhook's version, for the default User-Agent.
	Version string
	// UserAgent defaults to "mailhook/<Version>".
	UserAgent string
	// MaxResponseBytes of each response body are recorded in the attempt
	// (default 1 KiB).
	MaxResponseBytes int
	// DrainBytes more are read and dropped so the connection can be reused
	// (default 64 KiB); past that the connection is closed instead.
	DrainBytes int64
	// Logger gets one debug line per attempt (default: discard).
	Logger *slog.Logger
	// Now is the clock for webhook-timestamp and attempt times (default
	// time.Now).
	Now       func() time.Time
	Transport TransportOptions
}

// Sender POSTs signed webhook events. It implements deliver.Handler for
// jobs of kind deliver.KindWebhook and is safe for concurrent use.
type Sender struct {
	eps     map[string]*endpoint
	ua      string
	maxResp int
	drain   int64
	log     *slog.Logger
	now     func() time.Time

	guarded, open *http.Transport
}

var _ deliver.Handler = (*Sender)(nil)

// NewSender returns a Sender for o.Endpoints. An endpoint whose
// configuration is invalid (see Endpoint.Validate) is kept: its jobs fail
// permanently with the reason, and NewSender logs it.
func NewSender(o Options) *Sender {
	s := &Sender{
		eps:     make(map[string]*endpoint, len(o.Endpoints)),
		ua:      o.UserAgent,
		maxResp: o.MaxResponseBytes,
		drain:   o.DrainBytes,
		log:     o.Logger,
		now:     o.Now,
	}
	if s.ua == "" {
		s.ua = "mailhook/" + cmp.Or(o.Version, "dev")
	}
	if s.maxResp <= 0 {
		s.maxResp = DefaultMaxResponseBytes
	}
	if s.drain <= 0 {
		s.drain = DefaultDrainBytes
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.now == nil {
		s.now = time.Now
	}
	conc := 0
	for name, e := range o.Endpoints {
		if e.Name == "" {
			e.Name = name
		}
		ep, err := e.compile()
		if err != nil {
			s.log.Error("webhook endpoint invalid; its deliveries will be dead-lettered", "endpoint", name, "error", err)
		} else if strings.HasPrefix(e.URL, "http:") && !e.AllowPrivate {
			s.log.Warn("webhook endpoint is plain http: events travel unencrypted", "endpoint", name)
		}
		conc = max(conc, ep.Concurrency)
		s.eps[name] = ep
	}
	t := o.Transport
	if t.MaxIdleConnsPerHost <= 0 {
		t.MaxIdleConnsPerHost = max(conc, DefaultConcurrency)
	}
	s.guarded = newTransport(t, true)
	s.open = newTransport(t, false)
	guardedClient, openClient := newClient(s.guarded), newClient(s.open)
	for _, ep := range s.eps {
		ep.client = guardedClient
		if ep.AllowPrivate {
			ep.client = openClient
		}
	}
	return s
}

func newTransport(o TransportOptions, guard bool) *http.Transport {
	d := &net.Dialer{Timeout: cmpDur(o.DialTimeout, 10*time.Second), KeepAlive: 30 * time.Second}
	if guard {
		d.Control = dialControl
	}
	var tc *tls.Config
	if o.TLSConfig != nil {
		tc = o.TLSConfig.Clone()
	}
	return &http.Transport{
		// No proxy: a proxy would dial on our behalf, past the guard.
		Proxy:                  nil,
		DialContext:            d.DialContext,
		ForceAttemptHTTP2:      !o.DisableHTTP2,
		TLSClientConfig:        tc,
		TLSHandshakeTimeout:    cmpDur(o.TLSHandshakeTimeout, 10*time.Second),
		MaxIdleConns:           0, // no global cap; per host below
		MaxIdleConnsPerHost:    o.MaxIdleConnsPerHost,
		IdleConnTimeout:        cmpDur(o.IdleConnTimeout, 90*time.Second),
		ExpectContinueTimeout:  time.Second,
		MaxResponseHeaderBytes: 64 << 10,
		// Room for the request's header and a usual event: one write
		// to the socket instead of a 4 KiB one and the rest.
		WriteBufferSize: 64 << 10,
	}
}

func cmpDur(d, def time.Duration) time.Duration {
	if d <= 0 {
		return def
	}
	return d
}

func newClient(t *http.Transport) *http.Client {
	return &http.Client{
		Transport: t,
		// Redirects are failures, not followed (Standard Webhooks,
		// "Delivery success and failure"); following one would also let a
		// public endpoint bounce us to any URL.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// Close drops idle connections. The Sender stays usable.
func (s *Sender) Close() {
	s.guarded.CloseIdleConnections()
	s.open.CloseIdleConnections()
}

// Handle performs one attempt of a webhook job: it POSTs the event of mail
// to the endpoint named by job.Target and classifies the result (see
// Classify). It honours ctx and returns when the attempt is over.
func (s *Sender) Handle(ctx context.Context, job *deliver.Job, mail *inbound.Mail, raw deliver.RawOpener) deliver.Outcome {
	_, o := s.attempt(ctx, job, mail, raw, false)
	return o
}

// attempt is one POST of job and its classified outcome, bounded by the
// endpoint's sync_timeout when sync is set, else by its timeout.
func (s *Sender) attempt(ctx context.Context, job *deliver.Job, mail *inbound.Mail, raw deliver.RawOpener, sync bool) (result, deliver.Outcome) {
	ep := s.eps[job.Target]
	var r result
	switch {
	case ep == nil:
		r.at = s.now()
		r.err = fmt.Errorf("%w %q: no such webhook in the configuration (removed?)", ErrUnknownEndpoint, job.Target)
	case ep.err != nil:
		r.at = s.now()
		r.err = ep.err
	case job.ID == "" || strings.ContainsAny(job.ID, ". \t\r\n"):
		r.at = s.now()
		r.err = fmt.Errorf("%w: id %q is empty or holds '.' or white space", ErrBadJob, job.ID)
	default:
		timeout := ep.Timeout
		if sync {
			timeout = ep.SyncTimeout
		}
		r = s.post(ctx, ep, timeout, job, mail, raw)
	}
	o := Classify(r.status, r.header, r.err, r.at)
	o.Attempt.At = r.at
	o.Attempt.Latency = r.latency
	o.Attempt.Response = r.response
	o.Attempt.Body = r.sent
	s.log.Debug("webhook attempt", "msg_id", job.MsgID, "route", job.Route, "attempt", job.Attempts,
		"endpoint", job.Target, "status", r.status, "latency", r.latency, "done", o.Done,
		"permanent", o.Permanent, "error", o.Attempt.Error, "sync", sync)
	return r, o
}

// result is what one POST gave.
type result struct {
	at       time.Time
	latency  time.Duration
	status   int
	header   http.Header
	response string
	err      error
	// sent is the event sent, without the raw message (payload.event).
	sent []byte
}

func (s *Sender) post(ctx context.Context, ep *endpoint, timeout time.Duration, job *deliver.Job, mail *inbound.Mail, raw deliver.RawOpener) (r result) {
	select {
	case ep.sem <- struct{}{}:
	case <-ctx.Done():
		r.at = s.now()
		r.err = fmt.Errorf("webhook: waiting for a free slot to %s: %w", ep.host, ctx.Err())
		return r
	}
	defer func() { <-ep.sem }()

	r.at = s.now()
	start := time.Now()
	defer func() { r.latency = time.Since(start) }()

	p, err := s.payload(ep, job, mail, raw)
	if err != nil {
		r.err = err
		return r
	}
	r.sent = p.event()
	// The timestamp is the attempt's, so it changes on every retry while
	// webhook-id stays (Standard Webhooks, "Webhook metadata").
	ts := r.at
	sg := newSigner(ep.secrets, job.ID, ts)
	var body []byte // the whole body, unless it streams
	var size int64
	switch {
	case p.raw == nil:
		body = p.head
	case len(ep.keys) > 0:
		rc, err := p.open()
		if err != nil {
			r.err = err
			return r
		}
		body, err = io.ReadAll(rc)
		rc.Close()
		if err != nil {
			r.err = fmt.Errorf("webhook: read raw message: %w", err)
			return r
		}
	default:
		// HMAC first, then send: the signature header goes before the
		// body, so the raw message is read twice rather than held.
		rc, err := p.open()
		if err != nil {
			r.err = err
			return r
		}
		size, err = io.Copy(sg, rc)
		rc.Close()
		if err != nil {
			r.err = fmt.Errorf("webhook: read raw message: %w", err)
			return r
		}
	}
	if body != nil {
		sg.Write(body)
		size = int64(len(body))
	}
	sig := sg.header(ep.keys, job.ID, ts, body)

	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, ep.URL, nil)
	if err != nil {
		r.err = fmt.Errorf("%w: webhooks.%s.url: %v", ErrBadEndpoint, ep.Name, err)
		return r
	}
	if body != nil {
		req.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil }
	} else {
		req.GetBody = p.open
	}
	// GetBody also lets the transport resend on a fresh connection when a
	// pooled keep-alive connection turns out closed before anything was
	// written.
	if req.Body, err = req.GetBody(); err != nil {
		r.err = err
		return r
	}
	req.ContentLength = size
	h := req.Header
	h.Set("User-Agent", s.ua)
	for k, v := range ep.Headers {
		h.Set(k, v)
	}
	h.Set("Content-Type", "application/json")
	h.Set(HeaderID, job.ID)
	h.Set(HeaderTimestamp, strconv.FormatInt(ts.Unix(), 10))
	h.Set(HeaderSignature, sig)

	resp, err := ep.client.Do(req)
	if err != nil {
		r.err = describeErr(err, timeout, ep.host)
		return r
	}
	defer resp.Body.Close()
	r.status, r.header = resp.StatusCode, resp.Header
	r.response = s.readResponse(resp.Body)
	return r
}

// payload builds the body of job's delivery to ep.
func (s *Sender) payload(ep *endpoint, job *deliver.Job, mail *inbound.Mail, raw deliver.RawOpener) (*payload, error) {
	if mail == nil {
		return nil, fmt.Errorf("webhook: job %s has no message", job.ID)
	}
	if ep.Raw && raw == nil {
		return nil, fmt.Errorf("webhook: job %s: endpoint %s wants the raw message and none is stored", job.ID, ep.Name)
	}
	head, err := marshalHead(newEvent(job, mail), ep.Raw)
	if err != nil {
		return nil, err
	}
	p := &payload{head: head}
	if ep.Raw {
		p.raw, p.tail = raw, rawTail
	}
	return p, nil
}

// readResponse keeps the first bytes of a response body and drains a
// bounded amount more, so the connection goes back to the pool; a longer
// body is left unread and its connection closed by Body.Close.
func (s *Sender) readResponse(body io.Reader) string {
	buf := make([]byte, s.maxResp)
	n, _ := io.ReadFull(body, buf)
	if n == len(buf) {
		io.CopyN(io.Discard, body, s.drain)
	}
	return strings.ToValidUTF8(string(buf[:n]), "\uFFFD")
}
