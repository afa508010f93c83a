package dns

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	miekg "github.com/miekg/dns"

	"github.com/mailhook/mailhook/dns/dnstest"
)

const resolverZone = `
$ORIGIN example.test.
@       300 IN MX    20 mx2
@       300 IN MX    10 mx1
mx1     300 IN A     192.0.2.1
mx1     300 IN AAAA  2001:db8::1
mx2     300 IN A     192.0.2.2
alias   300 IN CNAME mx1
zero    0   IN A     192.0.2.3
v6only  300 IN AAAA  2001:db8::6
@       300 IN TXT   "v=spf1 " "mx -all"
1.2.0.192.in-addr.arpa. 300 IN PTR mx1.example.test.
`

func newTestResolver(t *testing.T, srv *dnstest.Server, cacheSize int) *Resolver {
	t.Helper()
	r, err := NewResolver(ResolverOptions{Server: srv.Addr(), Timeout: 300 * time.Millisecond, CacheSize: cacheSize})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func dnsErrOf(t *testing.T, err error) *net.DNSError {
	t.Helper()
	var de *net.DNSError
	if !errors.As(err, &de) {
		t.Fatalf("error %v (%T) is not a *net.DNSError", err, err)
	}
	return de
}

func TestResolverLookups(t *testing.T) {
	srv := dnstest.Start(t, resolverZone)
	r := newTestResolver(t, srv, 0)
	ctx := context.Background()

	mxs, err := r.LookupMX(ctx, "example.test")
	if err != nil || len(mxs) != 2 || mxs[0].Host != "mx1.example.test." || mxs[0].Pref != 10 || mxs[1].Pref != 20 {
		t.Errorf("LookupMX = %v, %v; want mx1 (10), mx2 (20)", mxs, err)
	}
	txt, err := r.LookupTXT(ctx, "EXAMPLE.test.")
	if err != nil || len(txt) != 1 || txt[0] != "v=spf1 mx -all" {
		t.Errorf("LookupTXT = %q, %v; want the strings joined", txt, err)
	}
	ips, err := r.LookupIP(ctx, "alias.example.test")
	if err != nil || len(ips) != 2 || !ips[0].Equal(net.ParseIP("192.0.2.1")) || !ips[1].Equal(net.ParseIP("2001:db8::1")) {
		t.Errorf("LookupIP(alias) = %v, %v; want the CNAME target's A and AAAA", ips, err)
	}
	ips, err = r.LookupIP(ctx, "v6only.example.test")
	if err != nil || len(ips) != 1 {
		t.Errorf("LookupIP(v6only) = %v, %v", ips, err)
	}
	ips, err = r.LookupIP(ctx, "192.0.2.77")
	if err != nil || len(ips) != 1 || srv.Queries("192.0.2.77", miekg.TypeA) != 0 {
		t.Errorf("LookupIP(literal) = %v, %v; want it back without a query", ips, err)
	}
	names, err := r.LookupAddr(ctx, "192.0.2.1")
	if err != nil || len(names) != 1 || names[0] != "mx1.example.test." {
		t.Errorf("LookupAddr = %v, %v", names, err)
	}
	if _, err := r.LookupAddr(ctx, "not-an-ip"); !dnsErrOf(t, err).IsNotFound {
		t.Errorf("LookupAddr(not-an-ip) = %v, want not found", err)
	}
}

func TestResolverErrors(t *testing.T) {
	srv := dnstest.Start(t, resolverZone)
	srv.ServFail("broken.example.test")
	srv.Timeout("slow.example.test")
	srv.ServFail("mx2.example.test", miekg.TypeAAAA)
	r := newTestResolver(t, srv, 0)
	ctx := context.Background()

	_, err := r.LookupTXT(ctx, "nope.example.test")
	if de := dnsErrOf(t, err); !de.IsNotFound || de.Temporary() {
		t.Errorf("NXDOMAIN: %+v, want IsNotFound and not temporary", de)
	}
	// NODATA: the name exists, so no error and no records.
	if txt, err := r.LookupTXT(ctx, "mx1.example.test"); err != nil || len(txt) != 0 {
		t.Errorf("NODATA: %q, %v; want none and no error", txt, err)
	}
	_, err = r.LookupTXT(ctx, "broken.example.test")
	if de := dnsErrOf(t, err); !de.IsTemporary || de.IsTimeout || de.IsNotFound {
		t.Errorf("SERVFAIL: %+v, want temporary, not timeout", de)
	}
	_, err = r.LookupTXT(ctx, "slow.example.test")
	if de := dnsErrOf(t, err); !de.IsTimeout || !de.Temporary() {
		t.Errorf("timeout: %+v, want IsTimeout", de)
	}
	// Over-long label: cannot exist, no query sent.
	long := strings.Repeat("a", 64) + ".example.test"
	if _, err := r.LookupTXT(ctx, long); !dnsErrOf(t, err).IsNotFound {
		t.Errorf("64-octet label: %v, want not found", err)
	}
	if srv.Queries(long, miekg.TypeTXT) != 0 {
		t.Errorf("a query was sent for an invalid name")
	}
	// One family failing does not hide the other's addresses.
	if ips, err := r.LookupIPAddr(ctx, "mx2.example.test"); err != nil || len(ips) != 1 {
		t.Errorf("LookupIPAddr with AAAA SERVFAIL = %v, %v; want the A record", ips, err)
	}
	// Both failing: temporary.
	if _, err := r.LookupIPAddr(ctx, "broken.example.test"); !dnsErrOf(t, err).Temporary() {
		t.Errorf("LookupIPAddr(broken) = %v, want temporary", err)
	}
	if _, err := r.LookupIPAddr(ctx, "nope.example.test"); !dnsErrOf(t, err).IsNotFound {
		t.Errorf("LookupIPAddr(nope) = %v, want not found", err)
	}
	// A cancelled context is a timeout, not a verdict.
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := r.LookupTXT(cctx, "example.test"); !dnsErrOf(t, err).Temporary() {
		t.Errorf("cancelled lookup = %v, want temporary", err)
	}
}

// TestResolverSlowServer checks that a lookup may take as long as the
// configured timeout allows, beyond miekg/dns's 2 s default read timeout.
func TestResolverSlowServer(t *testing.T) {
	if testing.Short() {
		t.Skip("waits 2.2 s for a slow answer")
	}
	srv := dnstest.Start(t, resolverZone)
	srv.Delay("example.test", 2200*time.Millisecond)
	r, err := NewResolver(ResolverOptions{Server: srv.Addr(), Timeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if txt, err := r.LookupTXT(context.Background(), "example.test"); err != nil || len(txt) != 1 {
		t.Errorf("slow answer: %q, %v; want it within the 10 s lookup timeout", txt, err)
	}
}

func TestResolverTXTBytes(t *testing.T) {
	srv := dnstest.Start(t, "")
	key := "v=DKIM1; k=rsa; p=" + strings.Repeat("A", 600) // > 255: several strings, > 512: EDNS
	srv.AddTXT("sel._domainkey.example.test", 60, key)
	raw := "q\"uote \\ back \x01 ctl \xff hi"
	srv.AddTXT("raw.example.test", 60, raw)
	big := strings.Repeat("z", 3000) // over our EDNS size: TCP fallback
	srv.AddTXT("big.example.test", 60, big)
	r := newTestResolver(t, srv, 0)
	for name, want := range map[string]string{
		"sel._domainkey.example.test": key,
		"raw.example.test":            raw,
		"big.example.test":            big,
	} {
		got, err := r.LookupTXT(context.Background(), name)
		if err != nil || len(got) != 1 || got[0] != want {
			t.Errorf("LookupTXT(%s) = %d records, %v; want the exact bytes back", name, len(got), err)
		}
	}
}

func TestResolverCache(t *testing.T) {
	srv := dnstest.Start(t, resolverZone)
	srv.ServFail("broken.example.test")
	r := newTestResolver(t, srv, 0)
	ctx := context.Background()
	now := time.Unix(1_000_000, 0)
	r.cache.now = func() time.Time { return now }

	for range 3 {
		if _, err := r.LookupMX(ctx, "example.test"); err != nil {
			t.Fatal(err)
		}
		_, _ = r.LookupTXT(ctx, "nope.example.test")   // NXDOMAIN, SOA minimum 60 s
		_, _ = r.LookupTXT(ctx, "broken.example.test") // never cached
		_, _ = r.LookupIP(ctx, "zero.example.test")    // TTL 0: never cached
		_, _ = r.LookupIP(ctx, "alias.example.test")   // cached under the alias
	}
	for _, c := range []struct {
		name  string
		qtype uint16
		want  int
	}{
		{"example.test", miekg.TypeMX, 1},
		{"nope.example.test", miekg.TypeTXT, 1},
		{"broken.example.test", miekg.TypeTXT, 3},
		{"zero.example.test", miekg.TypeA, 3},
		{"alias.example.test", miekg.TypeA, 1},
	} {
		if got := srv.Queries(c.name, c.qtype); got != c.want {
			t.Errorf("queries for %s %s = %d, want %d", c.name, miekg.TypeToString[c.qtype], got, c.want)
		}
	}

	// Negative answers expire with the SOA minimum (60 s), positive ones
	// with their TTL (300 s).
	now = now.Add(61 * time.Second)
	_, _ = r.LookupTXT(ctx, "nope.example.test")
	_, _ = r.LookupMX(ctx, "example.test")
	if got := srv.Queries("nope.example.test", miekg.TypeTXT); got != 2 {
		t.Errorf("NXDOMAIN after 61 s: %d queries, want 2", got)
	}
	if got := srv.Queries("example.test", miekg.TypeMX); got != 1 {
		t.Errorf("MX after 61 s: %d queries, want 1 (TTL 300)", got)
	}
	now = now.Add(300 * time.Second)
	_, _ = r.LookupMX(ctx, "example.test")
	if got := srv.Queries("example.test", miekg.TypeMX); got != 2 {
		t.Errorf("MX after its TTL: %d queries, want 2", got)
	}
}

func TestResolverCacheBound(t *testing.T) {
	srv := dnstest.Start(t, resolverZone)
	r := newTestResolver(t, srv, 2)
	ctx := context.Background()
	for _, n := range []string{"mx1", "mx2", "mx1", "alias", "mx1"} {
		if _, err := r.LookupTXT(ctx, n+".example.test"); err != nil {
			t.Fatal(err)
		}
	}
	if n := r.cache.len(); n != 2 {
		t.Errorf("cache holds %d answers, want the bound 2", n)
	}
	// LRU: mx1 was used last, mx2 was evicted by alias.
	_, _ = r.LookupTXT(ctx, "mx1.example.test")
	_, _ = r.LookupTXT(ctx, "mx2.example.test")
	if got := srv.Queries("mx1.example.test", miekg.TypeTXT); got != 1 {
		t.Errorf("mx1 queried %d times, want 1 (kept)", got)
	}
	if got := srv.Queries("mx2.example.test", miekg.TypeTXT); got != 2 {
		t.Errorf("mx2 queried %d times, want 2 (evicted)", got)
	}

	off := newTestResolver(t, srv, -1)
	_, _ = off.LookupTXT(ctx, "example.test")
	_, _ = off.LookupTXT(ctx, "example.test")
	if got := srv.Queries("example.test", miekg.TypeTXT); got != 2 {
		t.Errorf("with the cache off: %d queries, want 2", got)
	}
}

// TestParseCNAMENotChased covers a server that answers with a CNAME and
// does not chase it: the resolver asks for the target itself.
func TestParseCNAMENotChased(t *testing.T) {
	r := &Resolver{}
	m := new(miekg.Msg)
	m.SetQuestion("a.example.test.", miekg.TypeA)
	cn, _ := miekg.NewRR("a.example.test. 60 IN CNAME b.example.test.")
	m.Answer = []miekg.RR{cn}
	_, next, _, err := r.parse("a.example.test", "a.example.test.", miekg.TypeA, m)
	if err != nil || next != "b.example.test." {
		t.Errorf("parse = next %q, %v; want b.example.test.", next, err)
	}
}

func TestResolverSystemConfig(t *testing.T) {
	dir := t.TempDir()
	old := resolvConf
	t.Cleanup(func() { resolvConf = old })

	resolvConf = filepath.Join(dir, "resolv.conf")
	if err := os.WriteFile(resolvConf, []byte("nameserver 192.0.2.53\nnameserver 2001:db8::53\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	r, err := NewResolver(ResolverOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"192.0.2.53:53", "[2001:db8::53]:53"}; strings.Join(r.servers, ",") != strings.Join(want, ",") {
		t.Errorf("servers = %v, want %v", r.servers, want)
	}
	resolvConf = filepath.Join(dir, "missing")
	if _, err := NewResolver(ResolverOptions{}); err == nil {
		t.Error("NewResolver with no resolv.conf: no error")
	}
	r, err = NewResolver(ResolverOptions{Server: "127.0.0.1"})
	if err != nil || r.servers[0] != "127.0.0.1:53" {
		t.Errorf("Server without port: %v, %v", r.servers, err)
	}
	if r.timeout != DefaultLookupTimeout || r.cache == nil || r.cache.max != DefaultCacheSize {
		t.Errorf("defaults not applied: timeout %v, cache %+v", r.timeout, r.cache)
	}
}
