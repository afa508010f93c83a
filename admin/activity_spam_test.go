package admin

import (
	"testing"
	"time"

	"github.com/mailhook/mailhook/inbound"
)

// TestActivityKeepsSpam: the dashboard shows rspamd's verdict beside the
// auth verdicts, from the message's record.
func TestActivityKeepsSpam(t *testing.T) {
	a := openActivity(t, nil)
	spam := &inbound.Spam{Result: "ok", Score: 7.5, RequiredScore: 15, Action: "add header",
		Symbols: []inbound.SpamSymbol{{Name: "GTUBE", Score: 7.5}}}
	m := &inbound.Mail{ID: "m1", ReceivedAt: time.Now(), Envelope: inbound.Envelope{RcptTo: []string{"support@example.test"}}, Spam: spam}
	if err := a.RecordAccepted(m, nil, nil); err != nil {
		t.Fatal(err)
	}
	d, err := a.Message("m1")
	if err != nil {
		t.Fatal(err)
	}
	if d.Spam == nil || d.Spam.Action != "add header" || d.Spam.Score != 7.5 || len(d.Spam.Symbols) != 1 {
		t.Errorf("Message(m1).Spam = %+v, want %+v", d.Spam, spam)
	}
}
