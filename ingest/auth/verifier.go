package auth

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"strings"
	"sync"
	"time"

	"github.com/mailhook/mailhook/dns"
	"github.com/mailhook/mailhook/header"
	"github.com/mailhook/mailhook/inbound"
)

// Defaults for Options.
const (
	DefaultMessageTimeout = 20 * time.Second
	DefaultMaxSignatures  = 5
)

// Options configures a Verifier.
type Options struct {
	// DNS is the resolver for every lookup, shared with the other stages
	// that need DNS (the relay's MX lookups). Nil means the verifier makes
	// its own from Resolver, LookupTimeout, CacheSize and Logger.
	DNS *dns.Resolver
	// Resolver is the DNS server used for every lookup ("127.0.0.1:5353");
	// empty means the system configuration (/etc/resolv.conf). Unused
	// when DNS is set.
	Resolver string
	// AuthServID is our hostname, the authserv-id of the
	// Authentication-Results we write (RFC 8601 §2.5). Required.
	AuthServID string
	// LookupTimeout bounds each DNS lookup (dns.DefaultLookupTimeout if
	// zero).
	LookupTimeout time.Duration
	// MessageTimeout bounds the DNS work for one message: CheckSPF, and
	// Verify's DKIM and DMARC (DefaultMessageTimeout if zero).
	MessageTimeout time.Duration
	// CacheSize bounds the DNS cache (dns.DefaultCacheSize if zero, none
	// if negative).
	CacheSize int
	// MaxSignatures bounds how many DKIM-Signature fields are verified per
	// message, to bound the work a hostile message can cause
	// (DefaultMaxSignatures if zero). Further signatures are ignored.
	MaxSignatures int
	// Sample decides, for a DMARC failure under a record with pct below
	// 100, whether this message is in the sampled share that gets the
	// policy (RFC 7489 §6.6.4). Nil means uniformly random. Tests inject a
	// deterministic one.
	Sample func(pct int) bool
	// MaxHeaderBytes bounds the header section Verify reads
	// (header.DefaultMaxBytes if zero); the body is streamed. A header
	// over the limit is not verified (DKIM and DMARC permerror), since its
	// From field may lie past what was read; ingest refuses such a message
	// before verifying it, with the same limit.
	MaxHeaderBytes int
	// Logger receives debug lines. Nil discards.
	Logger *slog.Logger
}

// Verifier checks SPF, DKIM and DMARC with one shared DNS resolver. Its
// methods are safe for concurrent use.
//
// The SMTP session uses it in three steps:
//
//  1. at MAIL FROM, start CheckSPF (it may run while DATA arrives);
//  2. at end of data, call Verify with the SPF result and the message as
//     received; remove every Authentication-Results field for which
//     IsForgedAR is true (RFC 8601 §5) and prepend
//     inbound.Auth.HeaderField();
//  3. decide: inbound.Auth.Reject() under verify.enforce_dmarc means 550
//     5.7.1 (RFC 7489 §6.7); p=quarantine, or p=reject without
//     enforcement, is ingest's to flag (inbound.Auth.Quarantine).
//     DMARC "temperror" (a DNS failure that kept an aligned identifier
//     from passing) maps to 451 4.4.3 or accept-and-flag, by config.
type Verifier struct {
	res        *dns.Resolver
	authServID string
	msgTimeout time.Duration
	maxSigs    int
	maxHeader  int
	sample     func(pct int) bool
	log        *slog.Logger
	traceSPF   bool
}

// NewVerifier returns a Verifier for o.
func NewVerifier(o Options) (*Verifier, error) {
	if strings.TrimSpace(o.AuthServID) == "" {
		return nil, errors.New("auth: empty authserv-id")
	}
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	res := o.DNS
	if res == nil {
		var err error
		res, err = dns.NewResolver(dns.ResolverOptions{
			Server:    o.Resolver,
			Timeout:   o.LookupTimeout,
			CacheSize: o.CacheSize,
			Logger:    log,
		})
		if err != nil {
			return nil, fmt.Errorf("auth: resolver: %w", err)
		}
	}
	v := &Verifier{
		res:        res,
		authServID: o.AuthServID,
		msgTimeout: o.MessageTimeout,
		maxSigs:    o.MaxSignatures,
		maxHeader:  o.MaxHeaderBytes,
		sample:     o.Sample,
		log:        log,
		traceSPF:   log.Enabled(context.Background(), slog.LevelDebug-4),
	}
	if v.msgTimeout <= 0 {
		v.msgTimeout = DefaultMessageTimeout
	}
	if v.maxSigs <= 0 {
		v.maxSigs = DefaultMaxSignatures
	}
	if v.sample == nil {
		v.sample = func(pct int) bool { return rand.IntN(100) < pct }
	}
	return v, nil
}

