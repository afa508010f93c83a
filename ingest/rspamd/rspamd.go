// Package rspamd asks rspamd (https://rspamd.com) for a spam verdict on a
// message, over its HTTP protocol: one POST of the message to /checkv2 on
// the normal worker (or the proxy in self-scan mode), with the envelope in
// request headers, and a JSON reply holding the score, the action rspamd
// recommends and the symbols that made the score.
//
// mailhook has already checked SPF, DKIM and DMARC when it asks, so it
// passes its own verdicts in the SPF, DKIM and DMARC request headers that
// rspamd's http_headers module reads; with that module enabled, rspamd
// skips its own checks and scores ours instead of repeating the DNS work.
package rspamd

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/mailhook/mailhook/inbound"
)

// Request is what rspamd is told about a message beside its bytes.
type Request struct {
	// IP is the SMTP client's address and Helo its HELO/EHLO name.
	IP   string
	Helo string
	// MailFrom is the reverse-path ("" for the null sender) and Rcpts
	// the recipients.
	MailFrom string
	Rcpts    []string
	// QueueID is our id for the message (msg_id), so rspamd's log and
	// ours can be joined.
	QueueID string
	// TLSVersion and TLSCipher describe the session's TLS, when it has one.
	TLSVersion, TLSCipher string
	// Hostname is our own name (rspamd's MTA-Name, used in the
	// Authentication-Results it may write).
	Hostname string
	// Auth are our SPF/DKIM/DMARC verdicts; nil lets rspamd check itself.
	Auth *inbound.Auth
}

// Options configure a Client.
type Options struct {
	// URL is the rspamd normal worker (or proxy), like
	// "http://127.0.0.1:11333"; the path /checkv2 is added when the URL
	// has no path.
	URL string
	// Timeout bounds one check, connection to parsed reply (default 5s).
	Timeout time.Duration
	// Password is sent in the Password header, for an rspamd that asks
	// for one (a controller or proxy with a password set).
	Password string
	// HTTPClient is used when set; by default a client of its own that
	// keeps connections to rspamd open.
	HTTPClient *http.Client
}

// DefaultTimeout is the timeout of a check when Options.Timeout is zero.
const DefaultTimeout = 5 * time.Second

// maxReply bounds the JSON reply read; rspamd's replies are a few KB.
const maxReply = 1 << 20

// Client checks messages with one rspamd. It is safe for concurrent use.
type Client struct {
	url      string
	timeout  time.Duration
	password string
	hc       *http.Client
}

// CheckURL returns the URL a check is POSTed to for the configured url, or
// an error saying why the configured url is not usable.
func CheckURL(raw string) (string, error) {
	u, err := url.Parse(raw)
	switch {
	case err != nil:
		return "", fmt.Errorf("%q is not a URL (like http://127.0.0.1:11333): %v", raw, err)
	case u.Scheme != "http" && u.Scheme != "https":
		return "", fmt.Errorf("%q must be an http or https URL (like http://127.0.0.1:11333)", raw)
	case u.Host == "":
		return "", fmt.Errorf("%q has no host", raw)
	case u.RawQuery != "" || u.Fragment != "":
		return "", fmt.Errorf("%q must not have a query or fragment", raw)
	}
	if u.Path == "" || u.Path == "/" {
		u.Path = "/checkv2"
	}
	return u.String(), nil
}

// New returns a client for o.
func New(o Options) (*Client, error) {
	u, err := CheckURL(o.URL)
	if err != nil {
		return nil, fmt.Errorf("rspamd: %w", err)
	}
	c := &Client{url: u, timeout: cmp.Or(o.Timeout, DefaultTimeout), password: o.Password, hc: o.HTTPClient}
	if c.hc == nil {
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.MaxIdleConnsPerHost = 64 // one per SMTP session in flight, reused
		tr.Proxy = nil              // rspamd sits beside us, never behind a proxy
		c.hc = &http.Client{Transport: tr}
	}
	return c, nil
}

