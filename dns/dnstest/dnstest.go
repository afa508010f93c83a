// Package dnstest runs a real DNS server on loopback for tests.
//
// The server answers over UDP and TCP on the same 127.0.0.1 port, like a
// recursive resolver would to a stub: it follows CNAME chains inside its
// data (RFC 1034 §3.6.2, §4.3.2), answers NXDOMAIN for names it does not
// hold and NOERROR with an SOA in the authority section (RFC 2308 §2.2) for
// names that exist without the asked type. Names can be made to time out
// (no answer at all) or to SERVFAIL, per name or per name and type.
//
//	srv := dnstest.Start(t, `
//		example.test.            300 IN MX  10 mx.example.test.
//		mx.example.test.         300 IN A   192.0.2.25
//		example.test.            300 IN TXT "v=spf1 ip4:192.0.2.0/24 -all"
//	`)
//	srv.Timeout("slow.example.test.")
//	resolverAddr := srv.Addr() // "127.0.0.1:NNNNN"
package dnstest

import (
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// DefaultTTL is the TTL given to zone-text records that have none.
const DefaultTTL = 300

// negativeTTL is the SOA minimum sent with NXDOMAIN and NODATA answers.
const negativeTTL = 60

// maxCNAMEChain bounds CNAME chasing; a longer chain is reported as
// SERVFAIL, as recursive resolvers do for loops.
const maxCNAMEChain = 8

// Server is a DNS server on loopback. Its methods are safe for concurrent
// use, also while it serves queries.
type Server struct {
	addr string
	udp  *dns.Server
	tcp  *dns.Server

	mu       sync.Mutex
	rrs      map[string][]dns.RR        // owner (lower-case FQDN) → records
	timeout  map[string]map[uint16]bool // owner → qtypes (0 = all)
	servfail map[string]map[uint16]bool
	nxdomain map[string]bool
	delay    map[string]time.Duration
	done     chan struct{} // closed by Close
	closeOne sync.Once
	queries  map[string]int // "owner/TYPE" → count
	total    int
}

// Start parses zone (RFC 1035 master file text; absolute names, or an
// $ORIGIN line; records without a TTL get DefaultTTL), starts a server on
// 127.0.0.1 for UDP and TCP, and stops it when the test ends. It calls
// t.Fatal on a zone syntax error or when it cannot listen.
func Start(t testing.TB, zone string) *Server {
	t.Helper()
	s, err := New(zone)
	if err != nil {
		t.Fatalf("dnstest: %v", err)
	}
	t.Cleanup(s.Close)
	return s
}

// New is Start outside a test (mailhook-bench serves its sender's records
// with it): the caller closes the server.
func New(zone string) (*Server, error) {
	s := &Server{
		rrs:      map[string][]dns.RR{},
		timeout:  map[string]map[uint16]bool{},
		servfail: map[string]map[uint16]bool{},
		nxdomain: map[string]bool{},
		delay:    map[string]time.Duration{},
		done:     make(chan struct{}),
		queries:  map[string]int{},
	}
	if err := s.AddZone(zone); err != nil {
		return nil, err
	}
	if err := s.listen(); err != nil {
		return nil, err
	}
	return s, nil
}

// listen binds UDP on an ephemeral port, then TCP on the same port,
// retrying a few times when the TCP port happens to be taken.
func (s *Server) listen() error {
	var lastErr error
	for range 10 {
		pc, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			return fmt.Errorf("listen udp: %w", err)
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
		started := make(chan error, 2)
		s.udp.NotifyStartedFunc = func() { started <- nil }
		s.tcp.NotifyStartedFunc = func() { started <- nil }
		go s.run(s.udp, started)
		go s.run(s.tcp, started)
		for range 2 {
			if err := <-started; err != nil {
				s.Close()
				return err
			}
		}
		return nil
	}
	return fmt.Errorf("listen tcp on the udp port: %w", lastErr)
}

func (s *Server) run(srv *dns.Server, started chan<- error) {
	defer func() {
		if r := recover(); r != nil {
			started <- fmt.Errorf("dns server panic: %v", r)
		}
	}()
	if err := srv.ActivateAndServe(); err != nil {
		// Non-blocking: after start-up nobody reads the channel, and a
		// serve error after Close is expected.
		select {
		case started <- fmt.Errorf("serve: %w", err):
		default:
		}
	}
}

// Close stops the server. Start registers it with t.Cleanup.
func (s *Server) Close() {
	s.closeOne.Do(func() { close(s.done) })
	if s.udp != nil {
		_ = s.udp.Shutdown()
	}
	if s.tcp != nil {
		_ = s.tcp.Shutdown()
	}
}

// Addr is the "127.0.0.1:port" the server answers on, for UDP and TCP.
func (s *Server) Addr() string { return s.addr }

// AddZone adds the records of zone text (see Start).
func (s *Server) AddZone(zone string) error {
	zp := dns.NewZoneParser(strings.NewReader(zone), ".", "")
	zp.SetDefaultTTL(DefaultTTL)
	var rrs []dns.RR
	for rr, ok := zp.Next(); ok; rr, ok = zp.Next() {
		rrs = append(rrs, rr)
	}
	if err := zp.Err(); err != nil {
		return fmt.Errorf("parse zone: %w", err)
	}
	s.AddRR(rrs...)
	return nil
}

// Add adds records given one per string in zone-file syntax, e.g.
// "example.test. 60 IN A 192.0.2.1". It panics on a syntax error, as it is
// meant for literals in tests.
func (s *Server) Add(records ...string) {
	for _, r := range records {
		rr, err := dns.NewRR(r)
		if err != nil {
			panic(fmt.Sprintf("dnstest: %q: %v", r, err))
		}
		if rr != nil {
			s.AddRR(rr)
		}
	}
}

// AddRR adds records.
func (s *Server) AddRR(rrs ...dns.RR) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, rr := range rrs {
		name := key(rr.Header().Name)
		s.rrs[name] = append(s.rrs[name], rr)
	}
}

