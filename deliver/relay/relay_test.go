package relay

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strings"
	"testing"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"github.com/mailhook/mailhook/dns"
	"github.com/mailhook/mailhook/dns/dnstest"
	"github.com/mailhook/mailhook/internal/testenv"
)

func TestSmarthostAuthPlainSTARTTLS(t *testing.T) {
	for _, mech := range []string{sasl.Plain, sasl.Login} {
		t.Run(mech, func(t *testing.T) {
			srvTLS, pool := selfSigned(t)
			s := startSink(t, sinkOpts{tls: srvTLS}, func(s *sink) {
				s.mechs = []string{mech}
				s.user, s.pass = "relayuser", "s3cret"
			})
			r := newRelayer(t, Options{Smarthost: s.addr, Username: "relayuser", Password: "s3cret",
				TLS: TLSRequired, TLSConfig: &tls.Config{RootCAs: pool}})
			f := newFixture(t, testMsg(), "example.net", "bob@example.net", "carol@example.net")
			out := f.handle(t, r)
			if !out.Done || out.Permanent || len(out.Rcpts) != 0 {
				t.Fatalf("Handle = %+v, want done", out)
			}
			if out.Attempt.Status != 250 || !strings.HasPrefix(out.Attempt.Response, "250 ") {
				t.Errorf("Attempt = %d %q, want the 250 reply", out.Attempt.Status, out.Attempt.Response)
			}
			got := s.received()
			if len(got) != 1 {
				t.Fatalf("sink got %d messages, want 1", len(got))
			}
			e := got[0]
			if !e.TLS || e.User != "relayuser" {
				t.Errorf("session tls=%v user=%q, want tls and relayuser", e.TLS, e.User)
			}
			if e.From != "alice@example.org" || !slices.Equal(e.To, []string{"bob@example.net", "carol@example.net"}) {
				t.Errorf("envelope = %q -> %q", e.From, e.To)
			}
			if !strings.HasPrefix(string(e.Data), "X-Loop: mx.mailhook.test\r\n") || !hasSuffix(e.Data, testMsg()) {
				t.Errorf("data = %q, want X-Loop then the original", e.Data)
			}
		})
	}
}

func TestSmarthostRequiredTLSFailures(t *testing.T) {
	srvTLS, _ := selfSigned(t)
	plain := startSink(t, sinkOpts{}, nil)
	untrusted := startSink(t, sinkOpts{tls: srvTLS}, nil)
	for _, tc := range []struct {
		name string
		addr string
	}{
		{"starttls not offered", plain.addr},
		{"untrusted certificate", untrusted.addr},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newRelayer(t, Options{Smarthost: tc.addr, TLS: TLSRequired})
			f := newFixture(t, testMsg(), "example.net", "bob@example.net")
			out := f.handle(t, r)
			if out.Done || out.Permanent || !slices.Equal(out.Rcpts, []string{"bob@example.net"}) {
				t.Fatalf("Handle = %+v, want a retry of bob", out)
			}
		})
	}
	if n := len(plain.received()) + len(untrusted.received()); n != 0 {
		t.Errorf("sinks got %d messages, want 0", n)
	}
}

func TestSmarthostNoCredentialsInPlaintext(t *testing.T) {
	s := startSink(t, sinkOpts{server: func(srv *smtp.Server) { srv.AllowInsecureAuth = true }},
		func(s *sink) { s.mechs = []string{sasl.Plain} })
	r := newRelayer(t, Options{Smarthost: s.addr, Username: "u", Password: "p", TLS: TLSOpportunistic})
	f := newFixture(t, testMsg(), "example.net", "bob@example.net")
	out := f.handle(t, r)
	if out.Done || out.Permanent || !strings.Contains(out.Attempt.Error, "without tls") {
		t.Fatalf("Handle = %+v, want a retry refusing plaintext credentials", out)
	}
}

