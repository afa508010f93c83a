package deliver

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/mailhook/mailhook/inbound"
	"github.com/mailhook/mailhook/parse"
)

// TestMailCodec: a stripped text that starts the text is stored once and
// read back whole, without changing the mail encoded; any other mail, and
// the plain JSON of earlier versions, reads back as it was.
func TestMailCodec(t *testing.T) {
	text := strings.Repeat("The printer is on fire.\r\n", 100) + "On Mon, Bob wrote:\r\n> old\r\n"
	cases := map[string]*inbound.Mail{
		"prefix":     {ID: "m1", Message: &parse.Message{Text: text, StrippedText: text[:2500], HTML: "<p>x</p>"}},
		"whole":      {ID: "m2", Message: &parse.Message{Text: text, StrippedText: text}},
		"not prefix": {ID: "m3", Message: &parse.Message{Text: "new", StrippedText: "other"}},
		"no message": {ID: "m4"},
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
		if n := StrippedPrefix(mail.Message); n >= 0 && (b[0] != strippedMark || len(b) > len(text)*3/2) {
			t.Errorf("%s: stored %d bytes for a %d-byte text, want the text once", name, len(b), len(text))
		}
		for _, stored := range [][]byte{b, before} { // the new form and an earlier version's
			got, err := DecodeMail(stored)
			if err != nil {
				t.Fatalf("%s: DecodeMail = %v", name, err)
			}
			if g, _ := json.Marshal(got); string(g) != string(before) {
				t.Errorf("%s: read back\n%s\nwant\n%s", name, g, before)
			}
		}
	}
	if _, err := DecodeMail([]byte{strippedMark, 0xff}); err == nil {
		t.Error("DecodeMail(bad length) = nil error")
	}
}
