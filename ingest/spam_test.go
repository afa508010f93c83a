package ingest

import (
	"context"
	"errors"
	"io"
	"math"
	"net/smtp"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/mailhook/mailhook/inbound"
	"github.com/mailhook/mailhook/ingest/rspamd"
	"github.com/mailhook/mailhook/ingest/rspamd/rspamdtest"
)

// spamMsg is a message whose body holds line (rspamd looks for the GTUBE
// strings in a text part longer than the pattern).
func spamMsg(line string) string {
	return "From: Alice <alice@sender.test>\r\nTo: support@example.test\r\nSubject: Help me\r\n" +
		"Message-ID: <m1@sender.test>\r\n\r\nMy printer is on fire.\r\n" + line + "\r\n"
}

func withRspamd(t *testing.T, url string, enforce, deferOnError bool) func(*Options) {
	c, err := rspamd.New(rspamd.Options{URL: url, Timeout: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	return func(o *Options) {
		o.Spam = &SpamOptions{Checker: c, Enforce: enforce, DeferOnError: deferOnError}
	}
}

// TestSpamRealRspamd drives the SMTP listener with a real rspamd behind it.
func TestSpamRealRspamd(t *testing.T) {
	rs := rspamdtest.Start(t)
	h := start(t, withRspamd(t, rs.URL, true, false))

	// GTUBE: rspamd says reject, the sender hears 550 5.7.1 at DATA.
	err := sendMail(h.addr, "alice@sender.test", "support@example.test", spamMsg(rspamdtest.GTUBE))
	if !isReply(err, 550, "5.7.1") {
		t.Fatalf("GTUBE: %v, want 550 5.7.1", err)
	}
	if h.rec.count() != 0 {
		t.Fatal("a message rspamd rejected was committed")
	}

	// An ordinary message: accepted with the verdict.
	if err := sendMail(h.addr, "alice@sender.test", "support@example.test", spamMsg("Thanks.")); err != nil {
		t.Fatalf("ordinary message: %v", err)
	}
	m := h.rec.mails[0]
	if s := m.Spam; !s.OK() || s.Action != inbound.SpamActionNone || s.Score >= s.RequiredScore || len(s.Symbols) == 0 {
		t.Errorf("ordinary message: spam = %+v, want ok, no action, a score under the required one, symbols", s)
	}
	if m.Auth.Quarantine {
		t.Error("ordinary message flagged quarantine")
	}

	// add header and rewrite subject: accepted, flagged for the rules.
	for _, line := range []string{rspamdtest.GTUBEAddHeader, rspamdtest.GTUBERewriteSubject} {
		if err := sendMail(h.addr, "alice@sender.test", "support@example.test", spamMsg(line)); err != nil {
			t.Fatalf("%.4s…: %v", line, err)
		}
		m := h.rec.mails[h.rec.count()-1]
		if !m.Auth.Quarantine || !m.Spam.OK() || m.Spam.Action == inbound.SpamActionNone {
			t.Errorf("%.4s…: quarantine %v, spam %+v; want flagged", line, m.Auth.Quarantine, m.Spam)
		}
	}

	// Not enforced: GTUBE is accepted, flagged.
	h2 := start(t, withRspamd(t, rs.URL, false, false))
	if err := sendMail(h2.addr, "alice@sender.test", "support@example.test", spamMsg(rspamdtest.GTUBE)); err != nil {
		t.Fatalf("GTUBE without enforcement: %v", err)
	}
	if m := h2.rec.mails[0]; m.Spam.Action != inbound.SpamActionReject || !m.Auth.Quarantine {
		t.Errorf("GTUBE without enforcement: spam %+v, quarantine %v", m.Spam, m.Auth.Quarantine)
	}
}

// TestSpamRspamdStopped: rspamd goes away mid-run. With on_error accept
// the message is accepted with spam.result "error"; with defer the sender
// hears 451 4.4.3 and nothing is committed.
func TestSpamRspamdStopped(t *testing.T) {
	rs := rspamdtest.Start(t)
	accept := start(t, withRspamd(t, rs.URL, true, false))
	deferring := start(t, withRspamd(t, rs.URL, true, true))
	if err := sendMail(accept.addr, "alice@sender.test", "support@example.test", spamMsg("one")); err != nil {
		t.Fatalf("before stop: %v", err)
	}
	if !accept.rec.mails[0].Spam.OK() {
		t.Fatalf("before stop: spam = %+v", accept.rec.mails[0].Spam)
	}
	rs.Stop()

	if err := sendMail(accept.addr, "alice@sender.test", "support@example.test", spamMsg("two")); err != nil {
		t.Fatalf("after stop, on_error accept: %v", err)
	}
	if s := accept.rec.mails[1].Spam; s == nil || s.Result != inbound.SpamResultError || s.Error == "" {
		t.Errorf("after stop: spam = %+v, want result error", s)
	}
	err := sendMail(deferring.addr, "alice@sender.test", "support@example.test", spamMsg("three"))
	if !isReply(err, 451, "4.4.3") {
		t.Fatalf("after stop, on_error defer: %v, want 451 4.4.3", err)
	}
	if deferring.rec.count() != 0 {
		t.Error("a deferred message was committed")
	}
}

// fixedChecker answers every check with one verdict or error.
type fixedChecker struct {
	res *inbound.Spam
	err error
	req *rspamd.Request
}

func (f *fixedChecker) Check(ctx context.Context, req *rspamd.Request, body io.Reader, size int64) (*inbound.Spam, error) {
	f.req = req
	io.Copy(io.Discard, body)
	return f.res, f.err
}

// TestSpamActions checks each action's reply, with and without
// enforcement.
func TestSpamActions(t *testing.T) {
	for _, tc := range []struct {
		action      string
		enforce     bool
		code        int
		enhanced    string
		quarantined bool
	}{
		{inbound.SpamActionReject, true, 550, "5.7.1", false},
		{inbound.SpamActionDiscard, true, 550, "5.7.1", false},
		{inbound.SpamActionQuarantine, true, 250, "", true},
		{"custom action", true, 250, "", false},
		{inbound.SpamActionSoftReject, true, 451, "4.7.1", false},
		{inbound.SpamActionGreylist, true, 451, "4.7.1", false},
		{inbound.SpamActionAddHeader, true, 250, "", true},
		{inbound.SpamActionRewriteSubject, true, 250, "", true},
		{inbound.SpamActionNone, true, 250, "", false},
		{inbound.SpamActionReject, false, 250, "", true},
		{inbound.SpamActionSoftReject, false, 250, "", false},
		{inbound.SpamActionGreylist, false, 250, "", false},
	} {
		f := &fixedChecker{res: &inbound.Spam{Result: "ok", Action: tc.action, Score: 5, RequiredScore: 15}}
		h := start(t, func(o *Options) { o.Spam = &SpamOptions{Checker: f, Enforce: tc.enforce} })
		err := sendMail(h.addr, "alice@sender.test", "support@example.test", simpleMsg)
		if tc.code != 250 {
			if !isReply(err, tc.code, tc.enhanced) || h.rec.count() != 0 {
				t.Errorf("%q enforce=%v: %v, committed %d; want %d %s", tc.action, tc.enforce, err, h.rec.count(), tc.code, tc.enhanced)
			}
			continue
		}
		if err != nil {
			t.Errorf("%q enforce=%v: %v, want accepted", tc.action, tc.enforce, err)
			continue
		}
		if q := h.rec.mails[0].Auth.Quarantine; q != tc.quarantined {
			t.Errorf("%q enforce=%v: quarantine %v, want %v", tc.action, tc.enforce, q, tc.quarantined)
		}
		if r := f.req; r.IP != "127.0.0.1" || r.Helo != "localhost" || r.MailFrom != "alice@sender.test" ||
			len(r.Rcpts) != 1 || r.QueueID != h.rec.mails[0].ID || r.Auth == nil {
			t.Errorf("request = %+v", r)
		}
	}
	// A checker error with on_error accept.
	f := &fixedChecker{err: errors.New("rspamd: connection refused")}
	h := start(t, func(o *Options) { o.Spam = &SpamOptions{Checker: f, Enforce: true} })
	if err := sendMail(h.addr, "alice@sender.test", "support@example.test", simpleMsg); err != nil {
		t.Fatalf("checker error, on_error accept: %v", err)
	}
	if s := h.rec.mails[0].Spam; s.Result != "error" || !strings.Contains(s.Error, "refused") || s.Symbols == nil {
		t.Errorf("checker error: spam = %+v", s)
	}
}

// TestSpamBigMessageStreams sends a 10 MB message through DATA with a real
// rspamd and without one: the check must not hold the message in memory,
// so what the process allocates grows by less than the message's size.
func TestSpamBigMessageStreams(t *testing.T) {
	rs := rspamdtest.Start(t)
	// Parsing 10 MB under the race detector on a loaded machine can take
	// longer than the default bound; this test is about memory.
	slow := func(o *Options) { o.Limits.VerifyTimeout = 10 * time.Minute }
	spam := withRspamd(t, rs.URL, true, false)
	with := start(t, func(o *Options) { slow(o); spam(o) })
	without := start(t, slow)
	var b strings.Builder
	b.WriteString("From: a@sender.test\r\nTo: support@example.test\r\nSubject: big\r\n\r\n")
	line := strings.Repeat("abcdefghij", 7) + "\r\n"
	for b.Len() < 10<<20 {
		b.WriteString(line)
	}
	msg := b.String()
	send := func(h *harness) uint64 {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		if err := smtp.SendMail(h.addr, nil, "a@sender.test", []string{"support@example.test"}, []byte(msg)); err != nil {
			t.Fatalf("10 MB message: %v", err)
		}
		runtime.ReadMemStats(&after)
		return after.TotalAlloc - before.TotalAlloc
	}
	send(with) // warm up both paths (pools, connections)
	send(without)
	// What else the process allocates meanwhile (the harness's
	// goroutines, the runtime) moves a single figure by about a megabyte
	// either way: each path's least of three is its own cost.
	a, b0 := uint64(math.MaxUint64), uint64(math.MaxUint64)
	for range 3 {
		a, b0 = min(a, send(with)), min(b0, send(without))
	}
	if !with.rec.mails[len(with.rec.mails)-1].Spam.OK() {
		t.Fatalf("10 MB message: spam = %+v", with.rec.mails[len(with.rec.mails)-1].Spam)
	}
	t.Logf("allocated %d bytes with rspamd, %d without, for a %d-byte message", a, b0, len(msg))
	// Streamed, the check costs its buffers; a copy would cost the size.
	if a > b0+uint64(len(msg))/10 {
		t.Errorf("with rspamd the message cost %d bytes more than without; want under a tenth of its size %d", a-b0, len(msg))
	}
}
