package mailbox

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"
	"github.com/emersion/go-imap/v2/imapserver/imapmemserver"

	"github.com/mailhook/mailhook/internal/testenv"
)

// imaptestMinPass is how many imaptest groups pass: every group but those
// for the extensions we do not offer (README "Mailboxes"), which imaptest
// skips. Dovecot 2.3.19 passes 67 and skips 4 of the 71.
const imaptestMinPass = 36

// TestIMAPTestCompliance runs Dovecot's imaptest compliance groups (../shared/tools/imaptest)
// against the server, each group on its own, and fails on any group that
// does not pass or skip, and if fewer than imaptestMinPass pass. Groups for
// extensions we do not offer are skipped by imaptest itself.
func TestIMAPTestCompliance(t *testing.T) {
	script := testenv.Shared(t, "tools/imaptest/compliance")
	if _, err := os.Stat("/usr/lib/dovecot/libdovecot.so.0"); err != nil {
		testenv.Missing(t, "imaptest needs libdovecot (apt-get install dovecot-core): %v", err)
	}
	if testing.Short() {
		t.Skip("imaptest takes about a minute")
	}
	e := newIMAPEnv(t, func(o *IMAPOptions) { o.Logger = nil })
	host, port, _ := net.SplitHostPort(e.addr)
	out := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	res, err := exec.CommandContext(ctx, script, host, port, "alice", "secret", out).CombinedOutput()
	t.Logf("imaptest:\n%s", res)
	if err != nil && ctx.Err() != nil {
		t.Fatalf("compliance: %v", err)
	}
	f, err := os.Open(filepath.Join(out, "summary.txt"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	counts := map[string]int{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 2 {
			continue
		}
		group, status := fields[0], fields[1]
		counts[status]++
		if status != "PASS" && status != "SKIP" {
			log, _ := os.ReadFile(filepath.Join(out, group+".log"))
			t.Errorf("imaptest group %s: %s\n%s", group, status, log)
		}
	}
	t.Logf("groups: %v", counts)
	if counts["PASS"] < imaptestMinPass {
		t.Errorf("%d groups pass, want at least %d", counts["PASS"], imaptestMinPass)
	}
}

// TestIMAPServerLayout: updateWriter and fetchItem write through
// imapserver's unexported fields (imapwriter.go); if they change, STORE
// falls back to announcing a new keyword after the command and FETCH
// ENVELOPE to imapserver's, without source routes. This test says so.
func TestIMAPServerLayout(t *testing.T) {
	if !imapserverLayoutOK() {
		t.Fatalf("imapserver changed: UpdateWriter %v, Conn.bw %v, FetchResponseWriter.hasItem %v",
			updateWriterOK && updateWriterConn.Offset == 0, connBWOK, hasItemOK)
	}
}

// TestIMAPFront checks, on the wire, what the front and the session do
// where imapserver alone gets it wrong (each found by imaptest).
func TestIMAPFront(t *testing.T) {
	e := newIMAPEnv(t, nil)
	e.deliver(t, "alice", "INBOX", mkMsg("one", "1"))
	e.deliver(t, "alice", "INBOX", mkMsg("two", "2"))

	r := e.raw(t)
	// ID (RFC 2971) is advertised, before and after login, and answered;
	// unknown commands before login keep the connection (imapserver says
	// BYE to the first unknown command).
	r.send("0 CAPABILITY\r\n")
	r.expectIn("0 OK", " ID\r\n")
	r.send("a ID NIL\r\n")
	r.expect(`* ID ("name" "mailhook")`)
	r.expect("a OK")
	r.send("b XFOO\r\n")
	r.expect("b BAD")
	r.send("c LOGIN alice secret\r\n")
	r.expectIn("c OK [CAPABILITY IMAP4rev2 ", " ID] ")
	r.send("c2 CAPABILITY\r\n")
	r.expectIn("c2 OK", " ID\r\n")
	// A literal too big for the command: NO at once instead of waiting.
	r.send("d SELECT {999999999}\r\n")
	r.expect("d NO [TOOBIG]")
	r.send("e SEARCH " + strings.Repeat("(", 200) + "ALL" + strings.Repeat(")", 200) + "\r\n")
	r.expect("e BAD")
	r.send("f FETCH " + strings.Repeat("1,", 40000) + "1 FLAGS\r\n")
	r.expect("f BAD")
	// Not modified UTF-7: no such mailbox, not a server error.
	r.send("g SELECT &'+,-\r\n")
	r.expect("g NO")
	r.send("h LIST \"\" &'+,-%\r\n")
	r.expect("h OK")
	// \Recent for an IMAP4rev1 client: this session claims both.
	r.send("i SELECT INBOX\r\n")
	r.expectIn("i OK", "* 2 RECENT")
	r.send("j SEARCH RECENT\r\n")
	r.expect("* SEARCH 1 2")
	r.expect("j OK")
	// A new keyword is in FLAGS before the FETCH that shows it.
	r.send("k STORE 1 +FLAGS ($new)\r\n")
	lines := r.expect("k OK")
	if len(lines) < 2 || !strings.HasPrefix(lines[0], "* FLAGS (") || !strings.Contains(lines[0], "$new") || !strings.Contains(lines[1], "FETCH") {
		t.Errorf("STORE: got %q, want FLAGS with $new before the FETCH", lines)
	}
	// MOVE into the selected mailbox: new UID, EXPUNGE, EXISTS.
	r.send("l MOVE 1 INBOX\r\n")
	r.expectIn("l OK", "COPYUID", "* 1 EXPUNGE", "* 2 EXISTS")

	// A second session sees nothing recent any more.
	r2 := e.raw(t)
	r2.send("a LOGIN alice secret\r\nb SELECT INBOX\r\n")
	r2.expectIn("b OK", "* 0 RECENT")
	// Subscriptions outlive DELETE (RFC 3501 §6.3.4); a trailing
	// separator in CREATE is ignored (§6.3.3).
	r2.send("c CREATE a/\r\nd CREATE a/b\r\ne SUBSCRIBE a/b\r\nf DELETE a/b\r\n")
	r2.expect("f OK")
	r2.send("g LIST (SUBSCRIBED) \"\" a/*\r\n")
	r2.expectIn("g OK", `\NonExistent \Subscribed) "/" "a/b"`)
	r2.send("h LSUB \"\" %\r\n")
	r2.expectIn("h OK", `\Noselect) "/" "a"`)
	// Before login: a huge literal ends the connection at once.
	r3 := e.raw(t)
	r3.send("a LOGIN {999999999}\r\n")
	r3.expect("* BYE")
}

// TestIMAPFrontAfterSTARTTLS: the front does STARTTLS itself, so what it
// guards holds over TLS too, and the session goes on as one.
func TestIMAPFrontAfterSTARTTLS(t *testing.T) {
	var sessions atomic.Int32
	e := newIMAPEnv(t, func(o *IMAPOptions) { o.OnSession = func() { sessions.Add(1) } })
	e.srv.loopbackTrusted.Store(false) // a remote client: passwords only over TLS
	r := e.raw(t)
	r.send("a CAPABILITY\r\n")
	r.expectIn("a OK", " STARTTLS", " LOGINDISABLED", " ID\r\n")
	r.send("b STARTTLS\r\n")
	r.expect("b OK")
	r = r.startTLS()
	r.send("c CAPABILITY\r\n")
	caps := strings.Join(r.expect("c OK"), "")
	if !strings.Contains(caps, " AUTH=PLAIN") || !strings.Contains(caps, " ID\r\n") ||
		strings.Contains(caps, "STARTTLS") || strings.Contains(caps, "LOGINDISABLED") {
		t.Errorf("CAPABILITY after STARTTLS = %q, want AUTH=PLAIN and ID, no STARTTLS or LOGINDISABLED", caps)
	}
	r.send("d XFOO\r\n")
	r.expect("d BAD")
	r.send("e ID NIL\r\n")
	r.expect(`* ID ("name" "mailhook")`)
	r.expect("e OK")
	r.send("f NOOP " + strings.Repeat("x", frontMaxLine) + "\r\n")
	r.expect("f BAD")
	r.send("g LOGIN alice secret\r\n")
	r.expectIn("g OK", " ID] ")
	r.send("h SEARCH " + strings.Repeat("(", 200) + "ALL" + strings.Repeat(")", 200) + "\r\n")
	r.expect("h BAD")
	r.send("i SELECT {999999999}\r\n")
	r.expect("i NO [TOOBIG]")
	r.send("j STARTTLS\r\n")
	r.expect("j NO")
	r.send("k SELECT INBOX\r\n")
	r.expect("k OK")
	if n := sessions.Load(); n != 1 {
		t.Errorf("OnSession called %d times for one client, want 1", n)
	}
	// Before login, a huge literal ends the session at once.
	r2 := e.raw(t)
	r2.send("a STARTTLS\r\n")
	r2.expect("a OK")
	r2 = r2.startTLS()
	r2.send("b LOGIN {999999999}\r\n")
	r2.expect("* BYE")
}

// startTLS does the client's side of TLS after STARTTLS's OK.
func (r *rawConn) startTLS() *rawConn {
	r.t.Helper()
	if n := r.br.Buffered(); n > 0 {
		r.t.Fatalf("%d bytes in clear text after STARTTLS's OK", n)
	}
	tc := tls.Client(r.c, &tls.Config{InsecureSkipVerify: true})
	if err := tc.Handshake(); err != nil {
		r.t.Fatalf("TLS handshake: %v", err)
	}
	return &rawConn{t: r.t, c: tc, br: bufio.NewReader(tc)}
}

// expectIn reads up to the line that starts with prefix and checks that
// the lines read contain each of wants.
func (r *rawConn) expectIn(prefix string, wants ...string) {
	r.t.Helper()
	got := strings.Join(r.expect(prefix), "")
	for _, w := range wants {
		if !strings.Contains(got, w) {
			r.t.Errorf("no %q in %q", w, got)
		}
	}
}

// TestEnvelopeAddresses covers groups, comments and source routes (RFC
// 5322 §3.4, §4.4), which imapserver.ExtractEnvelope flattens or drops.
func TestEnvelopeAddresses(t *testing.T) {
	for _, tc := range []struct {
		in     string
		want   []imap.Address
		routes []string
	}{
		{"group: g1@d1.org, g2@d2.org;, group2: g3@d3.org;", []imap.Address{
			{Mailbox: "group"}, {Mailbox: "g1", Host: "d1.org"}, {Mailbox: "g2", Host: "d2.org"}, {},
			{Mailbox: "group2"}, {Mailbox: "g3", Host: "d3.org"}, {}}, nil},
		{"group:;, group2: (foo) ;", []imap.Address{{Mailbox: "group"}, {}, {Mailbox: "group2"}, {}}, nil},
		{"<user-from (comment)@ (comment) domain.org>", []imap.Address{{Mailbox: "user-from", Host: "domain.org"}}, nil},
		{"user@domain (Real Name)", []imap.Address{{Name: "Real Name", Mailbox: "user", Host: "domain"}}, nil},
		{`"Doe, John" <john.doe@example.org>, =?utf-8?q?J=C3=BCrgen?= <j@x.de>`, []imap.Address{
			{Name: "Doe, John", Mailbox: "john.doe", Host: "example.org"}, {Name: "Jürgen", Mailbox: "j", Host: "x.de"}}, nil},
		{"<@route:user@domain>", []imap.Address{{Mailbox: "user", Host: "domain"}}, []string{"@route"}},
		{"Joe <@a.example, @b.example :joe@c.example>, x@y", []imap.Address{
			{Name: "Joe", Mailbox: "joe", Host: "c.example"}, {Mailbox: "x", Host: "y"}}, []string{"@a.example,@b.example", ""}},
		{"", nil, nil},
	} {
		got := parseAddresses(tc.in)
		var addrs []imap.Address
		var routes []string
		for _, a := range got {
			addrs, routes = append(addrs, a.Address), append(routes, a.Route)
		}
		if tc.routes == nil && len(routes) > 0 {
			tc.routes = make([]string, len(routes))
		}
		if !reflect.DeepEqual(addrs, tc.want) || !reflect.DeepEqual(routes, tc.routes) {
			t.Errorf("parseAddresses(%q) = %q, want %q with routes %q", tc.in, got, tc.want, tc.routes)
		}
	}
}

// TestFetchEnvelope checks the ENVELOPE we write ourselves (imapwriter.go)
// on the wire: source routes, and strings that must be escaped or sent as
// literals (RFC 3501 §4.3).
func TestFetchEnvelope(t *testing.T) {
	e := newIMAPEnv(t, nil)
	e.deliver(t, "alice", "INBOX", "From: Joe <@route:joe@example.org>\r\n"+
		"Sender: \"Q \\\"uote\\\\\" <q@example.org>\r\nTo: jürgen@example.de\r\n"+
		"Cc: group: g1@d1.org;\r\nSubject: hi\r\nDate: Tue, 03 Feb 2026 10:00:00 +0000\r\n"+
		"In-Reply-To: <a@x> <b@x>\r\nMessage-ID: <id@x>\r\n\r\nbody\r\n")
	r := e.raw(t)
	r.send("a LOGIN alice secret\r\nb SELECT INBOX\r\n")
	r.expect("b OK")
	r.send("c FETCH 1 (UID ENVELOPE FLAGS)\r\n")
	got := strings.Join(r.expect("c OK"), "")
	want := `* 1 FETCH (UID 1 FLAGS (\Recent) ENVELOPE ("Tue, 03 Feb 2026 10:00:00 +0000" "hi" (("Joe" "@route" "joe" "example.org")) ` +
		`(("Q \"uote\\" NIL "q" "example.org")) (("Joe" "@route" "joe" "example.org")) ((NIL NIL {7}` + "\r\n" +
		`jürgen "example.de")) ((NIL NIL "group" NIL) (NIL NIL "g1" "d1.org") (NIL NIL NIL NIL)) NIL "<a@x> <b@x>" "<id@x>"))` + "\r\n"
	if !strings.HasPrefix(got, want) {
		t.Errorf("FETCH ENVELOPE:\n got %q\nwant %q", got, want)
	}
	// With IMAP4rev2 enabled, UTF-8 goes in a quoted string (RFC 9051 §4.3).
	r.send("d ENABLE IMAP4rev2\r\n")
	r.expect("d OK")
	r.send("e FETCH 1 ENVELOPE\r\n")
	r.expectIn("e OK", `((NIL NIL "jürgen" "example.de"))`)
}

// TestIMAPServerUpstreamRoute shows that imapserver writes an address's
// source route (RFC 3501 §7.4.2 addr-adl) as NIL: imap.Address has no
// field for it. writeEnvelopeItem writes ENVELOPE itself for that; when
// this test fails, imapserver has learnt routes and ours may go.
func TestIMAPServerUpstreamRoute(t *testing.T) {
	if n := reflect.TypeOf(imap.Address{}).NumField(); n != 3 {
		t.Errorf("imap.Address has %d fields, not Name, Mailbox, Host: a source route?", n)
	}
	mem := imapmemserver.New()
	u := imapmemserver.NewUser("alice", "secret")
	if err := u.Create("INBOX", nil); err != nil {
		t.Fatal(err)
	}
	mem.AddUser(u)
	srv := imapserver.New(&imapserver.Options{
		NewSession: func(*imapserver.Conn) (imapserver.Session, *imapserver.GreetingData, error) {
			return mem.NewSession(), nil, nil
		},
		InsecureAuth: true,
		Logger:       slogPrintf{testLogger(t)},
	})
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	msg := "From: <@route:user@domain>\r\nSubject: route\r\n\r\nbody\r\n"
	r := dialRaw(t, l.Addr().String())
	r.send("a LOGIN alice secret\r\n")
	r.expect("a OK")
	r.send(fmt.Sprintf("b APPEND INBOX {%d+}\r\n%s\r\n", len(msg), msg))
	r.expect("b OK")
	r.send("c SELECT INBOX\r\nd FETCH 1 ENVELOPE\r\n")
	got := strings.Join(r.expect("d OK"), "")
	if !strings.Contains(got, `ENVELOPE (`) || strings.Contains(got, `"@route"`) {
		t.Errorf("imapserver's ENVELOPE = %q, want no \"@route\" (or remove writeEnvelopeItem)", got)
	}
}

// TestIMAPServerUpstream shows what imapserver does without the front,
// on a connection served by it directly: each case is a workaround in
// frontConn. When one of them fails, imapserver has changed and the
// workaround may go.
func TestIMAPServerUpstream(t *testing.T) {
	e := newIMAPEnv(t, nil)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go e.srv.insecure.Serve(l) // closed with the server
	dial := func() *rawConn { return dialRaw(t, l.Addr().String()) }
	// An unknown command before login (ID among them) ends the session.
	r := dial()
	r.send("a ID NIL\r\n")
	r.expect("a BAD")
	r.expect("* BYE")
	// A mailbox name that is not modified UTF-7: a syntax error for
	// SELECT (dovecot: NO), a server error for LIST (dovecot: OK).
	r = dial()
	r.send("a LOGIN alice secret\r\n")
	r.expect("a OK")
	r.send("b SELECT &'+,-\r\n")
	r.expect("b BAD")
	r.send("c LIST \"\" &'+,-%\r\n")
	r.expect("c NO [SERVERBUG]")
}
