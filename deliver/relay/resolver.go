package relay

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"slices"
	"strings"
)

// MXResolver is the DNS the relay needs for direct delivery. The
// shared resolver (dns.Resolver) satisfies it, as does
// *net.Resolver.
//
// Errors are classified as net.Resolver's are: a *net.DNSError with
// IsNotFound (or an error wrapping ErrNotFound) means the name does not
// exist or has no such records; any other error is temporary and the
// delivery is retried. A name that exists without records of the type may
// also be reported as an empty result with a nil error.
type MXResolver interface {
	LookupMX(ctx context.Context, domain string) ([]*net.MX, error)
	LookupIP(ctx context.Context, host string) ([]net.IP, error)
}

// ErrNotFound may be wrapped by an MXResolver to say a name does not exist
// (NXDOMAIN) or has no records of the asked type.
var ErrNotFound = errors.New("relay: dns name not found")

// netResolver adapts *net.Resolver to MXResolver.
type netResolver struct{ r *net.Resolver }

// NetResolver returns an MXResolver using Go's resolver. server is a DNS
// server "host:port" to ask instead of the system's nameservers (for a
// local resolver, or the loopback DNS of tests); empty means the system's.
// Production wiring should prefer the shared resolver (dns.Resolver),
// which caches and tells NXDOMAIN from NODATA.
func NetResolver(server string) MXResolver {
	r := &net.Resolver{PreferGo: true}
	if server != "" {
		r.Dial = func(ctx context.Context, network, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, network, server)
		}
	}
	return netResolver{r}
}

func (n netResolver) LookupMX(ctx context.Context, domain string) ([]*net.MX, error) {
	return n.r.LookupMX(ctx, domain)
}

func (n netResolver) LookupIP(ctx context.Context, host string) ([]net.IP, error) {
	return n.r.LookupIP(ctx, "ip", host)
}

// isNotFound reports whether a lookup error means "no such name or
// records" rather than a temporary failure.
func isNotFound(err error) bool {
	if errors.Is(err, ErrNotFound) {
		return true
	}
	var de *net.DNSError
	return errors.As(err, &de) && de.IsNotFound
}

// maxMXHosts bounds how many MX hosts one attempt tries, and maxHostAddrs
// how many addresses of each host (RFC 5321 §5.1 asks for a configurable
// limit on the alternatives tried).
const (
	maxMXHosts   = 5
	maxHostAddrs = 3
)

// hop is one place to try: a host name (for TLS verification and logs)
// and a dial address.
type hop struct {
	host string
	addr string
}

// resolveError is a delivery failure found while resolving the
// destination; permanent ones dead-letter the job.
type resolveError struct {
	permanent bool
	err       error
}

func (e *resolveError) Error() string { return e.err.Error() }
func (e *resolveError) Unwrap() error { return e.err }

// mxHosts returns the hosts to deliver mail for domain to, best first,
// per RFC 5321 §5.1: MX records in preference order, hosts of equal
// preference shuffled; the domain itself (the implicit MX) when it has no
// MX records but has an address; a permanent error for a null MX (RFC 7505
// §3) or a domain with neither.
func mxHosts(ctx context.Context, r MXResolver, domain string) ([]string, error) {
	mxs, err := r.LookupMX(ctx, domain)
	if err != nil && !isNotFound(err) {
		return nil, &resolveError{err: fmt.Errorf("mx lookup %s: %w", domain, err)}
	}
	var hosts []string
	if len(mxs) > 0 {
		// RFC 7505 §3: a null MX is a single MX of "." (preference 0); the
		// domain accepts no mail. A "." among other MXs is only skipped.
		if len(mxs) == 1 && (mxs[0].Host == "." || mxs[0].Host == "") {
			return nil, &resolveError{permanent: true, err: fmt.Errorf("domain %s accepts no mail: null MX (RFC 7505; 556 5.1.10)", domain)}
		}
		mxs = slices.Clone(mxs)
		rand.Shuffle(len(mxs), func(i, j int) { mxs[i], mxs[j] = mxs[j], mxs[i] })
		slices.SortStableFunc(mxs, func(a, b *net.MX) int { return int(a.Pref) - int(b.Pref) })
		for _, mx := range mxs {
			h := strings.TrimSuffix(mx.Host, ".")
			if h == "" || slices.Contains(hosts, h) {
				continue
			}
			hosts = append(hosts, h)
		}
		if len(hosts) == 0 {
			return nil, &resolveError{permanent: true, err: fmt.Errorf("domain %s has no usable MX", domain)}
		}
		return hosts, nil
	}
	// RFC 5321 §5.1: no MX records, the domain is its own implicit MX if
	// it has an address. Whether it does is found when the hop is dialled.
	return []string{strings.TrimSuffix(domain, ".")}, nil
}

// hostAddrs returns the dial addresses of host, at most maxHostAddrs.
func hostAddrs(ctx context.Context, r MXResolver, host string, port int) ([]string, error) {
	if ip := net.ParseIP(host); ip != nil {
		return []string{net.JoinHostPort(ip.String(), fmt.Sprint(port))}, nil
	}
	ips, err := r.LookupIP(ctx, host)
	if len(ips) == 0 {
		if err != nil && !isNotFound(err) {
			return nil, &resolveError{err: fmt.Errorf("address lookup %s: %w", host, err)}
		}
		return nil, &resolveError{permanent: true, err: fmt.Errorf("host %s has no address", host)}
	}
	var out []string
	for _, ip := range ips {
		if len(out) == maxHostAddrs {
			break
		}
		out = append(out, net.JoinHostPort(ip.String(), fmt.Sprint(port)))
	}
	return out, nil
}
