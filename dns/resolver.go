package dns

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strings"
	"time"

	"blitiri.com.ar/go/spf"
	miekg "github.com/miekg/dns"
)

// Defaults for ResolverOptions.
const (
	DefaultLookupTimeout = 5 * time.Second
	DefaultCacheSize     = 4096
)

// maxCNAMEHops bounds CNAME chasing (RFC 1034 §3.6.2 asks to follow chains
// and to detect loops; a bound does both).
const maxCNAMEHops = 8

// ednsUDPSize is the EDNS0 buffer we advertise (RFC 6891 §6.2.5; 1232 is the
// DNS Flag Day 2020 value that avoids IP fragmentation). DKIM keys of 2048
// bits and more fit; larger answers fall back to TCP.
const ednsUDPSize = 1232

// resolvConf is where the system resolver configuration is read from.
var resolvConf = "/etc/resolv.conf"

// ResolverOptions configures a Resolver.
type ResolverOptions struct {
	// Server is the DNS server to ask, "host:port" or "host" (port 53).
	// Empty means the nameservers of /etc/resolv.conf, tried in order.
	Server string
	// Timeout bounds each lookup (one question, including its retry over
	// TCP and CNAME chasing). Zero means DefaultLookupTimeout.
	Timeout time.Duration
	// CacheSize bounds the number of cached answers. Zero means
	// DefaultCacheSize; negative disables the cache.
	CacheSize int
	// Logger receives debug lines about failed lookups. Nil discards.
	Logger *slog.Logger
}

// Resolver is a DNS stub resolver with a per-lookup timeout and a small
// TTL-respecting cache. One Resolver serves SPF, DKIM and DMARC and the
// relay's MX lookups, so they share its cache.
//
// Errors are *net.DNSError, so code written for net.Resolver classifies them
// the same way: IsNotFound for NXDOMAIN (and for names that cannot exist,
// such as labels over 63 octets); IsTimeout for a lookup that got no answer
// in time; IsTemporary for SERVFAIL, REFUSED and other server failures. A
// name that exists without records of the asked type (NODATA) gives an
// empty result and a nil error, unlike net.Resolver, so callers can tell
// NXDOMAIN from NODATA (RFC 5321 §5.1 needs that for MX).
//
// Its methods are safe for concurrent use.
type Resolver struct {
	servers []string
	timeout time.Duration
	cache   *cache
	udp     *miekg.Client
	tcp     *miekg.Client
	log     *slog.Logger
}

var _ spf.DNSResolver = (*Resolver)(nil)

// NewResolver returns a Resolver for o.
func NewResolver(o ResolverOptions) (*Resolver, error) {
	r := &Resolver{
		timeout: o.Timeout,
		log:     o.Logger,
	}
	if r.timeout <= 0 {
		r.timeout = DefaultLookupTimeout
	}
	// The clients' own timeout must not be shorter than ours: miekg/dns
	// otherwise cuts reads at 2 s whatever the context allows.
	r.udp = &miekg.Client{Net: "udp", UDPSize: ednsUDPSize, Timeout: r.timeout}
	r.tcp = &miekg.Client{Net: "tcp", Timeout: r.timeout}
	if r.log == nil {
		r.log = slog.New(slog.DiscardHandler)
	}
	switch {
	case o.CacheSize == 0:
		r.cache = newCache(DefaultCacheSize)
	case o.CacheSize > 0:
		r.cache = newCache(o.CacheSize)
	}
	if o.Server != "" {
		srv := o.Server
		if _, _, err := net.SplitHostPort(srv); err != nil {
			srv = net.JoinHostPort(strings.Trim(srv, "[]"), "53")
		}
		r.servers = []string{srv}
	} else {
		cfg, err := miekg.ClientConfigFromFile(resolvConf)
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", resolvConf, err)
		}
		for _, s := range cfg.Servers {
			r.servers = append(r.servers, net.JoinHostPort(s, cfg.Port))
		}
		if len(r.servers) == 0 {
			return nil, fmt.Errorf("no nameserver in %s", resolvConf)
		}
	}
	return r, nil
}

// errKind classifies a failed lookup.
type errKind int

const (
	errNotFound errKind = iota
	errTimeout
	errTemporary
)

func (r *Resolver) dnsError(name string, kind errKind, detail string) *net.DNSError {
	e := &net.DNSError{Name: name, Err: detail}
	if len(r.servers) == 1 {
		e.Server = r.servers[0]
	}
	switch kind {
	case errNotFound:
		e.IsNotFound = true
	case errTimeout:
		e.IsTimeout = true
		e.IsTemporary = true
	case errTemporary:
		e.IsTemporary = true
	}
	return e
}