// Check sends the size bytes of body to rspamd with req and returns its
// verdict. The body is streamed as it is read (a spool file stays on disk).
// An error means no verdict: rspamd is down, did not answer within the
// timeout, or answered something that is not a verdict.
func (c *Client) Check(ctx context.Context, req *Request, body io.Reader, size int64) (*inbound.Spam, error) {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	hr, err := http.NewRequestWithContext(ctx, http.MethodPost, c.url, io.NopCloser(body))
	if err != nil {
		return nil, fmt.Errorf("rspamd: %w", err)
	}
	// A known length lets rspamd read the message in one piece rather than
	// in chunks; NopCloser keeps net/http from guessing it.
	hr.ContentLength = size
	setHeaders(hr.Header, req)
	if c.password != "" {
		hr.Header.Set("Password", c.password)
	}
	resp, err := c.hc.Do(hr)
	if err != nil {
		return nil, fmt.Errorf("rspamd: %w", err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxReply+1))
	if err != nil {
		return nil, fmt.Errorf("rspamd: reading the reply: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("rspamd: %s: %s", resp.Status, firstLine(data))
	}
	if len(data) > maxReply {
		return nil, errors.New("rspamd: reply over 1 MB")
	}
	return parseReply(data)
}

// setHeaders writes the request headers of rspamd's protocol
// (https://rspamd.com/doc/developers/protocol.html).
func setHeaders(h http.Header, r *Request) {
	if r == nil {
		return
	}
	set := func(k, v string) {
		if v != "" {
			h.Set(k, v)
		}
	}
	set("IP", r.IP)
	set("Helo", r.Helo)
	if r.MailFrom == "" {
		h.Set("From", "<>") // the null reverse-path (RFC 5321 §4.5.5)
	} else {
		h.Set("From", r.MailFrom)
	}
	for _, rc := range r.Rcpts {
		h.Add("Rcpt", rc) // one header per recipient
	}
	set("Queue-Id", r.QueueID)
	set("MTA-Name", r.Hostname)
	set("TLS-Version", r.TLSVersion)
	set("TLS-Cipher", r.TLSCipher)
	if r.Auth != nil {
		for k, v := range authHeaders(r.Auth) {
			h.Set(k, v)
		}
	}
}

// authHeaders maps our verdicts to the SPF, DKIM and DMARC headers
// rspamd's http_headers module reads: a JSON object with a "result" in
// rspamd's words (pass, fail, softfail, neutral, tempfail, permfail, na;
// for DMARC also quarantine and reject), or for DKIM a list of "results"
// with their domains. A header rspamd gets makes it skip its own check of
// that method.
func authHeaders(a *inbound.Auth) map[string]string {
	out := map[string]string{}
	enc := func(v any) string {
		b, _ := json.Marshal(v) // maps and strings only: cannot fail
		return string(b)
	}
	type res struct {
		Result string `json:"result"`
		Domain string `json:"domain,omitempty"`
	}
	if r := spfWord(a.SPF.Result); r != "" {
		out["SPF"] = enc(res{Result: r})
	}
	var dkim []res
	for _, d := range a.DKIM {
		if r := dkimWord(d.Result); r != "" {
			dkim = append(dkim, res{Result: r, Domain: d.Domain})
		}
	}
	if len(a.DKIM) == 0 {
		dkim = append(dkim, res{Result: "na"})
	}
	if len(dkim) > 0 {
		out["DKIM"] = enc(map[string][]res{"results": dkim})
	}
	if r := dmarcWord(a.DMARC); r != "" {
		out["DMARC"] = enc(res{Result: r, Domain: a.DMARC.Domain})
	}
	return out
}

// spfWord is rspamd's word for an SPF result (RFC 7208 §2.6). temperror
// has none that makes a symbol; it is still sent, so rspamd does not
// repeat the lookup that just failed.
func spfWord(r inbound.Verdict) string {
	switch r {
	case inbound.Pass, inbound.Fail, inbound.SoftFail, inbound.Neutral:
		return string(r)
	}
	return errWord(r)
}

// dkimWord is rspamd's word for a DKIM result (RFC 6376 §6.1, RFC 8601
// §2.7.1); neutral and policy have none, and such a signature is left out.
func dkimWord(r inbound.Verdict) string {
	switch r {
	case inbound.Pass, inbound.Fail:
		return string(r)
	case inbound.TempError, inbound.PermError:
		return errWord(r)
	}
	return ""
}

// dmarcWord is rspamd's word for a DMARC result: a failure is named by the
// policy that applies to it (RFC 7489 §6.3), as rspamd's own symbols are.
func dmarcWord(d inbound.DMARCResult) string {
	switch d.Result {
	case inbound.Pass:
		return "pass"
	case inbound.Fail:
		switch d.Policy {
		case "reject":
			return "reject"
		case "quarantine":
			return "quarantine"
		}
		return "softfail"
	}
	return errWord(d.Result)
}

// errWord is rspamd's word for the results the methods share: none,
// temperror and permerror (RFC 8601 §2.7).
func errWord(r inbound.Verdict) string {
	switch r {
	case inbound.None:
		return "na"
	case inbound.TempError:
		return "tempfail"
	case inbound.PermError:
		return "permfail"
	}
	return ""
}

// reply is the part of rspamd's /checkv2 reply we read.
type reply struct {
	Score         *float64 `json:"score"`
	RequiredScore float64  `json:"required_score"`
	Action        string   `json:"action"`
	Symbols       map[string]struct {
		Score float64 `json:"score"`
	} `json:"symbols"`
	Error string `json:"error"`
}

// parseReply decodes a /checkv2 reply. Symbols come sorted by score, the
// largest first, then by name, so the payload is stable.
func parseReply(data []byte) (*inbound.Spam, error) {
	var rp reply
	if err := json.Unmarshal(data, &rp); err != nil {
		return nil, fmt.Errorf("rspamd: reply is not JSON: %w", err)
	}
	if rp.Error != "" {
		return nil, fmt.Errorf("rspamd: %s", rp.Error)
	}
	if rp.Score == nil || !validAction(rp.Action) {
		return nil, fmt.Errorf("rspamd: reply without a score and an action: %s", firstLine(data))
	}
	r := &inbound.Spam{Result: inbound.SpamResultOK, Score: *rp.Score, RequiredScore: rp.RequiredScore, Action: rp.Action,
		Symbols: make([]inbound.SpamSymbol, 0, len(rp.Symbols))}
	for name, s := range rp.Symbols {
		r.Symbols = append(r.Symbols, inbound.SpamSymbol{Name: name, Score: s.Score})
	}
	slices.SortFunc(r.Symbols, func(a, b inbound.SpamSymbol) int {
		if c := cmp.Compare(b.Score, a.Score); c != 0 {
			return c
		}
		return strings.Compare(a.Name, b.Name)
	})
	return r, nil
}

// validAction reports whether a is an action name: one of inbound.SpamActions, or a
// custom one made of lower-case letters, digits, spaces, '_' and '-'
// (it goes into logs, metrics labels and the payload).
func validAction(a string) bool {
	if slices.Contains(inbound.SpamActions, a) {
		return true
	}
	if a == "" || len(a) > 32 {
		return false
	}
	for _, c := range a {
		if (c < 'a' || c > 'z') && (c < '0' || c > '9') && c != ' ' && c != '_' && c != '-' {
			return false
		}
	}
	return true
}

// Failed returns the verdict recorded when rspamd could not be asked.
func Failed(err error) *inbound.Spam {
	return &inbound.Spam{Result: inbound.SpamResultError, Symbols: []inbound.SpamSymbol{}, Error: err.Error()}
}

// firstLine returns the start of a reply body for an error message.
func firstLine(b []byte) string {
	if i := bytes.IndexByte(b, '\n'); i >= 0 {
		b = b[:i]
	}
	if len(b) > 200 {
		b = b[:200]
	}
	return strings.ToValidUTF8(string(b), "?")
}
