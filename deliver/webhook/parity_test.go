package webhook

import (
	"encoding/json"
	"testing"

	"github.com/mailhook/mailhook/replyaddr"
)

// TestParityFields: msg_id is the acceptance id, rcpt_tag the +tag of the
// job's recipient, and reply goes only to the deliveries for the reply
// address.
func TestParityFields(t *testing.T) {
	mail := testMail()
	mail.Envelope.RcptTo = []string{"support+billing@example.test", "reply+t-1.aaaaaaaaaaaaaaaaaaaa@example.test"}
	mail.Reply, mail.ReplyRcpt = &replyaddr.Result{Thread: "t-1", Valid: true}, "reply+t-1.aaaaaaaaaaaaaaaaaaaa@example.test"
	for _, c := range []struct {
		rcpts []string
		tag   string
		reply bool
	}{
		{[]string{"support+billing@example.test"}, "billing", false},
		{[]string{"reply+t-1.aaaaaaaaaaaaaaaaaaaa@example.test"}, "t-1.aaaaaaaaaaaaaaaaaaaa", true},
		{[]string{"plain@example.test"}, "", false},
		{nil, "billing", true}, // no job recipients: the envelope's
	} {
		job := testJob("x")
		job.Rcpts = c.rcpts
		b, err := BuildEvent(job, mail, nil)
		if err != nil {
			t.Fatal(err)
		}
		var ev struct {
			MsgID   string            `json:"msg_id"`
			Reply   *replyaddr.Result `json:"reply"`
			Message struct {
				RcptTag string `json:"rcpt_tag"`
			} `json:"message"`
		}
		if err := json.Unmarshal(b, &ev); err != nil {
			t.Fatal(err)
		}
		if ev.MsgID != mail.ID || ev.Message.RcptTag != c.tag || (ev.Reply != nil) != c.reply {
			t.Errorf("rcpts %v: msg_id %q, rcpt_tag %q, reply %+v; want %q, %q, reply %v", c.rcpts, ev.MsgID, ev.Message.RcptTag, ev.Reply, mail.ID, c.tag, c.reply)
		}
	}
}
