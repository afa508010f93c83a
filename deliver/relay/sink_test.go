package relay

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"io"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"github.com/mailhook/mailhook/deliver"
	"github.com/mailhook/mailhook/inbound"
	"github.com/mailhook/mailhook/route"
)

// envelope is one message a sink accepted.
type envelope struct {
	From string
	To   []string
	Data []byte
	TLS  bool
	User string // authenticated user, if any
}

// sink is a real go-smtp server on loopback that records what it accepts.
// Its hooks decide replies; they may be nil (accept).
type sink struct {
	t    testing.TB
	addr string
	srv  *smtp.Server

	// mail decides the reply to MAIL FROM.
	mail func(from string) error
	// rcpt decides the reply to RCPT TO.
	rcpt func(to string) error
	// data decides the reply at the end of DATA; n counts DATA commands
	// from 1. It runs after the message is read.
	data func(n int) error
	// dropMidData makes the sink read a few bytes of the message and then
	// close the connection.
	dropMidData bool
	// mechs are the AUTH mechanisms offered (PLAIN and/or LOGIN); with
	// any, MAIL needs authentication.
	mechs      []string
	user, pass string
	// discard drops accepted messages instead of keeping them.
	discard bool
	// refuse, when set, is the reply to EHLO (no session).
	refuse error

	mu    sync.Mutex
	msgs  []envelope
	ndata int
	// conns counts sessions.
	conns int
}

type sinkOpts struct {
	tls      *tls.Config // STARTTLS offered when set
	implicit bool        // TLS from the start
	ip       string      // listen address, default 127.0.0.1
	port     string      // default 0
	// server, when set, adjusts the server before it starts.
	server func(*smtp.Server)
}

func startSink(t testing.TB, so sinkOpts, configure func(*sink)) *sink {
	t.Helper()
	s := &sink{t: t}
	if configure != nil {
		configure(s)
	}
	ip := so.ip
	if ip == "" {
		ip = "127.0.0.1"
	}
	port := so.port
	if port == "" {
		port = "0"
	}
	ln, err := net.Listen("tcp", net.JoinHostPort(ip, port))
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	if so.implicit {
		ln = tls.NewListener(ln, so.tls)
	}
	s.addr = ln.Addr().String()
	srv := smtp.NewServer(smtp.BackendFunc(func(c *smtp.Conn) (smtp.Session, error) {
		s.mu.Lock()
		s.conns++
		s.mu.Unlock()
		if s.refuse != nil {
			return nil, s.refuse
		}
		return &sinkSession{s: s, c: c}, nil
	}))
	srv.Domain = "sink.test"
	if !so.implicit {
		srv.TLSConfig = so.tls
	}
	srv.EnableSMTPUTF8 = true
	srv.ReadTimeout = 30 * time.Second
	srv.WriteTimeout = 30 * time.Second
	srv.ErrorLog = testLogger{t}
	if so.server != nil {
		so.server(srv)
	}
	s.srv = srv
	go func() {
		defer func() {
			if r := recover(); r != nil {
				t.Errorf("sink panic: %v", r)
			}
		}()
		_ = srv.Serve(ln)
	}()
	t.Cleanup(func() { _ = srv.Close() })
	return s
}

type testLogger struct{ t testing.TB }

func (l testLogger) Printf(format string, v ...any) { l.t.Logf("sink: "+format, v...) }
func (l testLogger) Println(v ...any)               { l.t.Log(append([]any{"sink:"}, v...)...) }

func (s *sink) received() []envelope {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]envelope(nil), s.msgs...)
}

func (s *sink) port() int {
	_, p, _ := net.SplitHostPort(s.addr)
	var n int
	for _, c := range p {
		n = n*10 + int(c-'0')
	}
	return n
}

type sinkSession struct {
	s    *sink
	c    *smtp.Conn
	env  envelope
	auth bool
}

func (ss *sinkSession) AuthMechanisms() []string { return ss.s.mechs }

func (ss *sinkSession) Auth(mech string) (sasl.Server, error) {
	check := func(user, pass string) error {
		if user != ss.s.user || pass != ss.s.pass {
			return errors.New("bad credentials")
		}
		ss.auth = true
		ss.env.User = user
		return nil
	}
	switch mech {
	case sasl.Plain:
		return sasl.NewPlainServer(func(_, user, pass string) error { return check(user, pass) }), nil
	case sasl.Login:
		return &loginServer{check: check}, nil
	}
	return nil, smtp.ErrAuthUnknownMechanism
}

func (ss *sinkSession) Mail(from string, _ *smtp.MailOptions) error {
	if len(ss.s.mechs) > 0 && !ss.auth {
		return smtp.ErrAuthRequired
	}
	if ss.s.mail != nil {
		if err := ss.s.mail(from); err != nil {
			return err
		}
	}
	_, ss.env.TLS = ss.c.TLSConnectionState()
	ss.env.From = from
	return nil
}