func TestCredentialsNeedVerifiedTLS(t *testing.T) {
	srvTLS, pool := selfSigned(t)
	s := startSink(t, sinkOpts{tls: srvTLS}, func(s *sink) {
		s.mechs = []string{sasl.Plain}
		s.user, s.pass = "u", "p"
	})
	f := newFixture(t, testMsg(), "example.net", "bob@example.net")
	// Opportunistic, certificate not trusted: no AUTH, retry.
	r := newRelayer(t, Options{Smarthost: s.addr, Username: "u", Password: "p"})
	if out := f.handle(t, r); out.Done || out.Permanent {
		t.Fatalf("Handle(untrusted) = %+v, want a retry", out)
	}
	// Opportunistic, certificate trusted: delivered.
	r = newRelayer(t, Options{Smarthost: s.addr, Username: "u", Password: "p", TLSConfig: &tls.Config{RootCAs: pool}})
	if out := f.handle(t, r); !out.Done {
		t.Fatalf("Handle(trusted) = %+v, want done", out)
	}
	if got := s.received(); len(got) != 1 || got[0].User != "u" {
		t.Errorf("received %+v", got)
	}
}

func TestOpportunisticTLS(t *testing.T) {
	srvTLS, _ := selfSigned(t) // not trusted: opportunistic does not verify
	withTLS := startSink(t, sinkOpts{tls: srvTLS}, nil)
	plain := startSink(t, sinkOpts{}, nil)
	for _, tc := range []struct {
		s       *sink
		wantTLS bool
	}{{withTLS, true}, {plain, false}} {
		r := newRelayer(t, Options{Smarthost: tc.s.addr})
		f := newFixture(t, testMsg(), "example.net", "bob@example.net")
		if out := f.handle(t, r); !out.Done {
			t.Fatalf("Handle = %+v, want done", out)
		}
		if got := tc.s.received(); len(got) != 1 || got[0].TLS != tc.wantTLS {
			t.Errorf("received %+v, want one message with tls=%v", got, tc.wantTLS)
		}
	}
}

func TestImplicitTLS(t *testing.T) {
	srvTLS, pool := selfSigned(t)
	s := startSink(t, sinkOpts{tls: srvTLS, implicit: true}, func(s *sink) {
		s.mechs = []string{sasl.Plain}
		s.user, s.pass = "u", "p"
	})
	r := newRelayer(t, Options{Smarthost: s.addr, Username: "u", Password: "p", TLS: TLSImplicit,
		TLSConfig: &tls.Config{RootCAs: pool}})
	f := newFixture(t, testMsg(), "example.net", "bob@example.net")
	if out := f.handle(t, r); !out.Done {
		t.Fatalf("Handle = %+v, want done", out)
	}
	if got := s.received(); len(got) != 1 || !got[0].TLS || got[0].User != "u" {
		t.Errorf("received %+v, want one message over tls as u", got)
	}
}

func TestTempFailThenSuccess(t *testing.T) {
	s := startSink(t, sinkOpts{}, func(s *sink) {
		s.data = func(n int) error {
			if n == 1 {
				return &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "try again later"}
			}
			return nil
		}
	})
	r := newRelayer(t, Options{Smarthost: s.addr, TLS: TLSNone})
	f := newFixture(t, testMsg(), "example.net", "bob@example.net", "carol@example.net")
	out := f.handle(t, r)
	if out.Done || out.Permanent || !slices.Equal(out.Rcpts, f.job.Rcpts) {
		t.Fatalf("first Handle = %+v, want a retry of both", out)
	}
	if out.Attempt.Status != 451 || out.Attempt.Response != "451 4.3.0 try again later" {
		t.Errorf("first attempt = %d %q, want the 451 reply", out.Attempt.Status, out.Attempt.Response)
	}
	f.job.Rcpts = out.Rcpts
	out = f.handle(t, r)
	if !out.Done {
		t.Fatalf("second Handle = %+v, want done", out)
	}
	if got := s.received(); len(got) != 1 || len(got[0].To) != 2 {
		t.Errorf("received %+v, want one message to two", got)
	}
}

