package mailbox

import (
	"bufio"
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"

	"github.com/mailhook/mailhook/internal/testenv"
)

// imaptestUpstream are the imaptest groups that fail because of
// imapserver itself, with no workaround in our session layer: each must
// still fail for the reason given (remove the entry when a new imapserver
// fixes it).
var imaptestUpstream = map[string]string{
	// imapserver writes the ENVELOPE address's at-domain-list (source
	// route, RFC 3501 §7.4.2 addr-adl) as NIL always: imap.Address has
	// no field for it. Dovecot returns "@route" for <@route:user@domain>.
	"fetch-envelope": `((NIL NIL "user" "domain"))`,
}

// TestIMAPTestCompliance runs Dovecot's imaptest compliance groups (../shared/tools/imaptest)
// against the server, each group on its own, and fails on any FAIL other
// than the known upstream ones. Groups for extensions we do not offer are
// skipped by imaptest itself (README "Mailboxes").
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
		want, upstream := imaptestUpstream[group]
		switch {
		case status == "FAIL" && upstream:
			log, _ := os.ReadFile(filepath.Join(out, group+".log"))
			if !strings.Contains(string(log), want) {
				t.Errorf("%s fails, but not (only) for the known imapserver reason %q:\n%s", group, want, log)
			}
		case upstream:
			t.Errorf("%s: %s; it failed because of imapserver before: remove it from imaptestUpstream", group, status)
		case status != "PASS" && status != "SKIP":
			log, _ := os.ReadFile(filepath.Join(out, group+".log"))
			t.Errorf("imaptest group %s: %s\n%s", group, status, log)
		}
	}
	t.Logf("groups: %v", counts)
	if counts["PASS"] < 35 {
		t.Errorf("%d groups pass, want at least 35", counts["PASS"])
	}
}

// TestUpdateWriterLayout: updateWriter writes into imapserver's
// UpdateWriter; if its layout changes, STORE falls back to announcing a
// new keyword after the command. This test says so.
func TestUpdateWriterLayout(t *testing.T) {
	if !updateWriterOK {
		t.Fatalf("imapserver.UpdateWriter changed: %v", reflect.TypeOf(imapserver.UpdateWriter{}))
	}
}

// TestIMAPFront checks, on the wire, what the front and the session do
// where imapserver alone gets it wrong (each found by imaptest).
func TestIMAPFront(t *testing.T) {
	e := newIMAPEnv(t, nil)
	e.deliver(t, "alice", "INBOX", mkMsg("one", "1"))
	e.deliver(t, "alice", "INBOX", mkMsg("two", "2"))

	r := e.raw(t)
	// ID (RFC 2971) and unknown commands before login keep the
	// connection; imapserver says BYE to the first unknown command.
	r.send("a ID NIL\r\n")
	r.expect(`* ID ("name" "mailhook")`)
	r.expect("a OK")
	r.send("b XFOO\r\n")
	r.expect("b BAD")
	r.send("c LOGIN alice secret\r\n")
	r.expect("c OK")
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

// TestEnvelopeAddresses covers groups and comments (RFC 5322 §3.4),
// which imapserver.ExtractEnvelope flattens or drops.
func TestEnvelopeAddresses(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []imap.Address
	}{
		{"group: g1@d1.org, g2@d2.org;, group2: g3@d3.org;", []imap.Address{
			{Mailbox: "group"}, {Mailbox: "g1", Host: "d1.org"}, {Mailbox: "g2", Host: "d2.org"}, {},
			{Mailbox: "group2"}, {Mailbox: "g3", Host: "d3.org"}, {}}},
		{"group:;, group2: (foo) ;", []imap.Address{{Mailbox: "group"}, {}, {Mailbox: "group2"}, {}}},
		{"<user-from (comment)@ (comment) domain.org>", []imap.Address{{Mailbox: "user-from", Host: "domain.org"}}},
		{"user@domain (Real Name)", []imap.Address{{Name: "Real Name", Mailbox: "user", Host: "domain"}}},
		{`"Doe, John" <john.doe@example.org>, =?utf-8?q?J=C3=BCrgen?= <j@x.de>`, []imap.Address{
			{Name: "Doe, John", Mailbox: "john.doe", Host: "example.org"}, {Name: "Jürgen", Mailbox: "j", Host: "x.de"}}},
		{"<@route:user@domain>", []imap.Address{{Mailbox: "user", Host: "domain"}}},
		{"", nil},
	} {
		if got := parseAddresses(tc.in); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("parseAddresses(%q) = %q, want %q", tc.in, got, tc.want)
		}
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