func (ss *sinkSession) Rcpt(to string, _ *smtp.RcptOptions) error {
	if ss.s.rcpt != nil {
		if err := ss.s.rcpt(to); err != nil {
			return err
		}
	}
	ss.env.To = append(ss.env.To, to)
	return nil
}

func (ss *sinkSession) Data(r io.Reader) error {
	if ss.s.dropMidData {
		_, _ = io.ReadFull(r, make([]byte, 64))
		return ss.c.Conn().Close()
	}
	if ss.s.discard {
		_, err := io.Copy(io.Discard, r)
		return err
	}
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	ss.s.mu.Lock()
	ss.s.ndata++
	n := ss.s.ndata
	ss.s.mu.Unlock()
	if ss.s.data != nil {
		if err := ss.s.data(n); err != nil {
			return err
		}
	}
	env := ss.env
	env.Data = b
	env.To = append([]string(nil), ss.env.To...)
	ss.s.mu.Lock()
	ss.s.msgs = append(ss.s.msgs, env)
	ss.s.mu.Unlock()
	return nil
}

func (ss *sinkSession) Reset()        { ss.env = envelope{User: ss.env.User} }
func (ss *sinkSession) Logout() error { return nil }

// loginServer is the server side of the LOGIN mechanism
// (draft-murchison-sasl-login), which go-sasl no longer ships.
type loginServer struct {
	state int
	user  string
	check func(user, pass string) error
}

func (l *loginServer) Next(resp []byte) ([]byte, bool, error) {
	switch l.state {
	case 0:
		l.state++
		if len(resp) > 0 { // initial response holds the user name
			l.user = string(resp)
			l.state++
			return []byte("Password:"), false, nil
		}
		return []byte("Username:"), false, nil
	case 1:
		l.user = string(resp)
		l.state++
		return []byte("Password:"), false, nil
	case 2:
		l.state++
		return nil, true, l.check(l.user, string(resp))
	}
	return nil, true, errors.New("unexpected response")
}

// selfSigned makes a certificate for 127.0.0.1 and localhost and a pool
// trusting it.
func selfSigned(t *testing.T) (*tls.Config, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "sink.test"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		DNSNames:              []string{"localhost", "mx1.dest.test", "mx.tls.test"},
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}}, pool
}

// testMsg is a small message; extra header lines go on top.
func testMsg(extra ...string) string {
	var b strings.Builder
	for _, h := range extra {
		b.WriteString(h + "\r\n")
	}
	b.WriteString("Received: from client.example.org by mx.mailhook.test; Sun, 29 Nov 2026 04:00:00 +0000\r\n" +
		"From: Alice <alice@example.org>\r\n" +
		"To: team@mailhook.test\r\n" +
		"Subject: hello\r\n" +
		"Date: Sun, 29 Nov 2026 04:00:00 +0000\r\n" +
		"Message-ID: <1@example.org>\r\n" +
		"\r\n" +
		"Hello there.\r\n.leading dot\r\n")
	return b.String()
}

// fixture is one message stored on disk, as the queue would hand it.
type fixture struct {
	job  *deliver.Job
	mail *inbound.Mail
	raw  deliver.RawOpener
	// opens counts raw opens.
	opens int
}

func newFixture(t testing.TB, msg, target string, rcpts ...string) *fixture {
	t.Helper()
	p := filepath.Join(t.TempDir(), "raw.eml")
	if err := os.WriteFile(p, []byte(msg), 0o600); err != nil {
		t.Fatal(err)
	}
	f := &fixture{
		job: &deliver.Job{ID: "job1", MsgID: "msg1", Kind: deliver.KindRelay, Target: target,
			Route: "people", Action: route.Action{Kind: route.ActForward, Forward: rcpts}, Rcpts: rcpts, Attempts: 1},
		mail: &inbound.Mail{ID: "msg1", Envelope: inbound.Envelope{MailFrom: "alice@example.org", RcptTo: []string{"team@mailhook.test"}},
			Auth: &inbound.Auth{SPF: inbound.SPFResult{Result: "pass", Domain: "example.org"}}, RawPath: p, RawSize: int64(len(msg))},
	}
	f.raw = func() (io.ReadCloser, error) {
		f.opens++
		return os.Open(p)
	}
	return f
}

func (f *fixture) handle(t *testing.T, r *Relayer) deliver.Outcome {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	out := r.Handle(ctx, f.job, f.mail, f.raw)
	t.Logf("outcome: done=%v permanent=%v rcpts=%v status=%d response=%q error=%q",
		out.Done, out.Permanent, out.Rcpts, out.Attempt.Status, out.Attempt.Response, out.Attempt.Error)
	return out
}

func newRelayer(t *testing.T, o Options) *Relayer {
	t.Helper()
	if o.Hostname == "" {
		o.Hostname = "mx.mailhook.test"
	}
	if o.Timeout == 0 {
		o.Timeout = 10 * time.Second
	}
	r, err := New(o)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return r
}

// bodyOf returns the part of a delivered message after its first n bytes
// of added header fields, for comparison with the original.
func hasSuffix(data []byte, msg string) bool {
	return bytes.HasSuffix(data, []byte(msg))
}