func TestPartialRecipients(t *testing.T) {
	s := startSink(t, sinkOpts{}, func(s *sink) {
		s.rcpt = func(to string) error {
			switch {
			case strings.HasPrefix(to, "gone@"):
				return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "no such user"}
			case strings.HasPrefix(to, "busy@"):
				return &smtp.SMTPError{Code: 452, EnhancedCode: smtp.EnhancedCode{4, 2, 2}, Message: "mailbox full"}
			}
			return nil
		}
	})
	r := newRelayer(t, Options{Smarthost: s.addr, TLS: TLSNone})

	t.Run("one of two refused", func(t *testing.T) {
		f := newFixture(t, testMsg(), "example.net", "bob@example.net", "gone@example.net")
		out := f.handle(t, r)
		if out.Done || !out.Permanent || !slices.Equal(out.Rcpts, []string{"gone@example.net"}) {
			t.Fatalf("Handle = %+v, want permanent for gone only", out)
		}
		if out.Attempt.Status != 550 || out.Attempt.Response != "550 5.1.1 no such user" {
			t.Errorf("attempt = %d %q, want the 550 reply", out.Attempt.Status, out.Attempt.Response)
		}
		if !strings.Contains(out.Attempt.Error, "gone@example.net") {
			t.Errorf("error %q does not name the refused recipient", out.Attempt.Error)
		}
	})
	t.Run("refused, deferred and accepted", func(t *testing.T) {
		f := newFixture(t, testMsg(), "example.net", "gone@example.net", "bob@example.net", "busy@example.net")
		out := f.handle(t, r)
		if out.Done || out.Permanent || !slices.Equal(out.Rcpts, []string{"busy@example.net"}) {
			t.Fatalf("Handle = %+v, want a retry of busy only", out)
		}
		if out.Attempt.Status != 452 {
			t.Errorf("attempt status = %d, want the last reply 452", out.Attempt.Status)
		}
		if !strings.Contains(out.Attempt.Error, "550 5.1.1") {
			t.Errorf("error %q does not record the 550", out.Attempt.Error)
		}
	})
	t.Run("all refused", func(t *testing.T) {
		f := newFixture(t, testMsg(), "example.net", "gone@example.net")
		out := f.handle(t, r)
		if !out.Permanent || out.Done {
			t.Fatalf("Handle = %+v, want permanent", out)
		}
	})
	got := s.received()
	if len(got) != 2 || !slices.Equal(got[0].To, []string{"bob@example.net"}) || !slices.Equal(got[1].To, []string{"bob@example.net"}) {
		t.Errorf("received %+v, want two messages to bob only", got)
	}
}

func TestMailFromRefused(t *testing.T) {
	s := startSink(t, sinkOpts{}, func(s *sink) {
		s.mail = func(from string) error {
			switch from {
			case "spammer@example.org":
				return &smtp.SMTPError{Code: 553, EnhancedCode: smtp.EnhancedCode{5, 7, 1}, Message: "sender refused"}
			case "later@example.org":
				return &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 7, 1}, Message: "greylisted"}
			}
			return nil
		}
	})
	r := newRelayer(t, Options{Smarthost: s.addr, TLS: TLSNone})
	for _, tc := range []struct {
		from      string
		permanent bool
		status    int
	}{
		{"spammer@example.org", true, 553},
		{"later@example.org", false, 451},
		{"bad\r\naddress@example.org", true, 0},
	} {
		f := newFixture(t, testMsg(), "example.net", "bob@example.net")
		f.mail.Envelope.MailFrom = tc.from
		out := f.handle(t, r)
		if out.Done || out.Permanent != tc.permanent || out.Attempt.Status != tc.status || len(out.Rcpts) != 1 {
			t.Errorf("Handle(from %q) = %+v, want permanent=%v status %d", tc.from, out, tc.permanent, tc.status)
		}
	}
	if n := len(s.received()); n != 0 {
		t.Errorf("sink got %d messages", n)
	}
}

func TestBadRecipients(t *testing.T) {
	s := startSink(t, sinkOpts{}, nil)
	zone := dnsZone(t)
	r := newRelayer(t, Options{Resolver: NetResolver(zone.Addr()), Port: s.port()})
	f := newFixture(t, testMsg(), "dest.test", "bob@dest.test", "x\r\nRSET@dest.test", "eve@elsewhere.test")
	out := f.handle(t, r)
	if !out.Permanent || !slices.Equal(out.Rcpts, []string{"x\r\nRSET@dest.test", "eve@elsewhere.test"}) {
		t.Fatalf("Handle = %+v, want the two bad recipients failed", out)
	}
	if got := s.received(); len(got) != 1 || !slices.Equal(got[0].To, []string{"bob@dest.test"}) {
		t.Errorf("received %+v, want one message to bob", got)
	}
}