// query answers one question, from the cache when it can.
func (r *Resolver) query(ctx context.Context, name string, qtype uint16) ([]miekg.RR, error) {
	fqdn, ok := canonicalName(name)
	if !ok {
		// A name that cannot be encoded cannot exist (RFC 1035 §2.3.4).
		return nil, r.dnsError(name, errNotFound, "invalid domain name")
	}
	k := cacheKey{fqdn, qtype}
	if a, ok := r.cache.get(k); ok {
		if a.nxdomain {
			return nil, r.dnsError(name, errNotFound, "no such host")
		}
		return a.rrs, nil
	}
	ctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()

	target := fqdn
	var ttl uint32 = 1<<31 - 1
	for hop := 0; ; hop++ {
		if hop > maxCNAMEHops {
			return nil, r.dnsError(name, errTemporary, "cname chain too long or looping")
		}
		resp, err := r.exchange(ctx, target, qtype)
		if err != nil {
			return nil, err
		}
		a, next, t, err := r.parse(name, target, qtype, resp)
		if err != nil {
			return nil, err
		}
		ttl = min(ttl, t)
		if next != "" {
			// The server gave a CNAME without chasing it: ask for the
			// target ourselves.
			target = next
			continue
		}
		r.cache.put(k, a, time.Duration(ttl)*time.Second)
		if a.nxdomain {
			return nil, r.dnsError(name, errNotFound, "no such host")
		}
		return a.rrs, nil
	}
}

// canonicalName returns name lower-cased, fully qualified and escaped as
// miekg/dns presents names it unpacks, so it compares equal to the owner
// names of answers. ok is false for a name that cannot be encoded (RFC
// 1035 §2.3.4: labels of 1 to 63 octets, 255 in all) or the root.
func canonicalName(name string) (string, bool) {
	n := strings.ToLower(miekg.Fqdn(name))
	if _, ok := miekg.IsDomainName(n); !ok || n == "." {
		return "", false
	}
	var buf [256]byte
	off, err := miekg.PackDomainName(n, buf[:], 0, nil, false)
	if err != nil {
		return "", false
	}
	u, _, err := miekg.UnpackDomainName(buf[:off], 0)
	if err != nil {
		return "", false
	}
	return strings.ToLower(u), true
}

// parse reads resp for (target, qtype). It follows the CNAME chain within
// the answer and returns the records found, or next != "" when the chain
// ends at a name the answer says nothing about. ttl is the time the
// answer may be cached: the smallest TTL used, or for a negative answer
// the SOA rule of RFC 2308 §5 (zero, i.e. not cached, without an SOA).
func (r *Resolver) parse(name, target string, qtype uint16, resp *miekg.Msg) (a answer, next string, ttl uint32, err error) {
	switch resp.Rcode {
	case miekg.RcodeSuccess, miekg.RcodeNameError:
	default:
		return a, "", 0, r.dnsError(name, errTemporary, "server answered "+miekg.RcodeToString[resp.Rcode])
	}
	ttl = 1<<31 - 1
	followed := false
	for range maxCNAMEHops + 1 {
		var cn *miekg.CNAME
		for _, rr := range resp.Answer {
			if c, ok := rr.(*miekg.CNAME); ok && strings.EqualFold(c.Hdr.Name, target) {
				cn = c
				break
			}
		}
		if cn == nil || qtype == miekg.TypeCNAME {
			break
		}
		ttl = min(ttl, cn.Hdr.Ttl)
		target = strings.ToLower(cn.Target)
		followed = true
	}
	for _, rr := range resp.Answer {
		h := rr.Header()
		if h.Rrtype == qtype && strings.EqualFold(h.Name, target) {
			a.rrs = append(a.rrs, rr)
			ttl = min(ttl, h.Ttl)
		}
	}
	if len(a.rrs) > 0 {
		return a, "", ttl, nil
	}
	negTTL, haveSOA := uint32(0), false
	for _, rr := range resp.Ns {
		if soa, ok := rr.(*miekg.SOA); ok {
			negTTL, haveSOA = min(soa.Hdr.Ttl, soa.Minttl), true
		}
	}
	if followed && !haveSOA && resp.Rcode == miekg.RcodeSuccess {
		return a, target, ttl, nil
	}
	a.nxdomain = resp.Rcode == miekg.RcodeNameError
	return a, "", min(ttl, negTTL), nil
}

// exchange sends one question to the servers in turn, over UDP, then TCP
// when the answer was truncated (RFC 7766 §5). A UDP query is sent once per
// server, without retransmission: the servers are expected to be near (a
// local recursive resolver), and a lost datagram costs a temperror, which
// the sender retries.
func (r *Resolver) exchange(ctx context.Context, name string, qtype uint16) (*miekg.Msg, error) {
	m := new(miekg.Msg)
	m.SetQuestion(name, qtype)
	m.RecursionDesired = true
	m.SetEdns0(ednsUDPSize, false)
	var lastErr error
	for _, srv := range r.servers {
		// Each server gets its share of the lookup's time, so that a dead
		// first nameserver leaves time to ask the next.
		actx, cancel := context.WithTimeout(ctx, r.timeout/time.Duration(len(r.servers)))
		resp, _, err := r.udp.ExchangeContext(actx, m, srv)
		if err == nil && resp.Truncated {
			resp, _, err = r.tcp.ExchangeContext(actx, m, srv)
		}
		cancel()
		if err == nil && resp.Rcode != miekg.RcodeServerFailure && resp.Rcode != miekg.RcodeRefused {
			return resp, nil
		}
		if err == nil {
			lastErr = r.dnsError(name, errTemporary, "server answered "+miekg.RcodeToString[resp.Rcode])
		} else {
			kind := errTemporary
			var nerr net.Error
			if errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &nerr) && nerr.Timeout()) {
				kind = errTimeout
			}
			lastErr = r.dnsError(name, kind, err.Error())
		}
		r.log.Debug("dns lookup failed", "name", name, "type", miekg.TypeToString[qtype], "server", srv, "err", lastErr)
		if ctx.Err() != nil {
			break
		}
	}
	return nil, lastErr
}

