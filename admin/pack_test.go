package admin

import (
	"bytes"
	"encoding/json"
	"io"
	"strings"
	"testing"

	"github.com/mailhook/mailhook/deliver"
	bolt "go.etcd.io/bbolt"
)

// TestHistoryPacked: a message's raw copy, parsed copy and webhook body
// are kept compressed and read back as they were; values written before
// (uncompressed) still read.
func TestHistoryPacked(t *testing.T) {
	a := openActivity(t, nil)
	var body strings.Builder
	for i := range 300 {
		body.WriteString("Line " + string(rune('a'+i%26)) + " of the report: the printer on floor 3 is out of toner again.\r\n")
	}
	raw := "From: alice@example.org\r\nTo: support@example.test\r\nSubject: toner\r\n\r\n" + body.String()
	mail, jobs := accept(t, nil, nil, mailOpts{id: "p1", raw: raw})
	mail.Raw, mail.RawPath = []byte(raw), "" // held in memory: the raw copy goes into the database
	if err := a.RecordAccepted(mail, nil, jobs); err != nil {
		t.Fatal(err)
	}
	sent, _ := json.Marshal(map[string]any{"type": "message.received", "message": mail.Message})
	if err := a.RecordAttempt(jobs[0], deliver.Attempt{Status: 200, Body: sent}, deliver.SettleDelivered); err != nil {
		t.Fatal(err)
	}
	var stored [3][]byte
	a.db.View(func(tx *bolt.Tx) error {
		stored[0] = bytes.Clone(tx.Bucket(bRawMsg).Get([]byte("p1")))
		stored[1] = bytes.Clone(tx.Bucket(bParsed).Get([]byte("p1")))
		stored[2] = bytes.Clone(sentBody(tx.Bucket(bSent), "p1", jobs[0].ID))
		return nil
	})
	stored[2] = stored[2][8:]
	for i, want := range []int{len(raw), len(mail.Message.Text), len(sent)} {
		if !bytes.HasPrefix(stored[i], []byte("\x00mhz")) || len(stored[i]) > want/2 {
			t.Errorf("value %d: %d bytes stored for %d, want it compressed", i, len(stored[i]), want)
		}
	}
	d, err := a.Message("p1")
	if err != nil {
		t.Fatal(err)
	}
	if d.Message.Text != mail.Message.Text || string(d.Jobs[0].Sent) != string(sent) {
		t.Errorf("read back: text %d bytes (want %d), sent %d bytes (want %d)", len(d.Message.Text), len(mail.Message.Text), len(d.Jobs[0].Sent), len(sent))
	}
	rc, err := a.OpenRaw("p1")
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(rc)
	rc.Close()
	if string(got) != raw {
		t.Errorf("OpenRaw read %d bytes, want the %d received", len(got), len(raw))
	}
	// As an earlier version kept them: as they are.
	enc, _ := deliver.EncodeMessage(mail.Message)
	a.db.Update(func(tx *bolt.Tx) error {
		tx.Bucket(bRawMsg).Put([]byte("p1"), []byte(raw))
		return tx.Bucket(bParsed).Put([]byte("p1"), enc)
	})
	if d, err := a.Message("p1"); err != nil || d.Message.Text != mail.Message.Text {
		t.Errorf("uncompressed parsed copy: %v", err)
	}
	if rc, err := a.OpenRaw("p1"); err == nil {
		got, _ = io.ReadAll(rc)
		rc.Close()
	}
	if string(got) != raw {
		t.Errorf("uncompressed raw copy read %d bytes, want %d", len(got), len(raw))
	}
}
