package relay

import (
	"bufio"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mailhook/mailhook/internal/testenv"
)

// strictServer is a minimal SMTP server on a raw socket that holds
// clients to RFC 5321 to the letter: one hello per session (a second
// EHLO or HELO gets 503, as Python's smtpd and several appliances do),
// optionally no EHLO at all (ehloReply, e.g. 502 or 550), and no
// STARTTLS. It records every command line.
type strictServer struct {
	addr      string
	ehloReply string // reply to EHLO; empty means a 250 reply with extensions

	mu    sync.Mutex
	lines []string
	msgs  []string
}

func startStrict(t *testing.T, ehloReply string) *strictServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &strictServer{addr: ln.Addr().String(), ehloReply: ehloReply}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go s.serve(c)
		}
	}()
	return s
}

func (s *strictServer) serve(c net.Conn) {
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(30 * time.Second))
	br := bufio.NewReader(c)
	reply := func(r string) { fmt.Fprintf(c, "%s\r\n", r) }
	reply("220 strict.test ESMTP")
	greeted, mail, rcpt := false, false, false
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			return
		}
		line = strings.TrimRight(line, "\r\n")
		s.mu.Lock()
		s.lines = append(s.lines, line)
		s.mu.Unlock()
		verb := strings.ToUpper(strings.SplitN(line, " ", 2)[0])
		switch {
		case (verb == "EHLO" || verb == "HELO") && greeted:
			reply("503 5.5.1 Duplicate HELO/EHLO")
		case verb == "EHLO" && s.ehloReply != "":
			reply(s.ehloReply)
		case verb == "EHLO":
			greeted = true
			reply("250-strict.test\r\n250-PIPELINING\r\n250-SIZE 10240000\r\n250 8BITMIME")
		case verb == "HELO":
			greeted = true
			reply("250 strict.test")
		case !greeted && verb != "QUIT":
			reply("503 5.5.1 Say hello first")
		case verb == "MAIL":
			mail = true
			reply("250 2.1.0 OK")
		case verb == "RCPT" && mail:
			rcpt = true
			reply("250 2.1.5 OK")
		case verb == "DATA" && rcpt:
			reply("354 End data with <CR><LF>.<CR><LF>")
			var b strings.Builder
			for {
				l, err := br.ReadString('\n')
				if err != nil {
					return
				}
				if l == ".\r\n" {
					break
				}
				b.WriteString(l)
			}
			s.mu.Lock()
			s.msgs = append(s.msgs, b.String())
			s.mu.Unlock()
			mail, rcpt = false, false
			reply("250 2.0.0 queued")
		case verb == "QUIT":
			reply("221 2.0.0 Bye")
			return
		default:
			reply("503 5.5.1 Bad sequence of commands")
		}
	}
}

func (s *strictServer) transcript() ([]string, []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.lines...), append([]string(nil), s.msgs...)
}

// TestStrictServerOneHello: a smarthost without STARTTLS gets exactly one
// EHLO; one that refuses EHLO with any 5xx gets exactly one HELO after it
// (RFC 5321 §4.1.1.1). A second hello would get 503 and nothing would be
// forwarded.
func TestStrictServerOneHello(t *testing.T) {
	for _, tc := range []struct {
		name, ehlo string
		want       []string // the hello commands sent
	}{
		{"ehlo", "", []string{"EHLO mx.mailhook.test"}},
		{"ehlo-502", "502 5.5.1 Command not implemented", []string{"EHLO mx.mailhook.test", "HELO mx.mailhook.test"}},
		{"ehlo-550", "550 5.5.1 No EHLO here", []string{"EHLO mx.mailhook.test", "HELO mx.mailhook.test"}},
		{"ehlo-500", "500 5.5.2 Syntax error, command unrecognized", []string{"EHLO mx.mailhook.test", "HELO mx.mailhook.test"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, mode := range []string{TLSOpportunistic, TLSNone} {
				s := startStrict(t, tc.ehlo)
				r := newRelayer(t, Options{Smarthost: s.addr, TLS: mode})
				f := newFixture(t, testMsg(), "example.net", "bob@example.net")
				out := f.handle(t, r)
				lines, msgs := s.transcript()
				t.Logf("%s: %q", mode, lines)
				if !out.Done || out.Attempt.Status != 250 {
					t.Fatalf("%s: Handle = %+v, want delivered", mode, out)
				}
				var hellos []string
				for _, l := range lines {
					if v := strings.ToUpper(l[:min(4, len(l))]); v == "EHLO" || v == "HELO" {
						hellos = append(hellos, l)
					}
				}
				if strings.Join(hellos, "|") != strings.Join(tc.want, "|") {
					t.Errorf("%s: hellos %q, want %q", mode, hellos, tc.want)
				}
				if len(msgs) != 1 || !strings.HasSuffix(msgs[0], "Hello there.\r\n..leading dot\r\n") {
					t.Errorf("%s: received %q", mode, msgs)
				}
			}
		})
	}
}