func TestDropMidData(t *testing.T) {
	s := startSink(t, sinkOpts{}, func(s *sink) { s.dropMidData = true })
	r := newRelayer(t, Options{Smarthost: s.addr, TLS: TLSNone})
	// A message larger than socket buffers, so the drop happens while we
	// are still writing.
	big := testMsg() + strings.Repeat("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcd\r\n", 64<<10)
	f := newFixture(t, big, "example.net", "bob@example.net", "carol@example.net")
	out := f.handle(t, r)
	if out.Done || out.Permanent || !slices.Equal(out.Rcpts, f.job.Rcpts) {
		t.Fatalf("Handle = %+v, want a retry of both", out)
	}
	if !strings.Contains(out.Attempt.Error, "DATA") {
		t.Errorf("error %q does not say DATA failed", out.Attempt.Error)
	}
}

func TestContextCancelled(t *testing.T) {
	block := make(chan struct{})
	reached := make(chan struct{}, 1)
	t.Cleanup(func() { close(block) })
	s := startSink(t, sinkOpts{}, func(s *sink) {
		s.data = func(int) error {
			reached <- struct{}{}
			<-block
			return nil
		}
	})
	r := newRelayer(t, Options{Smarthost: s.addr, TLS: TLSNone})
	f := newFixture(t, testMsg(), "example.net", "bob@example.net")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		out := r.Handle(ctx, f.job, f.mail, f.raw)
		if out.Done || out.Permanent || len(out.Rcpts) != 1 {
			t.Errorf("Handle = %+v, want a retry", out)
		}
	}()
	// Once the sink holds the message and waits, cancel: Handle must
	// return without the sink's reply.
	select {
	case <-reached:
	case <-done:
		t.Fatal("Handle returned before the sink got the data")
	}
	cancel()
	<-done
}

// dnsZone serves the destination domains of the direct delivery tests.
func dnsZone(t *testing.T) *dnstest.Server {
	return dnstest.Start(t, `
dest.test.          IN MX 10 mx1.dest.test.
mx1.dest.test.      IN A  127.0.0.1
fallback.test.      IN MX 10 down.fallback.test.
fallback.test.      IN MX 20 up.fallback.test.
down.fallback.test. IN A  127.0.0.2
up.fallback.test.   IN A  127.0.0.1
busy.test.          IN MX 10 busy.busy.test.
busy.test.          IN MX 20 up.busy.test.
busy.busy.test.     IN A  127.0.0.3
up.busy.test.       IN A  127.0.0.1
implicit.test.      IN A  127.0.0.1
null.test.          IN MX 0 .
`)
}

func TestDirectDelivery(t *testing.T) {
	srvTLS, _ := selfSigned(t)
	s := startSink(t, sinkOpts{tls: srvTLS}, nil)
	zone := dnsZone(t)
	// busy.busy.test answers 421 at the greeting, on the same port as the
	// sink but at 127.0.0.3.
	busy := startSink(t, sinkOpts{ip: "127.0.0.3", port: fmt.Sprint(s.port())}, func(s *sink) {
		s.refuse = &smtp.SMTPError{Code: 421, EnhancedCode: smtp.EnhancedCode{4, 3, 2}, Message: "too busy"}
	})
	dnsRes, err := dns.NewResolver(dns.ResolverOptions{Server: zone.Addr(), CacheSize: -1})
	if err != nil {
		t.Fatal(err)
	}
	// The verification resolver (what mailhook wires in) and Go's.
	for _, res := range []struct {
		name string
		r    MXResolver
	}{{"auth", dnsRes}, {"net", NetResolver(zone.Addr())}} {
		r := newRelayer(t, Options{Resolver: res.r, Port: s.port()})
		for _, tc := range []struct {
			domain string
			want   string // "done", "retry" or "permanent"
			note   string // in Attempt.Error
		}{
			{"dest.test", "done", ""},
			{"fallback.test", "done", "127.0.0.2"},
			{"busy.test", "done", "421 4.3.2 too busy"},
			{"implicit.test", "done", ""},
			{"null.test", "permanent", "null MX"},
			{"nxdomain.test", "permanent", "no address"},
		} {
			t.Run(res.name+"/"+tc.domain, func(t *testing.T) {
				before := len(s.received())
				f := newFixture(t, testMsg(), tc.domain, "bob@"+tc.domain)
				out := f.handle(t, r)
				got := "retry"
				switch {
				case out.Done:
					got = "done"
				case out.Permanent:
					got = "permanent"
				}
				if got != tc.want {
					t.Fatalf("Handle(%s) = %s (%+v), want %s", tc.domain, got, out, tc.want)
				}
				if !strings.Contains(out.Attempt.Error, tc.note) {
					t.Errorf("error %q does not mention %q", out.Attempt.Error, tc.note)
				}
				rcv := s.received()
				if tc.want == "done" {
					if out.Attempt.Status != 250 {
						t.Errorf("attempt status = %d, want 250", out.Attempt.Status)
					}
					if len(rcv) != before+1 || !rcv[before].TLS || rcv[before].To[0] != "bob@"+tc.domain {
						t.Errorf("sink got %+v, want one message to bob@%s over tls", rcv[before:], tc.domain)
					}
				} else if len(rcv) != before {
					t.Errorf("sink got %d messages, want none", len(rcv)-before)
				}
			})
		}
	}
	busy.mu.Lock()
	if busy.conns == 0 {
		t.Errorf("the busy MX was never tried")
	}
	busy.mu.Unlock()
}

