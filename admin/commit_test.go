package admin

import (
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/mailhook/mailhook/deliver"
	"github.com/mailhook/mailhook/internal/testenv"
	"github.com/mailhook/mailhook/parse"
)

// openLogged opens an activity store under dir whose log is returned.
func openLogged(t *testing.T, dir string) (*Activity, *testenv.Buffer) {
	t.Helper()
	var logs testenv.Buffer
	a, err := OpenActivity(dir, ActivityOptions{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatalf("OpenActivity = %v", err)
	}
	t.Cleanup(func() { a.Close() })
	return a, &logs
}

// TestCommitFailedRecordAlone: a record that cannot be written is logged
// and the records handed in with it are written all the same.
func TestCommitFailedRecordAlone(t *testing.T) {
	a, logs := openLogged(t, t.TempDir())
	good, jobs := accept(t, nil, nil, mailOpts{id: "good"})
	bad, _ := accept(t, nil, nil, mailOpts{id: "bad"})
	if err := a.RecordAccepted(good, nil, jobs); err != nil {
		t.Fatal(err)
	}
	// A job without an id: its bJobs key is refused by the store.
	if err := a.RecordAccepted(bad, nil, []*deliver.Job{{MsgID: "bad", Kind: deliver.KindWebhook}}); err != nil {
		t.Fatal(err)
	}
	if err := a.RecordAttempt(jobs[0], deliver.Attempt{Status: 200}, deliver.SettleDelivered); err != nil {
		t.Fatal(err)
	}
	d, err := a.Message("good")
	if err != nil || d.Status != StatusDelivered || d.Subject != "hello good" {
		t.Fatalf("Message(good) = %+v, %v; want it delivered", d, err)
	}
	if _, err := a.Message("bad"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Message(bad) = %v, want ErrNotFound", err)
	}
	if l := logs.String(); !strings.Contains(l, "record accepted bad") {
		t.Errorf("log %q does not name the record that failed", l)
	}
}

// TestCommitPanicRecovered: a record that panics is logged with its stack
// and the others are written.
func TestCommitPanicRecovered(t *testing.T) {
	a, logs := openLogged(t, t.TempDir())
	if err := a.db.c.add(&writeOp{what: "boom", fn: func(*wbatch, *writeOp) error { panic("boom in a record") }}); err != nil {
		t.Fatal(err)
	}
	accept(t, nil, a, mailOpts{id: "m1"})
	if _, err := a.Message("m1"); err != nil {
		t.Fatalf("Message(m1) = %v", err)
	}
	if l := logs.String(); !strings.Contains(l, "boom in a record") || !strings.Contains(l, "commit_test.go") {
		t.Errorf("log %q lacks the panic or its stack", l)
	}
}

// TestCommitMergesOneMessage: an attempt handed in before its message's
// acceptance, a second acceptance and a replay, all pending together,
// end as they do one transaction each.
func TestCommitMergesOneMessage(t *testing.T) {
	a := openActivity(t, nil)
	mail, jobs := accept(t, nil, nil, mailOpts{id: "m1"})
	a.RecordAttempt(jobs[0], deliver.Attempt{Status: 500}, deliver.SettleRetry)
	a.RecordAccepted(mail, nil, jobs)
	again := *mail
	again.Envelope.MailFrom = "second@example.org"
	a.RecordAccepted(&again, nil, jobs)
	a.RecordAttempt(jobs[0], deliver.Attempt{Status: 200}, deliver.SettleDelivered)
	if err := a.RecordReplayed(jobs[0].ID); err != nil {
		t.Fatalf("RecordReplayed = %v", err)
	}
	d, err := a.Message("m1")
	if err != nil {
		t.Fatal(err)
	}
	if d.MailFrom != mail.Envelope.MailFrom || d.Subject != "hello m1" || len(d.Jobs) != 1 ||
		len(d.Jobs[0].Attempts) != 2 || d.Status != StatusQueued || len(d.Timeline) != 4 {
		t.Errorf("Message = %+v; want the first acceptance, two attempts, replayed", d)
	}
	page, _, err := a.Messages(Query{})
	if err != nil || len(page) != 1 || page[0].ID != "m1" || page[0].Subject != "hello m1" {
		t.Errorf("Messages = %+v, %v; want m1 once", page, err)
	}
	var cell seriesCell
	a.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bSeries).ForEach(func(_, v []byte) error {
			var c seriesCell
			_ = json.Unmarshal(v, &c)
			cell.Accepted += c.Accepted
			cell.Delivered += c.Delivered
			cell.Failed += c.Failed
			return nil
		})
	})
	if cell.Accepted != 1 || cell.Delivered != 1 || cell.Failed != 1 {
		t.Errorf("series = %+v, want 1 accepted, 1 delivered, 1 failed", cell)
	}
	if err := a.RecordDropped("no-such-job"); !errors.Is(err, ErrNotFound) {
		t.Errorf("RecordDropped(unknown) = %v, want ErrNotFound", err)
	}
}

