package inbound

import (
	"bytes"
	"encoding/json"
	"os"
	"reflect"
	"testing"
	"time"

	"github.com/mailhook/mailhook/parse"
	"github.com/mailhook/mailhook/replyaddr"
)

// fullMail has every field set, those left out of the JSON included.
func fullMail() *Mail {
	return &Mail{
		ID:         "01JEXAMPLE0000000000000000",
		StableID:   "st_5e1d4c0ffee",
		ReceivedAt: time.Date(2026, 12, 4, 18, 30, 15, 123456789, time.UTC),
		Envelope: Envelope{MailFrom: "alice@sender.example", RcptTo: []string{"support@example.test", "reply+x@example.test"},
			ClientIP: "203.0.113.5", Helo: "mx.sender.example", TLS: true},
		Auth: &Auth{
			SPF: SPFResult{Result: Pass, Domain: "sender.example", Identity: "mailfrom"},
			DKIM: []DKIMResult{{Result: Pass, Domain: "sender.example", Selector: "s1"},
				{Result: PermError, Domain: "other.example", Selector: "s2", Error: "no key"}},
			DMARC:                 DMARCResult{Result: Fail, Policy: "quarantine", Domain: "sender.example"},
			AuthenticationResults: "mx.example.test; spf=pass smtp.mailfrom=sender.example",
			Quarantine:            true,
		},
		Message: &parse.Message{MessageID: "<m1@sender.example>", Subject: "Hello",
			From:        &parse.Address{Name: "Alice", Address: "alice@sender.example"},
			Headers:     [][2]string{{"Subject", "Hello"}},
			Attachments: []parse.Attachment{{Filename: "a.pdf", ContentType: "application/pdf", Size: 3, URL: "https://mx.example.test/attachments/x/0"}}},
		Reply:     &replyaddr.Result{Thread: "t-42", Valid: true, Expired: false},
		ReplyRcpt: "reply+x@example.test",
		Spam: &Spam{Result: SpamResultOK, Score: 6.5, RequiredScore: 15, Action: SpamActionAddHeader,
			Symbols: []SpamSymbol{{Name: "BAYES_SPAM", Score: 5.1}}, Error: "none"},
		RawPath: "/var/spool/mailhook/x.eml",
		Raw:     []byte("Subject: Hello\r\n\r\nhi\r\n"),
		RawSize: 2048,
	}
}

// TestMailJSON: the JSON form of a Mail with every field set is the one
// route.Mail, auth.Results and rspamd.Result had before they moved here
// (testdata/mail.json was written by that code): queues hold Mail as JSON,
// and the webhook payload carries its parts. Decoding it gives the Mail
// back, less the fields kept out of the JSON.
func TestMailJSON(t *testing.T) {
	m := fullMail()
	got, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	want, err := os.ReadFile("testdata/mail.json")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(bytes.TrimSpace(got), bytes.TrimSpace(want)) {
		t.Errorf("json.Marshal(Mail) =\n%s\nwant (testdata/mail.json)\n%s", got, want)
	}
	var back Mail
	if err := json.Unmarshal(want, &back); err != nil {
		t.Fatal(err)
	}
	m.RawPath, m.Raw = "", nil
	if !reflect.DeepEqual(&back, m) {
		t.Errorf("json.Unmarshal(testdata/mail.json) =\n%+v\nwant\n%+v", &back, m)
	}
}