func TestDirectDeliveryTemporaryDNS(t *testing.T) {
	zone := dnsZone(t)
	zone.ServFail("flaky.test.")
	zone.Add("flakyhost.test. 60 IN MX 10 mx.flaky.test.")
	zone.ServFail("mx.flaky.test.")
	dnsRes, err := dns.NewResolver(dns.ResolverOptions{Server: zone.Addr(), CacheSize: -1})
	if err != nil {
		t.Fatal(err)
	}
	for _, res := range []MXResolver{dnsRes, NetResolver(zone.Addr())} {
		r := newRelayer(t, Options{Resolver: res, Port: 1})
		for _, domain := range []string{"flaky.test", "flakyhost.test"} {
			f := newFixture(t, testMsg(), domain, "bob@"+domain)
			out := f.handle(t, r)
			if out.Done || out.Permanent || len(out.Rcpts) != 1 {
				t.Fatalf("Handle(%s) = %+v, want a retry", domain, out)
			}
		}
	}
}

func TestAllMXDown(t *testing.T) {
	zone := dnsZone(t)
	zone.Add("down.test. 60 IN MX 10 down.fallback.test.")
	port, err := testenv.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	r := newRelayer(t, Options{Resolver: NetResolver(zone.Addr()), Port: port})
	f := newFixture(t, testMsg(), "down.test", "bob@down.test")
	out := f.handle(t, r)
	if out.Done || out.Permanent || len(out.Rcpts) != 1 {
		t.Fatalf("Handle = %+v, want a retry", out)
	}
}

func TestLoopGuards(t *testing.T) {
	s := startSink(t, sinkOpts{}, nil)
	r := newRelayer(t, Options{Smarthost: s.addr, TLS: TLSNone, MaxReceived: 5})
	many := make([]string, 6)
	for i := range many {
		many[i] = fmt.Sprintf("Received: from hop%d.example by hop%d.example; Sun, 29 Nov 2026 04:00:00 +0000", i, i+1)
	}
	for _, tc := range []struct {
		name  string
		extra []string
	}{
		{"our marker", []string{"X-Loop: MX.mailhook.test"}},
		{"folded marker", []string{"X-Loop:", " mx.mailhook.test"}},
		{"too many hops", many},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, testMsg(tc.extra...), "example.net", "bob@example.net")
			out := f.handle(t, r)
			if !out.Permanent || !strings.Contains(out.Attempt.Error, ErrLoop.Error()) {
				t.Fatalf("Handle = %+v, want permanent with %q", out, ErrLoop)
			}
		})
	}
	// Another host's marker and exactly the limit of hops are fine.
	f := newFixture(t, testMsg(append([]string{"X-Loop: other.example"}, many[:4]...)...), "example.net", "bob@example.net")
	if out := f.handle(t, r); !out.Done {
		t.Fatalf("Handle = %+v, want done", out)
	}
	if n := len(s.received()); n != 1 {
		t.Errorf("sink got %d messages, want 1", n)
	}
}