// LookupTXT returns the TXT records of name, each one's character-strings
// joined without separator (RFC 7208 §3.3, RFC 6376 §3.6.2.2).
func (r *Resolver) LookupTXT(ctx context.Context, name string) ([]string, error) {
	rrs, err := r.query(ctx, name, miekg.TypeTXT)
	if err != nil {
		return nil, err
	}
	out := make([]string, 0, len(rrs))
	for _, rr := range rrs {
		var b strings.Builder
		for _, s := range rr.(*miekg.TXT).Txt {
			b.WriteString(unescapeTXT(s))
		}
		out = append(out, b.String())
	}
	return out, nil
}

// unescapeTXT undoes the presentation-format escaping miekg/dns applies to
// character-strings (\" \\ and \DDD), giving back the bytes on the wire.
func unescapeTXT(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	b := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		if s[i] != '\\' || i+1 == len(s) {
			b = append(b, s[i])
			continue
		}
		i++
		if i+2 < len(s) && isDigit(s[i]) && isDigit(s[i+1]) && isDigit(s[i+2]) {
			b = append(b, (s[i]-'0')*100+(s[i+1]-'0')*10+(s[i+2]-'0'))
			i += 2
			continue
		}
		b = append(b, s[i])
	}
	return string(b)
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// LookupMX returns the MX records of name sorted by preference. Hosts are
// FQDNs with the trailing dot, as net.Resolver gives them.
func (r *Resolver) LookupMX(ctx context.Context, name string) ([]*net.MX, error) {
	rrs, err := r.query(ctx, name, miekg.TypeMX)
	if err != nil {
		return nil, err
	}
	out := make([]*net.MX, 0, len(rrs))
	for _, rr := range rrs {
		mx := rr.(*miekg.MX)
		out = append(out, &net.MX{Host: mx.Mx, Pref: mx.Preference})
	}
	slices.SortStableFunc(out, func(a, b *net.MX) int { return int(a.Pref) - int(b.Pref) })
	return out, nil
}

// LookupIPAddr returns the A and AAAA addresses of host (an IP literal is
// returned as is). When one family fails temporarily and the other has
// addresses, those are returned without error.
func (r *Resolver) LookupIPAddr(ctx context.Context, host string) ([]net.IPAddr, error) {
	if ip := net.ParseIP(host); ip != nil {
		return []net.IPAddr{{IP: ip}}, nil
	}
	var out []net.IPAddr
	var errs [2]error
	for i, qt := range []uint16{miekg.TypeA, miekg.TypeAAAA} {
		rrs, err := r.query(ctx, host, qt)
		errs[i] = err
		for _, rr := range rrs {
			switch rr := rr.(type) {
			case *miekg.A:
				out = append(out, net.IPAddr{IP: rr.A})
			case *miekg.AAAA:
				out = append(out, net.IPAddr{IP: rr.AAAA})
			}
		}
	}
	if len(out) > 0 {
		return out, nil
	}
	for _, err := range errs {
		if err != nil && !isNotFound(err) {
			return nil, err
		}
	}
	if errs[0] != nil && errs[1] != nil {
		return nil, errs[0]
	}
	return nil, nil
}

// LookupIP returns the addresses of host, as LookupIPAddr.
func (r *Resolver) LookupIP(ctx context.Context, host string) ([]net.IP, error) {
	addrs, err := r.LookupIPAddr(ctx, host)
	ips := make([]net.IP, len(addrs))
	for i, a := range addrs {
		ips[i] = a.IP
	}
	return ips, err
}

// LookupAddr returns the PTR names of the IP address addr (RFC 1035 §3.5,
// RFC 3596 §2.5), FQDNs with the trailing dot.
func (r *Resolver) LookupAddr(ctx context.Context, addr string) ([]string, error) {
	arpa, err := miekg.ReverseAddr(addr)
	if err != nil {
		return nil, &net.DNSError{Name: addr, Err: "not an ip address", IsNotFound: true}
	}
	rrs, err := r.query(ctx, arpa, miekg.TypePTR)
	if err != nil {
		return nil, err
	}
	out := make([]string, 0, len(rrs))
	for _, rr := range rrs {
		out = append(out, rr.(*miekg.PTR).Ptr)
	}
	return out, nil
}

func isNotFound(err error) bool {
	var de *net.DNSError
	return errors.As(err, &de) && de.IsNotFound
}