// Resolver returns the DNS resolver the verifier uses: Options.DNS, or
// the one it made.
func (v *Verifier) Resolver() *dns.Resolver { return v.res }

// verifyReaders are Verify's buffers, pooled: nothing of one outlives the
// call (the header read holds copies; DKIM reads the body within it).
var verifyReaders = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, 8<<10) }}

// dkimInput is what the DKIM library reads: the header as read, written
// out again, then what was read past it, then the rest. It has no
// WriteTo: the library copies the body through its own bufio.Reader,
// whose WriteTo would hand the copy to a MultiReader's, and that
// allocates a 32 KB buffer for every message.
func dkimInput(hdr io.Reader, rest []byte, body io.Reader) io.Reader {
	return struct{ io.Reader }{io.MultiReader(hdr, bytes.NewReader(rest), body)}
}

// Verify checks the DKIM signatures of msg (the message as received,
// header and body, CRLF line ends) and DMARC (RFC 7489) for its From
// domain(s) using spf (from CheckSPF), and fills AuthenticationResults
// with the header field value to prepend (RFC 8601), authserv-id first.
//
// A bad or unverifiable signature never makes an error: verdicts are in the
// inbound.Auth returned (whose Quarantine flag is ingest's to set). The
// error is non-nil only when msg cannot be read; msg is read to its end
// otherwise. DNS work is bounded by Options.MessageTimeout.
func (v *Verifier) Verify(ctx context.Context, spf inbound.SPFResult, msg io.Reader) (*inbound.Auth, error) {
	ctx, cancel := context.WithTimeout(ctx, v.msgTimeout)
	defer cancel()

	res := &inbound.Auth{SPF: spf, DKIM: []inbound.DKIMResult{}}
	rd := &captureReader{r: msg}
	br := verifyReaders.Get().(*bufio.Reader)
	br.Reset(rd)
	defer func() {
		br.Reset(nil)
		verifyReaders.Put(br)
	}()
	// The header as every stage reads it (package header). DKIM is given
	// that reading written out again, so that the library's own header
	// parser sees exactly these fields; for a header that ended as the
	// rule says, these are the bytes received.
	hdr, err := header.Read(br, v.maxHeader)
	if rd.err != nil {
		return nil, fmt.Errorf("auth: read message: %w", rd.err)
	}
	complete := err == nil
	if complete {
		var hb bytes.Buffer
		_ = hdr.Write(&hb, nil)
		res.DKIM = v.verifyDKIM(ctx, hdr.Fields, dkimInput(&hb, hdr.Rest, br))
	} else {
		res.DKIM = []inbound.DKIMResult{{Result: inbound.PermError, Error: "header block too large"}}
	}
	if _, err := io.Copy(io.Discard, br); err != nil || rd.err != nil {
		return nil, fmt.Errorf("auth: read message: %w", errors.Join(rd.err, err))
	}

	if complete {
		author := header.ReadAuthor(hdr)
		res.DMARC = v.checkDMARC(ctx, &author, spf, res.DKIM)
	} else {
		res.DMARC = inbound.DMARCResult{Result: inbound.PermError, Policy: "none"}
	}
	res.AuthenticationResults = v.formatAR(res)
	if v.log.Enabled(ctx, slog.LevelDebug) { // Summary builds a map: only when logged
		v.log.Debug("message verified", "spf", spf.Result, "dkim", res.Summary()["dkim"],
			"dmarc", res.DMARC.Result, "dmarc_policy", res.DMARC.Policy, "from_domain", res.DMARC.Domain)
	}
	return res, nil
}

// captureReader remembers the first read error that is not io.EOF, so read
// failures can be told apart from the verdicts of the DKIM library, which
// returns both through one error.
type captureReader struct {
	r   io.Reader
	err error
}

func (c *captureReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	if err != nil && err != io.EOF && c.err == nil {
		c.err = err
	}
	return n, err
}