// TestForwardLoopStops simulates two routes forwarding to each other: the
// relay of host A forwards to B, whose route forwards back to A. A sink
// stands for each host; what a sink receives is fed to that host's relay
// again, as its ingest and router would do.
func TestForwardLoopStops(t *testing.T) {
	sinkA := startSink(t, sinkOpts{}, nil)
	sinkB := startSink(t, sinkOpts{}, nil)
	relayA := newRelayer(t, Options{Hostname: "a.test", Smarthost: sinkB.addr, TLS: TLSNone})
	relayB := newRelayer(t, Options{Hostname: "b.test", Smarthost: sinkA.addr, TLS: TLSNone})

	msg := testMsg()
	relays := []*Relayer{relayA, relayB}
	sinks := []*sink{sinkB, sinkA}
	passes := 0
	for i := 0; i < 10; i++ {
		f := newFixture(t, msg, "example.net", "someone@example.net")
		out := f.handle(t, relays[i%2])
		if out.Permanent {
			if !strings.Contains(out.Attempt.Error, ErrLoop.Error()) {
				t.Fatalf("pass %d refused with %q, want a loop", i, out.Attempt.Error)
			}
			break
		}
		if !out.Done {
			t.Fatalf("pass %d = %+v, want done", i, out)
		}
		passes++
		got := sinks[i%2].received()
		msg = string(got[len(got)-1].Data)
	}
	// A→B, B→A, then A sees its own marker.
	if passes != 2 {
		t.Fatalf("the message was forwarded %d times, want 2", passes)
	}
}

func TestAutoSubmitted(t *testing.T) {
	s := startSink(t, sinkOpts{}, nil)
	r := newRelayer(t, Options{Smarthost: s.addr, TLS: TLSNone})
	f := newFixture(t, testMsg("Auto-Submitted: auto-replied"), "example.net", "bob@example.net")
	if out := f.handle(t, r); !out.Permanent || !strings.Contains(out.Attempt.Error, "auto-submitted") {
		t.Fatalf("Handle = %+v, want permanent auto-submitted refusal", out)
	}
	f.job.Action.ForwardAutoSubmitted = true
	if out := f.handle(t, r); !out.Done {
		t.Fatalf("Handle with forward_auto_submitted = %+v, want done", out)
	}
	f = newFixture(t, testMsg("Auto-Submitted: no"), "example.net", "bob@example.net")
	if out := f.handle(t, r); !out.Done {
		t.Fatalf("Handle(Auto-Submitted: no) = %+v, want done", out)
	}
}

func TestSRSEnvelope(t *testing.T) {
	s := startSink(t, sinkOpts{}, nil)
	srs, err := NewSRS([]byte("0123456789abcdef0123"), "fwd.mailhook.test", 0)
	if err != nil {
		t.Fatal(err)
	}
	r := newRelayer(t, Options{Smarthost: s.addr, TLS: TLSNone, SRS: srs})
	f := newFixture(t, testMsg(), "example.net", "bob@example.net")
	if out := f.handle(t, r); !out.Done {
		t.Fatalf("Handle = %+v", out)
	}
	f.mail.Envelope.MailFrom = ""
	if out := f.handle(t, r); !out.Done {
		t.Fatalf("Handle(null sender) = %+v", out)
	}
	got := s.received()
	if len(got) != 2 {
		t.Fatalf("got %d messages", len(got))
	}
	if !strings.HasPrefix(got[0].From, "SRS0=") || !strings.HasSuffix(got[0].From, "=example.org=alice@fwd.mailhook.test") {
		t.Errorf("MAIL FROM = %q, want an SRS0 address", got[0].From)
	}
	a, err := srs.HandleBounce("", got[0].From)
	if err != nil || !a.Relay || a.To != "alice@example.org" {
		t.Errorf("HandleBounce(%q) = %+v, %v; want relay to alice (spf passed)", got[0].From, a, err)
	}
	if got[1].From != "" {
		t.Errorf("null sender became %q", got[1].From)
	}
}

func TestOptionsValidation(t *testing.T) {
	for _, o := range []Options{
		{},
		{Hostname: "h", TLS: "sometimes"},
		{Hostname: "h", TLS: TLSImplicit},
		{Hostname: "h", Smarthost: "nohostport"},
		{Hostname: "h", Username: "u"},
	} {
		if _, err := New(o); err == nil {
			t.Errorf("New(%+v) = nil error", o)
		}
	}
}

