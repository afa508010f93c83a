package dnstest

import (
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
)

const zone = `
$ORIGIN example.test.
@        IN MX    10 mx1
@        IN MX    20 mx2.example.test.
mx1      IN A     192.0.2.1
mx1      IN AAAA  2001:db8::1
mx2      IN A     192.0.2.2
alias    IN CNAME mx1
loop1    IN CNAME loop2
loop2    IN CNAME loop1
@        IN TXT   "v=spf1 " "mx -all"
a.b.deep IN A     192.0.2.9
1.2.0.192.in-addr.arpa. IN PTR mx1.example.test.
`

func query(t *testing.T, addr, netw, name string, qtype uint16) (*dns.Msg, error) {
	t.Helper()
	c := &dns.Client{Net: netw, Timeout: 500 * time.Millisecond}
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(name), qtype)
	m.SetEdns0(4096, false)
	r, _, err := c.Exchange(m, addr)
	return r, err
}

func mustQuery(t *testing.T, s *Server, name string, qtype uint16) *dns.Msg {
	t.Helper()
	r, err := query(t, s.Addr(), "udp", name, qtype)
	if err != nil {
		t.Fatalf("query %s %s: %v", name, dns.TypeToString[qtype], err)
	}
	return r
}

func TestRecords(t *testing.T) {
	s := Start(t, zone)
	tests := []struct {
		name  string
		qtype uint16
		rcode int
		want  []string // rdata of the answer, in order
	}{
		{"example.test", dns.TypeMX, dns.RcodeSuccess, []string{"10 mx1.example.test.", "20 mx2.example.test."}},
		{"MX1.Example.Test", dns.TypeA, dns.RcodeSuccess, []string{"192.0.2.1"}},
		{"mx1.example.test", dns.TypeAAAA, dns.RcodeSuccess, []string{"2001:db8::1"}},
		{"example.test", dns.TypeTXT, dns.RcodeSuccess, []string{`"v=spf1 " "mx -all"`}},
		{"1.2.0.192.in-addr.arpa", dns.TypePTR, dns.RcodeSuccess, []string{"mx1.example.test."}},
		{"alias.example.test", dns.TypeA, dns.RcodeSuccess, []string{"mx1.example.test.", "192.0.2.1"}},
		{"alias.example.test", dns.TypeCNAME, dns.RcodeSuccess, []string{"mx1.example.test."}},
		{"mx2.example.test", dns.TypeAAAA, dns.RcodeSuccess, nil},      // NODATA
		{"deep.example.test", dns.TypeA, dns.RcodeSuccess, nil},        // empty non-terminal
		{"nope.example.test", dns.TypeA, dns.RcodeNameError, nil},      // NXDOMAIN
		{"loop1.example.test", dns.TypeA, dns.RcodeServerFailure, nil}, // CNAME loop
	}
	for _, tc := range tests {
		r := mustQuery(t, s, tc.name, tc.qtype)
		if r.Rcode != tc.rcode {
			t.Errorf("%s %s: rcode %s, want %s", tc.name, dns.TypeToString[tc.qtype],
				dns.RcodeToString[r.Rcode], dns.RcodeToString[tc.rcode])
			continue
		}
		var got []string
		for _, rr := range r.Answer {
			got = append(got, strings.TrimPrefix(rr.String(), rr.Header().String()))
		}
		if strings.Join(got, "|") != strings.Join(tc.want, "|") {
			t.Errorf("%s %s: answer %q, want %q", tc.name, dns.TypeToString[tc.qtype], got, tc.want)
		}
		if len(tc.want) == 0 && tc.rcode != dns.RcodeServerFailure {
			if len(r.Ns) != 1 || r.Ns[0].Header().Rrtype != dns.TypeSOA {
				t.Errorf("%s: negative answer without SOA: %v", tc.name, r.Ns)
			}
		}
	}
	// A CNAME to a name without the type: the chain, then NODATA's SOA.
	r := mustQuery(t, s, "alias.example.test", dns.TypeTXT)
	if r.Rcode != dns.RcodeSuccess || len(r.Answer) != 1 || len(r.Ns) != 1 {
		t.Errorf("alias TXT: want the CNAME and an SOA, got %v", r)
	}
	if n := s.Queries("example.test", dns.TypeMX); n != 1 {
		t.Errorf("Queries(example.test, MX) = %d, want 1", n)
	}
	if n := s.TotalQueries(); n != len(tests)+1 {
		t.Errorf("TotalQueries() = %d, want %d", n, len(tests)+1)
	}
}