// AddTXT adds one TXT record holding value, split into the 255-byte
// character-strings DNS requires (RFC 1035 §3.3.14; DKIM keys are longer).
// The value is taken as raw bytes: no zone-file escapes are interpreted.
func (s *Server) AddTXT(name string, ttl uint32, value string) {
	s.AddTXTStrings(name, ttl, Split255(value)...)
}

// AddTXTStrings adds one TXT record made of the given raw character-strings
// (each at most 255 bytes).
func (s *Server) AddTXTStrings(name string, ttl uint32, strs ...string) {
	esc := make([]string, len(strs))
	for i, str := range strs {
		// miekg/dns packs TXT strings from their presentation form, where
		// a backslash starts an escape.
		esc[i] = strings.ReplaceAll(str, `\`, `\\`)
	}
	s.AddRR(&dns.TXT{
		Hdr: dns.RR_Header{Name: dns.Fqdn(name), Rrtype: dns.TypeTXT, Class: dns.ClassINET, Ttl: ttl},
		Txt: esc,
	})
}

// Split255 splits s into pieces of at most 255 bytes. An empty s gives one
// empty piece.
func Split255(s string) []string {
	var out []string
	for len(s) > 255 {
		out = append(out, s[:255])
		s = s[255:]
	}
	return append(out, s)
}

// Remove deletes every record of name, and its timeout, SERVFAIL and
// NXDOMAIN marks.
func (s *Server) Remove(name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	k := key(name)
	delete(s.rrs, k)
	delete(s.timeout, k)
	delete(s.servfail, k)
	delete(s.nxdomain, k)
	delete(s.delay, k)
}

// Timeout makes queries for name go unanswered, for the given types or,
// with none given, for every type.
func (s *Server) Timeout(name string, qtypes ...uint16) {
	s.mark(s.timeout, name, qtypes)
}

// ServFail makes queries for name get SERVFAIL, for the given types or,
// with none given, for every type.
func (s *Server) ServFail(name string, qtypes ...uint16) {
	s.mark(s.servfail, name, qtypes)
}

// Delay makes answers for name (every type) leave only after d, as from a
// slow authoritative server. Close cuts pending delays short.
func (s *Server) Delay(name string, d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.delay[key(name)] = d
}

// NXDomain makes name answer NXDOMAIN even if it has records.
func (s *Server) NXDomain(name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.nxdomain[key(name)] = true
}

func (s *Server) mark(m map[string]map[uint16]bool, name string, qtypes []uint16) {
	s.mu.Lock()
	defer s.mu.Unlock()
	k := key(name)
	if m[k] == nil {
		m[k] = map[uint16]bool{}
	}
	if len(qtypes) == 0 {
		m[k][0] = true
	}
	for _, t := range qtypes {
		m[k][t] = true
	}
}

// Queries reports how many queries for name and qtype the server received.
func (s *Server) Queries(name string, qtype uint16) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.queries[key(name)+"/"+dns.TypeToString[qtype]]
}

// TotalQueries reports how many queries the server received in all.
func (s *Server) TotalQueries() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.total
}

// key is the canonical form of a name: lower case, fully qualified, and
// escaped the way miekg/dns presents names it unpacks from the wire (so a
// name holding a space or other special byte matches the query for it).
func key(name string) string {
	n := strings.ToLower(dns.Fqdn(name))
	buf := make([]byte, 256)
	off, err := dns.PackDomainName(n, buf, 0, nil, false)
	if err != nil {
		return n
	}
	u, _, err := dns.UnpackDomainName(buf[:off], 0)
	if err != nil {
		return n
	}
	return strings.ToLower(u)
}

func marked(m map[string]map[uint16]bool, k string, qtype uint16) bool {
	return m[k][0] || m[k][qtype]
}

// serve answers one query.
func (s *Server) serve(w dns.ResponseWriter, req *dns.Msg) {
	resp := new(dns.Msg)
	defer func() {
		if r := recover(); r != nil {
			resp = new(dns.Msg)
			resp.SetRcode(req, dns.RcodeServerFailure)
			_ = w.WriteMsg(resp)
		}
	}()
	if len(req.Question) != 1 {
		resp.SetRcode(req, dns.RcodeFormatError)
		_ = w.WriteMsg(resp)
		return
	}
	q := req.Question[0]
	resp.SetReply(req)
	resp.RecursionAvailable = true
	if !s.answer(resp, q) {
		return // timeout: say nothing
	}
	s.mu.Lock()
	d := s.delay[key(q.Name)]
	s.mu.Unlock()
	if d > 0 {
		t := time.NewTimer(d)
		select {
		case <-t.C:
		case <-s.done:
			t.Stop()
			return
		}
	}
	size := dns.MinMsgSize
	if opt := req.IsEdns0(); opt != nil {
		size = max(int(opt.UDPSize()), dns.MinMsgSize)
		resp.SetEdns0(opt.UDPSize(), false)
	}
	if w.LocalAddr().Network() == "udp" {
		resp.Truncate(size)
	} else {
		resp.Truncate(dns.MaxMsgSize)
	}
	_ = w.WriteMsg(resp)
}

// answer fills resp for q and reports whether to send it at all.
func (s *Server) answer(resp *dns.Msg, q dns.Question) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	name := key(q.Name)
	s.total++
	s.queries[name+"/"+dns.TypeToString[q.Qtype]]++

	seen := map[string]bool{}
	for hop := 0; ; hop++ {
		if marked(s.timeout, name, q.Qtype) {
			return false
		}
		if marked(s.servfail, name, q.Qtype) || hop > maxCNAMEChain || seen[name] {
			resp.Answer = nil
			resp.Rcode = dns.RcodeServerFailure
			return true
		}
		seen[name] = true
		rrs, exists := s.rrs[name]
		if s.nxdomain[name] || (!exists && !s.hasChildren(name)) {
			resp.Rcode = dns.RcodeNameError
			resp.Ns = []dns.RR{soa(name)}
			return true
		}
		var cname *dns.CNAME
		found := 0
		for _, rr := range rrs {
			if rr.Header().Rrtype == q.Qtype || q.Qtype == dns.TypeANY {
				resp.Answer = append(resp.Answer, dns.Copy(rr))
				found++
			}
			if c, ok := rr.(*dns.CNAME); ok {
				cname = c
			}
		}
		if found > 0 && (cname == nil || q.Qtype == dns.TypeCNAME) {
			return true
		}
		if cname == nil || q.Qtype == dns.TypeCNAME {
			resp.Ns = []dns.RR{soa(name)}
			return true
		}
		resp.Answer = append(resp.Answer, dns.Copy(cname))
		name = key(cname.Target)
	}
}

// hasChildren reports whether name is an empty non-terminal: it has no
// records but names below it do, so it exists (RFC 8020).
func (s *Server) hasChildren(name string) bool {
	for k := range s.rrs {
		if strings.HasSuffix(k, "."+name) {
			return true
		}
	}
	return false
}

func soa(name string) dns.RR {
	return &dns.SOA{
		Hdr:     dns.RR_Header{Name: name, Rrtype: dns.TypeSOA, Class: dns.ClassINET, Ttl: negativeTTL},
		Ns:      "ns.dnstest.invalid.",
		Mbox:    "hostmaster.dnstest.invalid.",
		Serial:  uint32(time.Now().Unix()),
		Refresh: 3600, Retry: 600, Expire: 86400, Minttl: negativeTTL,
	}
}