// TestOpportunisticHandshakeFallback: the server offers STARTTLS but its
// TLS is broken; opportunistic mode delivers in plaintext on a new
// connection.
func TestOpportunisticHandshakeFallback(t *testing.T) {
	s := startSink(t, sinkOpts{tls: &tls.Config{}}, nil) // no certificate: every handshake fails
	r := newRelayer(t, Options{Smarthost: s.addr})
	f := newFixture(t, testMsg(), "example.net", "bob@example.net")
	out := f.handle(t, r)
	if !out.Done || out.Attempt.Status != 250 {
		t.Fatalf("Handle = %+v, want done after a plaintext retry", out)
	}
	if got := s.received(); len(got) != 1 || got[0].TLS {
		t.Errorf("received %+v, want one plaintext message", got)
	}
	r = newRelayer(t, Options{Smarthost: s.addr, TLS: TLSRequired})
	if out := f.handle(t, r); out.Done || out.Permanent {
		t.Fatalf("Handle(required) = %+v, want a retry", out)
	}
}

func TestSizeRefusedAtMail(t *testing.T) {
	s := startSink(t, sinkOpts{server: func(srv *smtp.Server) { srv.MaxMessageBytes = 100 }}, nil)
	r := newRelayer(t, Options{Smarthost: s.addr, TLS: TLSNone})
	f := newFixture(t, testMsg(), "example.net", "bob@example.net")
	out := f.handle(t, r)
	if !out.Permanent || out.Attempt.Status != 552 {
		t.Fatalf("Handle = %+v, want permanent 552 at MAIL (RFC 1870 SIZE)", out)
	}
}

func TestSMTPUTF8(t *testing.T) {
	s := startSink(t, sinkOpts{}, nil)
	r := newRelayer(t, Options{Smarthost: s.addr, TLS: TLSNone})
	f := newFixture(t, testMsg(), "example.net", "jöran@example.net")
	if out := f.handle(t, r); !out.Done {
		t.Fatalf("Handle = %+v, want done", out)
	}
	if got := s.received(); len(got) != 1 || got[0].To[0] != "jöran@example.net" {
		t.Errorf("received %+v", got)
	}

	old := startSink(t, sinkOpts{server: func(srv *smtp.Server) { srv.EnableSMTPUTF8 = false }}, nil)
	r = newRelayer(t, Options{Smarthost: old.addr, TLS: TLSNone})
	if out := f.handle(t, r); !out.Permanent || !strings.Contains(out.Attempt.Error, "SMTPUTF8") {
		t.Fatalf("Handle(no SMTPUTF8) = %+v, want permanent", out)
	}
}

// TestHostileGreeting: a server that never ends its greeting costs a
// bounded amount of memory and a retry.
func TestHostileGreeting(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		defer func() { _ = recover() }()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				line := []byte("220-" + strings.Repeat("x", 990) + "\r\n")
				for {
					if _, err := c.Write(line); err != nil {
						return
					}
				}
			}()
		}
	}()
	r := newRelayer(t, Options{Smarthost: ln.Addr().String()})
	f := newFixture(t, testMsg(), "example.net", "bob@example.net")
	if out := f.handle(t, r); out.Done || out.Permanent {
		t.Fatalf("Handle = %+v, want a retry", out)
	}
}

func TestLogLine(t *testing.T) {
	var buf bytes.Buffer
	s := startSink(t, sinkOpts{}, nil)
	r := newRelayer(t, Options{Smarthost: s.addr, TLS: TLSNone, Logger: slog.New(slog.NewJSONHandler(&buf, nil))})
	f := newFixture(t, testMsg(), "example.net", "bob@example.net")
	if out := f.handle(t, r); !out.Done {
		t.Fatalf("Handle = %+v", out)
	}
	var line map[string]any
	if err := json.Unmarshal(buf.Bytes(), &line); err != nil {
		t.Fatalf("log %q: %v", buf.String(), err)
	}
	for k, want := range map[string]any{"msg_id": "msg1", "route": "people", "rcpt": "bob@example.net", "attempt": 1.0, "status": 250.0} {
		if line[k] != want {
			t.Errorf("log %s = %v, want %v", k, line[k], want)
		}
	}
}