func TestFailures(t *testing.T) {
	s := Start(t, zone)
	s.ServFail("mx1.example.test", dns.TypeAAAA)
	s.Timeout("mx2.example.test")
	s.NXDomain("mx1.example.test")
	s.Remove("mx1.example.test") // and back:
	s.Add("mx1.example.test. 60 IN A 192.0.2.1")
	s.ServFail("mx1.example.test", dns.TypeAAAA)

	if r := mustQuery(t, s, "mx1.example.test", dns.TypeAAAA); r.Rcode != dns.RcodeServerFailure {
		t.Errorf("AAAA rcode %s, want SERVFAIL", dns.RcodeToString[r.Rcode])
	}
	if r := mustQuery(t, s, "mx1.example.test", dns.TypeA); r.Rcode != dns.RcodeSuccess || len(r.Answer) != 1 {
		t.Errorf("A after Remove/Add: %v", r)
	}
	_, err := query(t, s.Addr(), "udp", "mx2.example.test", dns.TypeA)
	var nerr net.Error
	if !errors.As(err, &nerr) || !nerr.Timeout() {
		t.Errorf("timed-out name: err %v, want a timeout", err)
	}
	s.NXDomain("example.test")
	if r := mustQuery(t, s, "example.test", dns.TypeMX); r.Rcode != dns.RcodeNameError {
		t.Errorf("NXDomain: rcode %s", dns.RcodeToString[r.Rcode])
	}
}

func TestTruncationAndTCP(t *testing.T) {
	s := Start(t, "")
	long := strings.Repeat("0123456789", 300) // 3000 bytes: 12 strings
	s.AddTXT("big.example.test", 60, long)
	s.AddTXT("quote.example.test", 60, `a"b\c`)

	c := &dns.Client{Net: "udp", Timeout: time.Second}
	m := new(dns.Msg)
	m.SetQuestion("big.example.test.", dns.TypeTXT) // no EDNS: 512 bytes
	r, _, err := c.Exchange(m, s.Addr())
	if err != nil {
		t.Fatal(err)
	}
	if !r.Truncated {
		t.Errorf("3000-byte answer over UDP not truncated")
	}
	r, err = query(t, s.Addr(), "tcp", "big.example.test", dns.TypeTXT)
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Answer) != 1 || strings.Join(r.Answer[0].(*dns.TXT).Txt, "") != long {
		t.Errorf("TCP answer does not hold the whole value")
	}
	r = mustQuery(t, s, "quote.example.test", dns.TypeTXT)
	if got := r.Answer[0].(*dns.TXT).Txt; len(got) != 1 || got[0] != `a\"b\\c` {
		t.Errorf("raw TXT value came back as %q", got)
	}
}

func TestSplit255(t *testing.T) {
	for _, n := range []int{0, 1, 255, 256, 600} {
		parts := Split255(strings.Repeat("x", n))
		total := 0
		for _, p := range parts {
			if len(p) > 255 {
				t.Errorf("Split255(%d): part of %d bytes", n, len(p))
			}
			total += len(p)
		}
		if total != n || len(parts) == 0 {
			t.Errorf("Split255(%d) = %d parts, %d bytes", n, len(parts), total)
		}
	}
}

func TestDelay(t *testing.T) {
	s := Start(t, zone)
	s.Delay("mx1.example.test", 200*time.Millisecond)
	start := time.Now()
	r := mustQuery(t, s, "mx1.example.test", dns.TypeA)
	if len(r.Answer) != 1 {
		t.Fatalf("delayed answer: %v", r)
	}
	if el := time.Since(start); el < 200*time.Millisecond {
		t.Errorf("answer came after %v, before the delay", el)
	}
}

func TestBadZone(t *testing.T) {
	s := &Server{rrs: map[string][]dns.RR{}}
	if err := s.AddZone("example.test. IN BOGUS x"); err == nil {
		t.Error("AddZone accepted a bad record")
	}
}
