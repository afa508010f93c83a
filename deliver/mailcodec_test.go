package deliver

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"strings"
	"testing"

	"github.com/mailhook/mailhook/inbound"
	"github.com/mailhook/mailhook/parse"
)

// strippedForm is what the version before the bodies were stored as bytes
// wrote for mail whose stripped text (n bytes) starts its text.
func strippedForm(t *testing.T, mail *inbound.Mail, n int) []byte {
	c, mc := *mail, *mail.Message
	mc.StrippedText = ""
	c.Message = &mc
	js, err := json.Marshal(&c)
	if err != nil {
		t.Fatal(err)
	}
	return append(binary.AppendUvarint([]byte{strippedMark}, uint64(n)), js...)
}

// TestMailCodec: the bodies are stored as they are, once (a stripped text
// that starts the text is kept as its length), and read back whole,
// without changing the mail encoded; any other mail, and the forms of
// earlier versions, read back as they were.
func TestMailCodec(t *testing.T) {
	text := strings.Repeat("The printer is \"on fire\".\r\n", 100) + "On Mon, Bob wrote:\r\n> old\r\n"
	html := strings.Repeat("<p class=\"x\">caf\u00e9 &amp; \\ tea</p>\n", 50)
	cases := map[string]*inbound.Mail{
		"prefix":     {ID: "m1", Message: &parse.Message{Text: text, StrippedText: text[:2500], HTML: html}},
		"whole":      {ID: "m2", Message: &parse.Message{Text: text, StrippedText: text}},
		"not prefix": {ID: "m3", Message: &parse.Message{Text: "new", StrippedText: "other", HTML: html}},
		"empty":      {ID: "m4", Message: &parse.Message{Subject: "no bodies"}},
		"no message": {ID: "m5"},
	}
	for name, mail := range cases {
		before, _ := json.Marshal(mail)
		b, err := EncodeMail(mail)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if after, _ := json.Marshal(mail); string(after) != string(before) {
			t.Errorf("%s: EncodeMail changed the mail", name)
		}
		stored := [][]byte{b, before} // this version's form and the plain JSON
		if m := mail.Message; m != nil {
			if b[0] != bodiesMark || !bytes.Contains(b, []byte(m.Text)) || !bytes.Contains(b, []byte(m.HTML)) {
				t.Errorf("%s: the bodies are not stored as they are", name)
			}
			// The JSON less its copy of the stripped text bounds it.
			if limit := len(before) - len(m.StrippedText) + 64; StrippedPrefix(m) >= 0 && len(b) > limit {
				t.Errorf("%s: stored %d bytes, want the text once (at most %d)", name, len(b), limit)
			}
			if n := StrippedPrefix(m); n >= 0 {
				stored = append(stored, strippedForm(t, mail, n))
			}
		}
		for i, s := range stored {
			got, err := DecodeMail(s)
			if err != nil {
				t.Fatalf("%s: DecodeMail(form %d) = %v", name, i, err)
			}
			if g, _ := json.Marshal(got); string(g) != string(before) {
				t.Errorf("%s: form %d read back\n%s\nwant\n%s", name, i, g, before)
			}
		}
		// The history's parsed copy: the message alone.
		before, _ = json.Marshal(mail.Message)
		b, err = EncodeMessage(mail.Message)
		if err != nil {
			t.Fatalf("%s: EncodeMessage: %v", name, err)
		}
		got, err := DecodeMessage(b)
		if err != nil {
			t.Fatalf("%s: DecodeMessage = %v", name, err)
		}
		if g, _ := json.Marshal(got); string(g) != string(before) {
			t.Errorf("%s: message read back\n%s\nwant\n%s", name, g, before)
		}
	}
	for _, bad := range [][]byte{{strippedMark, 0xff}, {bodiesMark, 0}, {bodiesMark, 0, 5, 'a', 'b'}, {bodiesMark, 0, 0, 9, '<'}} {
		if _, err := DecodeMail(bad); err == nil {
			t.Errorf("DecodeMail(%q) = nil error", bad)
		}
		if _, err := DecodeMessage(bad); err == nil {
			t.Errorf("DecodeMessage(%q) = nil error", bad)
		}
	}
}

// BenchmarkEncodeMail100K: the queue's record of a 100 KB text message
// with an HTML part.
func BenchmarkEncodeMail100K(b *testing.B) {
	text := strings.Repeat("The printer is \"on fire\" again, see below.\r\n", 2400)
	mail := &inbound.Mail{ID: "m1", Message: &parse.Message{Text: text, StrippedText: text, HTML: "<p>" + text + "</p>"}}
	b.SetBytes(int64(len(text) * 2))
	for b.Loop() {
		v, err := EncodeMail(mail)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := DecodeMail(v); err != nil {
			b.Fatal(err)
		}
	}
}

// mail2K is a 2 KB text message as the SMTP listener hands it to the
// queue: envelope, verdicts, headers and body.
func mail2K() *inbound.Mail {
	text := strings.Repeat("Hello, the order 4711 shipped on Monday; tracking follows.\r\n", 34)
	from := &parse.Address{Name: "Alice Example", Address: "alice@sender.test"}
	return &inbound.Mail{
		ID: "0cn9ab3rq2v8gm1t5k7e4p6d0", StableID: "msg_3l1m8sd0f6j2c9qk4v7n5b8a1e",
		Envelope: inbound.Envelope{MailFrom: "alice@sender.test", RcptTo: []string{"support@example.test"}, ClientIP: "192.0.2.10", Helo: "mail.sender.test"},
		Auth: &inbound.Auth{
			SPF:                   inbound.SPFResult{Result: "pass", Domain: "sender.test"},
			DKIM:                  []inbound.DKIMResult{{Result: "pass", Domain: "sender.test", Selector: "s1"}},
			DMARC:                 inbound.DMARCResult{Result: "pass", Policy: "reject", Domain: "sender.test"},
			AuthenticationResults: "mx.example.test; spf=pass smtp.mailfrom=sender.test; dkim=pass header.d=sender.test; dmarc=pass header.from=sender.test",
		},
		Message: &parse.Message{
			MessageID: "<20261206.4711@sender.test>", Date: "2026-12-06T01:00:00Z", Subject: "Your order 4711 shipped",
			From: from, To: []parse.Address{{Address: "support@example.test"}},
			Headers: [][2]string{
				{"Received", "from mail.sender.test (mail.sender.test [192.0.2.10]) by mx.example.test with ESMTP id 0cn9ab3rq2v8gm1t5k7e4p6d0; Sun, 6 Dec 2026 01:00:00 +0000"},
				{"From", "Alice Example <alice@sender.test>"}, {"To", "support@example.test"},
				{"Subject", "Your order 4711 shipped"}, {"Date", "Sun, 6 Dec 2026 01:00:00 +0000"},
				{"Message-ID", "<20261206.4711@sender.test>"}, {"MIME-Version", "1.0"},
				{"Content-Type", "text/plain; charset=utf-8"},
			},
			Text: text, StrippedText: text,
		},
	}
}

// BenchmarkEncodeMail2K: the queue's record of a 2 KB text message, as
// each commit encodes it.
func BenchmarkEncodeMail2K(b *testing.B) {
	mail := mail2K()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := EncodeMail(mail); err != nil {
			b.Fatal(err)
		}
	}
}