// TestCloseWritesPending: Close writes the records still pending; a store
// opened again has them, and a closed store takes no more.
func TestCloseWritesPending(t *testing.T) {
	dir := t.TempDir()
	a, err := OpenActivity(dir, ActivityOptions{})
	if err != nil {
		t.Fatal(err)
	}
	accept(t, nil, a, mailOpts{id: "m1"})
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	if err := a.RecordRefused(Refused{Reason: "late"}); err == nil {
		t.Error("RecordRefused after Close = nil, want an error")
	}
	b, _ := openLogged(t, dir)
	if d, err := b.Message("m1"); err != nil || d.Subject != "hello m1" {
		t.Errorf("Message(m1) after reopening = %+v, %v", d, err)
	}
}

// TestParsedStrippedOnce: a stripped text that is the start of the text is
// not kept twice, and reads back whole; one that is not is kept as it is.
func TestParsedStrippedOnce(t *testing.T) {
	a := openActivity(t, nil)
	body := strings.Repeat("The printer is on fire.\r\n", 400)
	reply := "From: alice@example.org\r\nSubject: re\r\n\r\n" + body + "\r\nOn Mon, Bob wrote:\r\n> old\r\n"
	m, _ := accept(t, nil, a, mailOpts{id: "reply", raw: reply})
	if m.Message.StrippedText == "" || m.Message.StrippedText == m.Message.Text || !strings.HasPrefix(m.Message.Text, m.Message.StrippedText) {
		t.Fatalf("fixture: stripped text %d bytes is not a proper start of the text (%d bytes)", len(m.Message.StrippedText), len(m.Message.Text))
	}
	var stored []byte
	a.db.View(func(tx *bolt.Tx) error {
		stored = append(stored, tx.Bucket(bParsed).Get([]byte("reply"))...)
		return nil
	})
	if len(stored) > len(m.Message.Text)+2048 {
		t.Errorf("bParsed holds %d bytes for a %d-byte text; want the text once", len(stored), len(m.Message.Text))
	}
	d, err := a.Message("reply")
	if err != nil || d.Message.StrippedText != m.Message.StrippedText || d.Message.Text != m.Message.Text {
		t.Fatalf("Message = %v; stripped text read back differs", err)
	}
	// A value stored by an earlier version, plain JSON, still reads.
	old, _ := json.Marshal(&parse.Message{Text: "new text", StrippedText: "other"})
	a.db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bParsed).Put([]byte("reply"), old) })
	if d, err := a.Message("reply"); err != nil || d.Message.StrippedText != "other" || d.Message.Text != "new text" {
		t.Errorf("Message with an earlier version's parsed copy = %+v, %v", d.Message, err)
	}
}

// TestReadWaitsForRecords: a read issued while records are pending sees
// them all.
func TestReadWaitsForRecords(t *testing.T) {
	a := openActivity(t, nil)
	for i := range 50 {
		a.RecordRefused(Refused{At: time.Now(), Reason: "r", RemoteIP: "192.0.2." + string(rune('0'+i%10))})
	}
	if r, err := a.Refusals(time.Time{}, 100); err != nil || len(r) != 50 {
		t.Errorf("Refusals = %d, %v; want 50", len(r), err)
	}
}
