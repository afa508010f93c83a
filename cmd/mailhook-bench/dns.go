package main

import (
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/miekg/dns"
)

// dnsServer is a loopback DNS server answering over UDP and TCP on one
// port, enough for mailhook's verifier to reach SPF pass, DKIM pass and
// DMARC pass for the bench's sender domain.
type dnsServer struct {
	addr    string
	udp     *dns.Server
	tcp     *dns.Server
	txt     map[string][]string // lower-case FQDN → TXT strings
	queries atomic.Int64
	closeMu sync.Once
}

// startDNS serves the TXT records in txt (owner names absolute or not) on
// 127.0.0.1. Names it does not hold get NXDOMAIN (RFC 2308 §2.1); names it
// holds, asked for another type, get NOERROR with no answer (RFC 2308 §2.2).
func startDNS(txt map[string][]string) (*dnsServer, error) {
	s := &dnsServer{txt: map[string][]string{}}
	for name, v := range txt {
		s.txt[dns.Fqdn(strings.ToLower(name))] = v
	}
	var lastErr error
	for range 10 {
		pc, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("dns: listen udp: %w", err)
		}
		ln, err := net.Listen("tcp", pc.LocalAddr().String())
		if err != nil {
			pc.Close()
			lastErr = err
			continue
		}
		s.addr = pc.LocalAddr().String()
		h := dns.HandlerFunc(s.serve)
		s.udp = &dns.Server{PacketConn: pc, Handler: h}
		s.tcp = &dns.Server{Listener: ln, Handler: h}
		// Each server reports once: started, or why it could not (a
		// server that fails before starting never calls NotifyStartedFunc).
		started := make(chan error, 4)
		s.udp.NotifyStartedFunc = func() { started <- nil }
		s.tcp.NotifyStartedFunc = func() { started <- nil }
		for _, srv := range []*dns.Server{s.udp, s.tcp} {
			go func() {
				defer func() {
					if v := recover(); v != nil {
						started <- fmt.Errorf("dns: server panicked: %v", v)
					}
				}()
				if err := srv.ActivateAndServe(); err != nil {
					select {
					case started <- fmt.Errorf("dns: serve: %w", err):
					default:
					}
				}
			}()
		}
		for range 2 {
			if err := <-started; err != nil {
				s.Close()
				return nil, err
			}
		}
		return s, nil
	}
	return nil, fmt.Errorf("dns: listen tcp on the udp port: %w", lastErr)
}

// Addr is "127.0.0.1:PORT", the value for verify.dns_resolver.
func (s *dnsServer) Addr() string { return s.addr }

// Queries is the number of queries answered so far.
func (s *dnsServer) Queries() int64 { return s.queries.Load() }

// Close stops both servers.
func (s *dnsServer) Close() {
	s.closeMu.Do(func() {
		_ = s.udp.Shutdown()
		_ = s.tcp.Shutdown()
	})
}

func (s *dnsServer) serve(w dns.ResponseWriter, req *dns.Msg) {
	s.queries.Add(1)
	m := new(dns.Msg)
	m.SetReply(req)
	m.Authoritative = true
	m.RecursionAvailable = true
	if len(req.Question) != 1 {
		m.Rcode = dns.RcodeFormatError
		_ = w.WriteMsg(m)
		return
	}
	q := req.Question[0]
	name := strings.ToLower(q.Name)
	vals, ok := s.txt[name]
	switch {
	case !ok:
		m.Rcode = dns.RcodeNameError
		m.Ns = append(m.Ns, s.soa(name))
	case q.Qtype == dns.TypeTXT || q.Qtype == dns.TypeANY:
		for _, v := range vals {
			m.Answer = append(m.Answer, &dns.TXT{
				Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypeTXT, Class: dns.ClassINET, Ttl: 300},
				Txt: splitTXT(v),
			})
		}
	default:
		m.Ns = append(m.Ns, s.soa(name))
	}
	_ = w.WriteMsg(m)
}

// soa is the SOA sent with negative answers; its minimum is the negative
// caching TTL (RFC 2308 §5).
func (s *dnsServer) soa(name string) dns.RR {
	zone := "test."
	if i := strings.LastIndex(strings.TrimSuffix(name, "."), "."); i >= 0 {
		zone = name[i+1:]
	}
	return &dns.SOA{
		Hdr: dns.RR_Header{Name: zone, Rrtype: dns.TypeSOA, Class: dns.ClassINET, Ttl: 60},
		Ns:  "ns." + zone, Mbox: "hostmaster." + zone,
		Serial: 1, Refresh: 3600, Retry: 600, Expire: 86400, Minttl: 60,
	}
}

// splitTXT cuts a long TXT value into character-strings of at most 255
// bytes (RFC 1035 §3.3.14); a verifier joins them (RFC 7208 §3.3,
// RFC 6376 §3.6.2.2).
func splitTXT(v string) []string {
	var out []string
	for len(v) > 255 {
		out = append(out, v[:255])
		v = v[255:]
	}
	return append(out, v)
}