// TestStrictServerRequiredTLS: without STARTTLS a required-TLS relay
// gives up after the one EHLO, before MAIL.
func TestStrictServerRequiredTLS(t *testing.T) {
	s := startStrict(t, "")
	r := newRelayer(t, Options{Smarthost: s.addr, TLS: TLSRequired})
	f := newFixture(t, testMsg(), "example.net", "bob@example.net")
	if out := f.handle(t, r); out.Done || out.Permanent {
		t.Fatalf("Handle = %+v, want a retry", out)
	}
	lines, _ := s.transcript()
	// QUIT may or may not arrive before the connection closes.
	if len(lines) == 0 || lines[0] != "EHLO mx.mailhook.test" || len(lines) > 2 || (len(lines) == 2 && lines[1] != "QUIT") {
		t.Errorf("transcript %q, want EHLO (and QUIT)", lines)
	}
}

// postfix is a real Postfix started for one test: its own configuration,
// queue and log under t.TempDir(), two smtpd listeners on loopback (one
// offering STARTTLS, one not), relaying everything to relayhost.
type postfix struct {
	dir       string
	plain     string // smtpd without TLS
	tls       string // smtpd offering STARTTLS
	maillog   string
	postfixCF string
}

func startPostfix(t *testing.T, relayhost string) *postfix {
	t.Helper()
	bin := testenv.Tool(t, "apt-get install postfix (scripts/test-deps.sh)", "postfix", "/usr/sbin/postfix")
	if os.Geteuid() != 0 {
		testenv.Missing(t, "postfix's master must start as root")
	}
	pu, err := user.Lookup("postfix")
	if err != nil {
		testenv.Missing(t, "no postfix user: %v", err)
	}
	uid, _ := strconv.Atoi(pu.Uid)
	dir := t.TempDir()
	// The daemons run as postfix and must reach the queue.
	for _, d := range []string{filepath.Dir(dir), dir} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	p := &postfix{dir: dir, maillog: filepath.Join(dir, "maillog")}
	conf, queue, data := filepath.Join(dir, "conf"), filepath.Join(dir, "queue"), filepath.Join(dir, "data")
	for _, d := range []string{conf, queue, data} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chown(data, uid, -1); err != nil {
		t.Fatal(err)
	}
	// A certificate for the STARTTLS listener.
	srvTLS, _ := selfSigned(t)
	cert := srvTLS.Certificates[0]
	keyDER, err := x509.MarshalPKCS8PrivateKey(cert.PrivateKey)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile := filepath.Join(conf, "cert.pem"), filepath.Join(conf, "key.pem")
	writePEM(t, certFile, "CERTIFICATE", cert.Certificate[0])
	writePEM(t, keyFile, "PRIVATE KEY", keyDER)

	p.plain = testenv.FreeAddr(t)
	p.tls = testenv.FreeAddr(t)
	mainCF := strings.Join([]string{
		"compatibility_level = 3.6",
		"myhostname = smarthost.test",
		"mydestination =",
		"inet_interfaces = 127.0.0.1",
		"inet_protocols = ipv4",
		"mynetworks = 127.0.0.0/8",
		"smtpd_relay_restrictions = permit_mynetworks, reject",
		"queue_directory = " + queue,
		"data_directory = " + data,
		"maillog_file = " + p.maillog,
		"maillog_file_prefixes = " + dir,
		"relayhost = [" + strings.Replace(relayhost, ":", "]:", 1),
		"smtp_tls_security_level = none",
		"smtputf8_enable = no",
		"smtpd_tls_cert_file = " + certFile,
		"smtpd_tls_key_file = " + keyFile,
		"smtpd_tls_security_level = none",
		"alias_maps =",
		"alias_database =",
		"",
	}, "\n")
	// The Debian default master.cf with the public smtpd replaced by
	// ours: no chroot (the queue lives in a temporary directory).
	masterCF := strings.Join([]string{
		p.plain + " inet n - n - - smtpd",
		p.tls + " inet n - n - - smtpd -o smtpd_tls_security_level=may -o syslog_name=postfix/tls",
		"pickup unix n - n 60 1 pickup",
		"cleanup unix n - n - 0 cleanup",
		"qmgr unix n - n 300 1 qmgr",
		"tlsmgr unix - - n 1000? 1 tlsmgr",
		"rewrite unix - - n - - trivial-rewrite",
		"bounce unix - - n - 0 bounce",
		"defer unix - - n - 0 bounce",
		"trace unix - - n - 0 bounce",
		"verify unix - - n - 1 verify",
		"flush unix n - n 1000? 0 flush",
		"proxymap unix - - n - - proxymap",
		"smtp unix - - n - - smtp",
		"relay unix - - n - - smtp",
		"showq unix n - n - - showq",
		"error unix - - n - - error",
		"retry unix - - n - - error",
		"discard unix - - n - - discard",
		"anvil unix - - n - 1 anvil",
		"scache unix - - n - 1 scache",
		"postlog unix-dgram n - n - 1 postlogd",
		"",
	}, "\n")
	for name, body := range map[string]string{"main.cf": mainCF, "master.cf": masterCF} {
		if err := os.WriteFile(filepath.Join(conf, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	run := func(verb string) error {
		out, err := exec.Command(bin, "-c", conf, verb).CombinedOutput()
		if err != nil {
			log, _ := os.ReadFile(p.maillog)
			return fmt.Errorf("postfix %s: %v: %s\n%s", verb, err, out, log)
		}
		return nil
	}
	if err := run("start"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := run("stop"); err != nil {
			t.Error(err)
		}
		if t.Failed() {
			log, _ := os.ReadFile(p.maillog)
			t.Logf("postfix log:\n%s", log)
		}
	})
	// master binds the listeners after it forks into the background.
	for _, a := range []string{p.plain, p.tls} {
		deadline := time.Now().Add(30 * time.Second)
		for {
			c, err := net.Dial("tcp", a)
			if err == nil {
				c.Close()
				break
			}
			if time.Now().After(deadline) {
				log, _ := os.ReadFile(p.maillog)
				t.Fatalf("postfix does not listen on %s: %v\n%s", a, err, log)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	return p
}

func writePEM(t *testing.T, path, typ string, der []byte) {
	t.Helper()
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestPostfixSmarthost forwards through a real Postfix as the smarthost,
// with and without STARTTLS, in every TLS mode that can work with it, and
// checks that Postfix accepted the message (250) and relayed it on to a
// sink, as sent and over TLS when offered.
func TestPostfixSmarthost(t *testing.T) {
	final := startSink(t, sinkOpts{}, nil)
	pf := startPostfix(t, final.addr)
	cases := []struct {
		name, addr, mode string
		wantTLS          bool
	}{
		{"plain-opportunistic", pf.plain, TLSOpportunistic, false},
		{"plain-none", pf.plain, TLSNone, false},
		{"starttls-opportunistic", pf.tls, TLSOpportunistic, true},
		{"starttls-none", pf.tls, TLSNone, false},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := newRelayer(t, Options{Smarthost: tc.addr, TLS: tc.mode})
			subject := fmt.Sprintf("Subject: case %d", i)
			f := newFixture(t, testMsg(subject), "example.net", "bob@example.net")
			out := f.handle(t, r)
			if !out.Done || out.Attempt.Status != 250 || !strings.Contains(out.Attempt.Response, "queued as") {
				t.Fatalf("Handle = %+v, want Postfix's 250 queued as", out)
			}
			// Postfix relays from its queue in the background.
			deadline := time.Now().Add(60 * time.Second)
			for {
				var got *envelope
				for _, m := range final.received() {
					if strings.Contains(string(m.Data), subject+"\r\n") {
						got = &m
					}
				}
				if got != nil {
					esmtps := strings.Contains(string(got.Data), "with ESMTPS id")
					if esmtps != tc.wantTLS || !hasSuffix(got.Data, "Hello there.\r\n.leading dot\r\n") {
						t.Errorf("relayed message (ESMTPS=%v, want %v):\n%s", esmtps, tc.wantTLS, got.Data)
					}
					if len(got.To) != 1 || got.To[0] != "bob@example.net" {
						t.Errorf("relayed to %q", got.To)
					}
					return
				}
				if time.Now().After(deadline) {
					log, _ := os.ReadFile(pf.maillog)
					t.Fatalf("Postfix never relayed the message; log:\n%s", log)
				}
				time.Sleep(100 * time.Millisecond)
			}
		})
	}
}
