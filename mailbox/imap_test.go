package mailbox

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/emersion/go-sasl"
	"github.com/mailhook/mailhook/internal/loginlimit"
	"golang.org/x/crypto/bcrypt"
)

type imapEnv struct {
	store *Store
	users *Users
	srv   *IMAPServer
	addr  string
	tls   *tls.Config
}

func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type tWriter struct{ t testing.TB }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

var (
	certOnce sync.Once
	certTLS  *tls.Config
)

// testTLS returns a server config with a self-signed certificate for
// 127.0.0.1; clients use InsecureSkipVerify.
func testTLS(t testing.TB) *tls.Config {
	certOnce.Do(func() {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "mailhook test"},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
			IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
		if err != nil {
			t.Fatal(err)
		}
		certTLS = &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}}
	})
	return certTLS
}

func mustHash(t testing.TB, pw string) string {
	h, err := bcrypt.GenerateFromPassword([]byte(pw), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	return string(h)
}

func newIMAPEnv(t testing.TB, mod func(*IMAPOptions)) *imapEnv {
	t.Helper()
	st := openStore(t, Options{})
	users, err := NewUsers([]User{
		{Name: "alice", PasswordHash: mustHash(t, "secret"), Addresses: []string{"alice@example.test"}},
		{Name: "bob", PasswordHash: mustHash(t, "hunter2"), Addresses: []string{"bob@example.test"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	opts := IMAPOptions{Store: st, Users: users, TLSConfig: testTLS(t), Logger: testLogger(t),
		Limiter: loginlimit.New(loginlimit.Options{BaseDelay: time.Millisecond, MaxDelay: 2 * time.Millisecond, LockAfter: 4})}
	if mod != nil {
		mod(&opts)
	}
	srv, err := NewIMAPServer(opts)
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(l) }()
	t.Cleanup(func() {
		srv.Close()
		if err := <-done; !errors.Is(err, ErrServerClosed) {
			t.Errorf("Serve = %v, want ErrServerClosed", err)
		}
	})
	return &imapEnv{store: st, users: users, srv: srv, addr: l.Addr().String(), tls: opts.TLSConfig}
}

func (e *imapEnv) dial(t testing.TB, h *imapclient.UnilateralDataHandler) *imapclient.Client {
	t.Helper()
	c, err := imapclient.DialInsecure(e.addr, &imapclient.Options{UnilateralDataHandler: h})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func (e *imapEnv) login(t testing.TB, h *imapclient.UnilateralDataHandler) *imapclient.Client {
	t.Helper()
	c := e.dial(t, h)
	if err := c.Login("alice", "secret").Wait(); err != nil {
		t.Fatalf("LOGIN: %v", err)
	}
	return c
}

func (e *imapEnv) deliver(t testing.TB, user, folder, msg string) uint32 {
	t.Helper()
	uid, err := e.store.Deliver(context.Background(), user, folder, strings.NewReader(msg), time.Time{}, "")
	if err != nil {
		t.Fatal(err)
	}
	return uid
}

func mkMsg(subject, body string) string {
	return "From: Carol <carol@example.org>\r\nTo: alice@example.test\r\nSubject: " + subject +
		"\r\nDate: Tue, 03 Feb 2026 10:00:00 +0000\r\nMessage-ID: <" + subject + "@example.org>\r\n\r\n" + body + "\r\n"
}

const multipartMsg = "From: carol@example.org\r\nTo: alice@example.test\r\nSubject: with attachment\r\n" +
	"Date: Wed, 04 Feb 2026 10:00:00 +0000\r\nMIME-Version: 1.0\r\n" +
	"Content-Type: multipart/mixed; boundary=XX\r\n\r\n" +
	"--XX\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nthe quarterly invoice is attached\r\n" +
	"--XX\r\nContent-Type: application/pdf\r\nContent-Transfer-Encoding: base64\r\n\r\nJVBERi0xLjQK\r\n--XX--\r\n"

func TestIMAPFolders(t *testing.T) {
	e := newIMAPEnv(t, nil)
	c := e.login(t, nil)
	caps, err := c.Capability().Wait()
	if err != nil {
		t.Fatal(err)
	}
	for _, cp := range []imap.Cap{imap.CapIMAP4rev1, imap.CapIMAP4rev2, imap.CapUIDPlus, imap.CapMove, imap.CapSpecialUse, imap.CapNamespace, imap.CapIdle, imap.CapLiteralPlus} {
		if !caps.Has(cp) {
			t.Errorf("CAPABILITY lacks %s: %v", cp, caps)
		}
	}
	list, err := c.List("", "*", nil).Collect()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string][]imap.MailboxAttr{}
	for _, l := range list {
		got[l.Mailbox] = l.Attrs
		if l.Delim != '/' {
			t.Errorf("delimiter %q", l.Delim)
		}
	}
	for name, attr := range map[string]imap.MailboxAttr{"Sent": imap.MailboxAttrSent, "Drafts": imap.MailboxAttrDrafts, "Trash": imap.MailboxAttrTrash, "Junk": imap.MailboxAttrJunk} {
		if !slices.Contains(got[name], attr) {
			t.Errorf("LIST %s attrs = %v, want %s", name, got[name], attr)
		}
	}
	if _, ok := got["INBOX"]; !ok {
		t.Errorf("LIST lacks INBOX: %v", got)
	}
	if err := c.Create("Projects/2026", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	// Non-ASCII names (modified UTF-7 on the wire for IMAP4rev1, RFC 3501
	// §5.1.3) are stored as UTF-8.
	if err := c.Create("Entwürfe", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	if _, err := e.store.Folder(context.Background(), "alice", "Entwürfe"); err != nil {
		t.Errorf("UTF-8 folder name: %v", err)
	}
	if l, err := c.List("", "Entw*", nil).Collect(); err != nil || len(l) != 1 || l[0].Mailbox != "Entwürfe" {
		t.Errorf("LIST Entw* = %+v, %v", l, err)
	}
	if err := c.Create("Projects/2026", nil).Wait(); !isCode(err, imap.ResponseCodeAlreadyExists) {
		t.Errorf("CREATE existing = %v, want ALREADYEXISTS", err)
	}
	if err := c.Rename("Projects", "Work", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	list, _ = c.List("", "Work/%", nil).Collect()
	if len(list) != 1 || list[0].Mailbox != "Work/2026" {
		t.Errorf("LIST Work/%% = %+v", list)
	}
	if err := c.Unsubscribe("Work/2026").Wait(); err != nil {
		t.Fatal(err)
	}
	lsub, _ := c.List("", "*", &imap.ListOptions{SelectSubscribed: true}).Collect()
	for _, l := range lsub {
		if l.Mailbox == "Work/2026" {
			t.Errorf("unsubscribed folder listed as subscribed")
		}
	}
	if err := c.Subscribe("Work/2026").Wait(); err != nil {
		t.Fatal(err)
	}
	if err := c.Delete("Work/2026").Wait(); err != nil {
		t.Fatal(err)
	}
	if err := c.Delete("Nope").Wait(); !isCode(err, imap.ResponseCodeNonExistent) {
		t.Errorf("DELETE missing = %v, want NONEXISTENT", err)
	}
	e.deliver(t, "alice", "", mkMsg("a", "x"))
	st, err := c.Status("INBOX", &imap.StatusOptions{NumMessages: true, UIDNext: true, UIDValidity: true, NumUnseen: true, Size: true}).Wait()
	if err != nil {
		t.Fatal(err)
	}
	if *st.NumMessages != 1 || *st.NumUnseen != 1 || st.UIDNext != 2 || st.UIDValidity == 0 || *st.Size != int64(len(mkMsg("a", "x"))) {
		t.Errorf("STATUS = %+v", st)
	}
	ns, err := c.Namespace().Wait()
	if err != nil || len(ns.Personal) != 1 || ns.Personal[0].Delim != '/' {
		t.Errorf("NAMESPACE = %+v, %v", ns, err)
	}
	if err := c.Logout().Wait(); err != nil {
		t.Errorf("LOGOUT: %v", err)
	}
}

func isCode(err error, code imap.ResponseCode) bool {
	var ie *imap.Error
	return errors.As(err, &ie) && ie.Code == code
}

func TestIMAPMessages(t *testing.T) {
	e := newIMAPEnv(t, nil)
	e.deliver(t, "alice", "", mkMsg("first", "hello world"))
	e.deliver(t, "alice", "", multipartMsg)
	e.deliver(t, "alice", "", mkMsg("third", strings.Repeat("long line ", 200)))
	c := e.login(t, nil)
	sel, err := c.Select("INBOX", nil).Wait()
	if err != nil {
		t.Fatal(err)
	}
	if sel.NumMessages != 3 || sel.UIDNext != 4 {
		t.Fatalf("SELECT = %+v", sel)
	}

	// FETCH: envelope, structure, size, peek leaves \Seen unset.
	msgs, err := c.Fetch(imap.SeqSetNum(1, 2), &imap.FetchOptions{
		UID: true, Flags: true, Envelope: true, BodyStructure: &imap.FetchItemBodyStructure{Extended: true},
		RFC822Size: true, InternalDate: true, BodySection: []*imap.FetchItemBodySection{{Peek: true}},
	}).Collect()
	if err != nil {
		t.Fatal(err)
	}
	if len(msgs) != 2 || msgs[0].Envelope.Subject != "first" || msgs[0].Envelope.From[0].Host != "example.org" {
		t.Fatalf("FETCH envelope = %+v", msgs[0].Envelope)
	}
	if mp, ok := msgs[1].BodyStructure.(*imap.BodyStructureMultiPart); !ok || mp.Subtype != "mixed" || len(mp.Children) != 2 {
		t.Fatalf("BODYSTRUCTURE = %#v", msgs[1].BodyStructure)
	}
	if string(msgs[0].BodySection[0].Bytes) != mkMsg("first", "hello world") || msgs[0].RFC822Size != int64(len(mkMsg("first", "hello world"))) {
		t.Fatalf("BODY.PEEK[] = %q", msgs[0].BodySection[0].Bytes)
	}
	if slices.Contains(msgs[0].Flags, imap.FlagSeen) {
		t.Fatal("BODY.PEEK set \\Seen")
	}
	// BODY[] sets \Seen and reports it; partial and part sections.
	msgs, err = c.Fetch(imap.SeqSetNum(2), &imap.FetchOptions{BodySection: []*imap.FetchItemBodySection{
		{}, {Part: []int{1}}, {Specifier: imap.PartSpecifierHeader, HeaderFields: []string{"Subject"}},
		{Partial: &imap.SectionPartial{Offset: 6, Size: 5}},
	}}).Collect()
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(msgs[0].Flags, imap.FlagSeen) {
		t.Errorf("BODY[] flags = %v, want \\Seen", msgs[0].Flags)
	}
	secs := map[string]string{}
	for _, s := range msgs[0].BodySection {
		secs[fmt.Sprintf("%v%v%v", s.Section.Part, s.Section.Specifier, s.Section.Partial != nil)] = string(s.Bytes)
	}
	if got := secs["[1]false"]; got != "the quarterly invoice is attached" {
		t.Errorf("BODY[1] = %q", got)
	}
	if got := secs["[]HEADERfalse"]; got != "Subject: with attachment\r\n\r\n" {
		t.Errorf("BODY[HEADER.FIELDS (Subject)] = %q", got)
	}
	if got := secs["[]true"]; got != "carol" {
		t.Errorf("BODY[]<6.5> = %q", got)
	}

	// SEARCH over flags, headers, body, sizes, dates.
	for _, tc := range []struct {
		name string
		c    imap.SearchCriteria
		want []uint32
	}{
		{"all", imap.SearchCriteria{}, []uint32{1, 2, 3}},
		{"seen", imap.SearchCriteria{Flag: []imap.Flag{imap.FlagSeen}}, []uint32{2}},
		{"unseen", imap.SearchCriteria{NotFlag: []imap.Flag{imap.FlagSeen}}, []uint32{1, 3}},
		{"subject", imap.SearchCriteria{Header: []imap.SearchCriteriaHeaderField{{Key: "Subject", Value: "THIRD"}}}, []uint32{3}},
		{"body", imap.SearchCriteria{Body: []string{"Quarterly"}}, []uint32{2}},
		{"text-header", imap.SearchCriteria{Text: []string{"carol@example.org"}}, []uint32{1, 2, 3}},
		{"larger", imap.SearchCriteria{Larger: 1000}, []uint32{3}},
		{"smaller", imap.SearchCriteria{Smaller: 300}, []uint32{1}},
		{"sentsince", imap.SearchCriteria{SentSince: time.Date(2026, 2, 4, 0, 0, 0, 0, time.UTC)}, []uint32{2}},
		{"since-today", imap.SearchCriteria{Since: time.Now().UTC().Add(-24 * time.Hour)}, []uint32{1, 2, 3}},
		{"before-2000", imap.SearchCriteria{Before: time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)}, nil},
		{"or", imap.SearchCriteria{Or: [][2]imap.SearchCriteria{{{Body: []string{"hello"}}, {Larger: 1000}}}}, []uint32{1, 3}},
		{"not", imap.SearchCriteria{Not: []imap.SearchCriteria{{Body: []string{"hello"}}}}, []uint32{2, 3}},
		{"seq", imap.SearchCriteria{SeqNum: []imap.SeqSet{{{Start: 2, Stop: 0}}}}, []uint32{2, 3}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d, err := c.Search(&tc.c, nil).Wait()
			if err != nil {
				t.Fatal(err)
			}
			if got := d.AllSeqNums(); !slices.Equal(got, tc.want) {
				t.Errorf("SEARCH %s = %v, want %v", tc.name, got, tc.want)
			}
		})
	}
	d, err := c.UIDSearch(&imap.SearchCriteria{Header: []imap.SearchCriteriaHeaderField{{Key: "Subject", Value: "first"}}}, nil).Wait()
	if err != nil || !slices.Equal(d.AllUIDs(), []imap.UID{1}) {
		t.Errorf("UID SEARCH = %v, %v", d, err)
	}

	// STORE, COPY (COPYUID), MOVE, EXPUNGE, UID EXPUNGE.
	st, err := c.Store(imap.SeqSetNum(1), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Flags: []imap.Flag{imap.FlagFlagged, "$Important"}}, nil).Collect()
	if err != nil || len(st) != 1 || !slices.Contains(st[0].Flags, imap.FlagFlagged) || !slices.Contains(st[0].Flags, "$Important") {
		t.Fatalf("STORE = %+v, %v", st, err)
	}
	cp, err := c.Copy(imap.SeqSetNum(1, 2), "Trash").Wait()
	if err != nil || cp.UIDValidity == 0 || cp.DestUIDs.String() != "1:2" || cp.SourceUIDs.String() != "1:2" {
		t.Fatalf("COPY = %+v, %v", cp, err)
	}
	if _, err := c.Copy(imap.SeqSetNum(1), "Nope").Wait(); !isCode(err, imap.ResponseCodeTryCreate) {
		t.Errorf("COPY to missing = %v, want TRYCREATE", err)
	}
	mv, err := c.Move(imap.SeqSetNum(3), "Junk").Wait()
	if err != nil || mv.DestUIDs.String() != "1" || mv.SourceUIDs.String() != "3" {
		t.Fatalf("MOVE = %+v, %v", mv, err)
	}
	if _, err := c.Store(imap.SeqSetNum(1, 2), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Silent: true, Flags: []imap.Flag{imap.FlagDeleted}}, nil).Collect(); err != nil {
		t.Fatal(err)
	}
	gone, err := c.UIDExpunge(imap.UIDSetNum(2)).Collect()
	if err != nil || !slices.Equal(gone, []uint32{2}) {
		t.Fatalf("UID EXPUNGE = %v, %v", gone, err)
	}
	gone, err = c.Expunge().Collect()
	if err != nil || !slices.Equal(gone, []uint32{1}) {
		t.Fatalf("EXPUNGE = %v, %v", gone, err)
	}
	if f, _ := e.store.Folder(context.Background(), "alice", Inbox); f.Messages != 0 {
		t.Fatalf("INBOX has %d messages", f.Messages)
	}

	// APPEND with APPENDUID, then the new message is visible.
	raw := mkMsg("appended", "by client")
	ac := c.Append("INBOX", int64(len(raw)), &imap.AppendOptions{Flags: []imap.Flag{imap.FlagSeen}})
	io.WriteString(ac, raw)
	ac.Close()
	ad, err := ac.Wait()
	if err != nil || ad.UID != 4 || ad.UIDValidity != sel.UIDValidity {
		t.Fatalf("APPEND = %+v, %v", ad, err)
	}
	if err := c.Noop().Wait(); err != nil {
		t.Fatal(err)
	}
	msgs, err = c.Fetch(imap.UIDSetNum(4), &imap.FetchOptions{Flags: true, UID: true}).Collect()
	if err != nil || len(msgs) != 1 || !slices.Contains(msgs[0].Flags, imap.FlagSeen) {
		t.Fatalf("FETCH appended = %+v, %v", msgs, err)
	}
	ac = c.Append("Nope", int64(len(raw)), nil)
	io.WriteString(ac, raw)
	ac.Close()
	if _, err := ac.Wait(); !isCode(err, imap.ResponseCodeTryCreate) {
		t.Errorf("APPEND to missing = %v, want TRYCREATE", err)
	}
	// EXAMINE is read-only.
	if _, err := c.Select("Trash", &imap.SelectOptions{ReadOnly: true}).Wait(); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Store(imap.SeqSetNum(1), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Flags: []imap.Flag{imap.FlagSeen}}, nil).Collect(); err == nil {
		t.Error("STORE in EXAMINE succeeded")
	}
	verify(t, e.store)
}

func TestIMAPTwoSessionsSeeFlags(t *testing.T) {
	e := newIMAPEnv(t, nil)
	e.deliver(t, "alice", "", mkMsg("one", "x"))
	e.deliver(t, "alice", "", mkMsg("two", "y"))
	flags := make(chan *imapclient.FetchMessageData, 10)
	expunged := make(chan uint32, 10)
	a := e.login(t, nil)
	b := e.login(t, &imapclient.UnilateralDataHandler{
		Fetch:   func(m *imapclient.FetchMessageData) { flags <- m },
		Expunge: func(seq uint32) { expunged <- seq },
	})
	for _, c := range []*imapclient.Client{a, b} {
		if _, err := c.Select("INBOX", nil).Wait(); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := a.Store(imap.SeqSetNum(2), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Flags: []imap.Flag{imap.FlagFlagged}}, nil).Collect(); err != nil {
		t.Fatal(err)
	}
	if err := b.Noop().Wait(); err != nil {
		t.Fatal(err)
	}
	select {
	case m := <-flags:
		buf, err := m.Collect()
		if err != nil || buf.SeqNum != 2 || !slices.Contains(buf.Flags, imap.FlagFlagged) {
			t.Fatalf("unsolicited FETCH = %+v, %v", buf, err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("session B never saw A's STORE")
	}
	// A expunges message 1: B learns at its next command that allows it.
	a.Store(imap.SeqSetNum(1), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Silent: true, Flags: []imap.Flag{imap.FlagDeleted}}, nil).Collect()
	if _, err := a.Expunge().Collect(); err != nil {
		t.Fatal(err)
	}
	if err := b.Noop().Wait(); err != nil {
		t.Fatal(err)
	}
	select {
	case seq := <-expunged:
		if seq != 1 {
			t.Fatalf("EXPUNGE %d, want 1", seq)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("session B never saw the EXPUNGE")
	}
	msgs, err := b.Fetch(imap.SeqSetNum(1), &imap.FetchOptions{UID: true}).Collect()
	if err != nil || len(msgs) != 1 || msgs[0].UID != 2 {
		t.Fatalf("after EXPUNGE, seq 1 = %+v, %v, want UID 2", msgs, err)
	}
}

func TestIMAPIdle(t *testing.T) {
	e := newIMAPEnv(t, nil)
	exists := make(chan uint32, 10)
	c := e.login(t, &imapclient.UnilateralDataHandler{
		Mailbox: func(d *imapclient.UnilateralDataMailbox) {
			if d.NumMessages != nil {
				exists <- *d.NumMessages
			}
		},
	})
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	idle, err := c.Idle()
	if err != nil {
		t.Fatal(err)
	}
	e.deliver(t, "alice", "", mkMsg("pushed", "x"))
	select {
	case n := <-exists:
		if n != 1 {
			t.Fatalf("EXISTS %d, want 1", n)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no EXISTS during IDLE")
	}
	if err := idle.Close(); err != nil {
		t.Fatal(err)
	}
	if err := idle.Wait(); err != nil {
		t.Fatal(err)
	}
}

func TestIMAPLoginThrottled(t *testing.T) {
	e := newIMAPEnv(t, nil)
	c := e.dial(t, nil)
	for i := 0; i < 4; i++ {
		if err := c.Login("alice", "wrong").Wait(); !isCode(err, imap.ResponseCodeAuthenticationFailed) {
			t.Fatalf("wrong password #%d = %v, want AUTHENTICATIONFAILED", i, err)
		}
	}
	// Locked now: even the right password is refused, without a check.
	if err := c.Login("alice", "secret").Wait(); !isCode(err, imap.ResponseCodeUnavailable) {
		t.Fatalf("login while throttled = %v, want UNAVAILABLE", err)
	}
	// The lock is per (user, address): another name from the same address
	// is checked, until the address's own limit.
	if err := c.Login("nobody", "x").Wait(); !isCode(err, imap.ResponseCodeAuthenticationFailed) {
		t.Fatalf("other user from the throttled IP = %v, want AUTHENTICATIONFAILED", err)
	}
}

func TestIMAPConnLimit(t *testing.T) {
	e := newIMAPEnv(t, func(o *IMAPOptions) { o.Limiter = loginlimit.New(loginlimit.Options{MaxConnsPerUser: 1}) })
	a := e.login(t, nil)
	b := e.dial(t, nil)
	if err := b.Login("alice", "secret").Wait(); !isCode(err, imap.ResponseCodeLimit) {
		t.Fatalf("second session = %v, want LIMIT", err)
	}
	a.Logout().Wait()
	a.Close()
	// The slot frees when A's session closes; retry until it does.
	deadline := time.Now().Add(5 * time.Second)
	for {
		c := e.dial(t, nil)
		err := c.Login("alice", "secret").Wait()
		if err == nil {
			break
		}
		if !isCode(err, imap.ResponseCodeLimit) || time.Now().After(deadline) {
			t.Fatalf("login after logout = %v", err)
		}
		c.Close()
		time.Sleep(10 * time.Millisecond)
	}
}

func TestIMAPPlaintextRefusedRemote(t *testing.T) {
	e := newIMAPEnv(t, nil)
	e.srv.loopbackTrusted.Store(false) // act as a remote client
	c := e.dial(t, nil)
	caps, err := c.Capability().Wait()
	if err != nil {
		t.Fatal(err)
	}
	if !caps.Has(imap.CapLoginDisabled) || !caps.Has(imap.CapStartTLS) {
		t.Errorf("CAPABILITY without TLS = %v, want LOGINDISABLED and STARTTLS", caps)
	}
	if err := c.Login("alice", "secret").Wait(); err == nil {
		t.Fatal("LOGIN without TLS accepted")
	}
	// STARTTLS then LOGIN works.
	sc, err := imapclient.DialStartTLS(e.addr, &imapclient.Options{TLSConfig: &tls.Config{InsecureSkipVerify: true}})
	if err != nil {
		t.Fatal(err)
	}
	defer sc.Close()
	if err := sc.Login("alice", "secret").Wait(); err != nil {
		t.Fatalf("LOGIN after STARTTLS: %v", err)
	}
}

func TestIMAPImplicitTLS(t *testing.T) {
	e := newIMAPEnv(t, nil)
	e.srv.loopbackTrusted.Store(false)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go e.srv.ServeTLS(l)
	c, err := imapclient.DialTLS(l.Addr().String(), &imapclient.Options{TLSConfig: &tls.Config{InsecureSkipVerify: true}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Login("alice@example.test", "secret").Wait(); err != nil {
		t.Fatalf("LOGIN over IMAPS by address: %v", err)
	}
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
}

// rawConn drives the server with text lines, for the cases a client
// library hides: literals, partial fetches, IDLE.
type rawConn struct {
	t  testing.TB
	c  net.Conn
	br *bufio.Reader
}

func (e *imapEnv) raw(t testing.TB) *rawConn { return dialRaw(t, e.addr) }

// dialRaw connects to an IMAP server at addr and reads its greeting.
func dialRaw(t testing.TB, addr string) *rawConn {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(10 * time.Second))
	r := &rawConn{t: t, c: c, br: bufio.NewReader(c)}
	r.expect("* OK")
	return r
}

func (r *rawConn) send(s string) {
	r.t.Helper()
	r.t.Logf("C: %s", strings.TrimRight(s, "\r\n"))
	if _, err := io.WriteString(r.c, s); err != nil {
		r.t.Fatal(err)
	}
}

func (r *rawConn) line() string {
	r.t.Helper()
	l, err := r.br.ReadString('\n')
	if err != nil {
		r.t.Fatalf("read: %v", err)
	}
	r.t.Logf("S: %s", strings.TrimRight(l, "\r\n"))
	return l
}

// expect reads lines until one starts with prefix; it returns the lines
// read, the matching one last.
func (r *rawConn) expect(prefix string) []string {
	r.t.Helper()
	var lines []string
	for {
		l := r.line()
		lines = append(lines, l)
		if strings.HasPrefix(l, prefix) {
			return lines
		}
		if tag, _, _ := strings.Cut(prefix, " "); tag != "*" && tag != "+" && strings.HasPrefix(l, tag+" ") {
			r.t.Fatalf("got %q, want %q", l, prefix)
		}
	}
}

func TestIMAPRawTranscript(t *testing.T) {
	e := newIMAPEnv(t, nil)
	r := e.raw(t)
	r.send("a1 LOGIN alice secret\r\n")
	r.expect("a1 OK")
	msg := "Subject: raw\r\n\r\n0123456789abcdef\r\n"
	// Synchronizing literal: the server must ask for it with "+".
	r.send(fmt.Sprintf("a2 APPEND INBOX (\\Flagged) {%d}\r\n", len(msg)))
	r.expect("+ ")
	r.send(msg + "\r\n")
	if l := r.expect("a2 OK"); !strings.Contains(l[len(l)-1], "[APPENDUID ") {
		t.Errorf("APPEND answer %q lacks APPENDUID", l[len(l)-1])
	}
	// LITERAL+ (RFC 7888): no continuation.
	r.send(fmt.Sprintf("a3 APPEND INBOX {%d+}\r\n%s\r\n", len(msg), msg))
	r.expect("a3 OK")
	r.send("a4 SELECT INBOX\r\n")
	lines := strings.Join(r.expect("a4 OK"), "")
	if !strings.Contains(lines, "* 2 EXISTS") {
		t.Errorf("SELECT = %q, want 2 EXISTS", lines)
	}
	r.send("a5 FETCH 1 BODY.PEEK[]<0.10>\r\n")
	lines = strings.Join(r.expect("a5 OK"), "")
	if !strings.Contains(lines, "BODY[]<0> {10}\r\nSubject: r") {
		t.Errorf("partial FETCH = %q", lines)
	}
	r.send("a6 UID FETCH 2 (FLAGS RFC822.SIZE)\r\n")
	lines = strings.Join(r.expect("a6 OK"), "")
	if !strings.Contains(lines, fmt.Sprintf("RFC822.SIZE %d", len(msg))) || !strings.Contains(lines, "UID 2") {
		t.Errorf("UID FETCH = %q", lines)
	}
	r.send("a7 IDLE\r\n")
	r.expect("+ ")
	e.deliver(t, "alice", "", mkMsg("during idle", "x"))
	r.expect("* 3 EXISTS")
	r.send("DONE\r\n")
	r.expect("a7 OK")
	// Bad syntax gets BAD, not a dropped connection.
	r.send("a8 FROB INBOX\r\n")
	r.expect("a8 BAD")
	// COPY into the selected folder duplicates.
	r.send("a9 COPY 1 INBOX\r\n")
	if l := strings.Join(r.expect("a9 OK [COPYUID "), ""); !strings.Contains(l, "* 4 EXISTS") {
		t.Errorf("COPY into INBOX = %q, want 4 EXISTS", l)
	}
	// COPY and MOVE of UIDs that do not exist: OK, no COPYUID (RFC 4315
	// §3 has no empty set).
	r.send("b1 UID COPY 50:60 Trash\r\n")
	if l := r.expect("b1 "); l[len(l)-1] != "b1 OK COPY completed\r\n" {
		t.Errorf("empty UID COPY = %q", l)
	}
	r.send("b2 UID MOVE 50:60 Trash\r\n")
	if l := strings.Join(r.expect("b2 "), ""); strings.Contains(l, "COPYUID") || !strings.Contains(l, "b2 OK") {
		t.Errorf("empty UID MOVE = %q", l)
	}
	r.send("b3 FETCH 99 FLAGS\r\n")
	r.expect("b3 ")
	r.send("b4 NOOP\r\n")
	r.expect("b4 OK")
	// Shutdown says BYE.
	if err := e.srv.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	r.expect("* BYE")
}

func TestIMAPAuthenticatePlain(t *testing.T) {
	e := newIMAPEnv(t, nil)
	c := e.dial(t, nil)
	if err := c.Authenticate(sasl.NewPlainClient("", "alice", "wrong")); !isCode(err, imap.ResponseCodeAuthenticationFailed) {
		t.Fatalf("AUTHENTICATE PLAIN wrong = %v", err)
	}
	if err := c.Authenticate(sasl.NewPlainClient("", "alice", "secret")); err != nil {
		t.Fatalf("AUTHENTICATE PLAIN: %v", err)
	}
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	// Remote without TLS: refused before the password is looked at.
	e.srv.loopbackTrusted.Store(false)
	r := e.dial(t, nil)
	if err := r.Authenticate(sasl.NewPlainClient("", "alice", "secret")); !isCode(err, imap.ResponseCodePrivacyRequired) {
		t.Fatalf("AUTHENTICATE without TLS = %v, want PRIVACYREQUIRED", err)
	}
}

// FuzzIMAPSession feeds arbitrary command bytes to a logged-in session
// with a folder selected; the server must neither crash nor stop serving.
func FuzzIMAPSession(f *testing.F) {
	for _, s := range []string{
		"a FETCH 1:* (BODY[] BODYSTRUCTURE ENVELOPE)\r\n",
		"a FETCH 1 BODY[1.2.3.HEADER.FIELDS (A B)]<0.5>\r\n",
		"a UID SEARCH OR BODY x NOT HEADER Subject y\r\n",
		"a STORE 1:* +FLAGS (\\Seen $x)\r\n",
		"a APPEND INBOX {5+}\r\nhello\r\n",
		"a SEARCH $\r\na SEARCH RETURN (SAVE) ALL\r\nb FETCH $ FLAGS\r\n",
		"a MOVE 1 Trash\r\nb EXPUNGE\r\n",
		"a IDLE\r\nDONE\r\n",
		"a LIST \"\" \"%/*\"\r\n",
		"a RENAME INBOX Old\r\n",
		"a FETCH 4294967295:* FLAGS\r\n",
	} {
		f.Add(s)
	}
	e := newIMAPEnv(f, func(o *IMAPOptions) { o.Logger = nil })
	e.deliver(f, "alice", "", multipartMsg)
	e.deliver(f, "alice", "", mkMsg("x", "y"))
	f.Fuzz(func(t *testing.T, in string) {
		c, err := net.Dial("tcp", e.addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(2 * time.Second))
		io.WriteString(c, "x1 LOGIN alice secret\r\nx2 SELECT INBOX\r\n"+in+"\r\nx3 LOGOUT\r\n")
		io.Copy(io.Discard, c)
		// Still serving.
		p := e.dial(t, nil)
		if err := p.Login("alice", "secret").Wait(); err != nil {
			t.Fatalf("server unusable after %q: %v", in, err)
		}
		p.Close()
		if err := e.store.Verify(context.Background()); err != nil {
			t.Fatal(err)
		}
	})
}

// TestIMAPIdleDisconnect drops the connection during IDLE while mail
// arrives: the session closes while its IDLE goroutine may still run.
func TestIMAPIdleDisconnect(t *testing.T) {
	e := newIMAPEnv(t, nil)
	for i := 0; i < 5; i++ {
		r := e.raw(t)
		r.send("a LOGIN alice secret\r\nb SELECT INBOX\r\nc IDLE\r\n")
		r.expect("+ ")
		r.c.Close()
		e.deliver(t, "alice", "", mkMsg("x", "y"))
	}
	c := e.login(t, nil)
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
}

// TestIMAPLongLine: a command line beyond imapserver's limit (50 KiB,
// RFC 2683 §3.2.1.5 asks for at least 8 KiB) ends that connection; the
// server goes on serving others.
func TestIMAPLongLine(t *testing.T) {
	e := newIMAPEnv(t, nil)
	r := e.raw(t)
	r.send("a LOGIN alice secret\r\n")
	r.expect("a OK")
	go io.WriteString(r.c, "b NOOP "+strings.Repeat("x", 200<<10)+"\r\n")
	for {
		l, err := r.br.ReadString('\n')
		if err != nil {
			break // closed: fine
		}
		if strings.HasPrefix(l, "b OK") {
			t.Fatalf("200 KiB command accepted: %q", l)
		}
		if strings.HasPrefix(l, "b BAD") || strings.HasPrefix(l, "* BYE") {
			break
		}
	}
	c := e.login(t, nil)
	if err := c.Noop().Wait(); err != nil {
		t.Fatal(err)
	}
}

func TestIMAPAppendOverQuota(t *testing.T) {
	st, err := Open(t.TempDir(), Options{Quota: func(string) int64 { return 300 }})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	e := newIMAPEnv(t, func(o *IMAPOptions) { o.Store = st })
	e.store = st
	c := e.login(t, nil)
	raw := mkMsg("big", strings.Repeat("x", 400))
	ac := c.Append("INBOX", int64(len(raw)), nil)
	io.WriteString(ac, raw)
	ac.Close()
	if _, err := ac.Wait(); !isCode(err, imap.ResponseCodeOverQuota) {
		t.Fatalf("APPEND over quota = %v, want OVERQUOTA", err)
	}
	if err := c.Noop().Wait(); err != nil {
		t.Fatalf("session after refused APPEND: %v", err)
	}
	if err := st.Verify(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// TestIMAPFetchClientGone: a client that goes away in the middle of a large
// BODY[] leaves no session stuck: the server still shuts down, and other
// clients are served meanwhile.
func TestIMAPFetchClientGone(t *testing.T) {
	e := newIMAPEnv(t, nil)
	e.deliver(t, "alice", "INBOX", mkMsg("big", strings.Repeat(strings.Repeat("x", 76)+"\r\n", 8<<20/78)))
	conn, err := net.Dial("tcp", e.addr)
	if err != nil {
		t.Fatal(err)
	}
	r := bufio.NewReader(conn)
	r.ReadString('\n') // greeting
	fmt.Fprintf(conn, "a LOGIN alice secret\r\nb SELECT INBOX\r\nc FETCH 1 BODY[]\r\n")
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatalf("before the literal: %v", err)
		}
		if strings.HasPrefix(line, "* 1 FETCH") {
			break
		}
	}
	io.ReadFull(r, make([]byte, 1024))
	conn.(*net.TCPConn).SetLinger(0) // a reset, as a client that crashed
	conn.Close()
	// Another client is served.
	c := e.login(t, nil)
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		t.Fatalf("SELECT after the other client went: %v", err)
	}
	c.Close()
	// And the server shuts down (newIMAPEnv's cleanup waits for Serve).
	closed := make(chan struct{})
	go func() { e.srv.Close(); close(closed) }()
	select {
	case <-closed:
	case <-time.After(60 * time.Second):
		t.Fatal("IMAP server Close still blocked 60 s after a client left mid-FETCH")
	}
}
