package webhook

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/mailhook/mailhook/deliver"
	"github.com/mailhook/mailhook/inbound"
	"github.com/mailhook/mailhook/parse"
)

// stdJSON is encoding/json's string, as the event had it before.
func stdJSON(t testing.TB, s string) []byte {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(s); err != nil {
		t.Fatal(err)
	}
	return bytes.TrimRight(b.Bytes(), "\n")
}

var jsonTextCases = []string{
	"", "plain", "a\"quote\" and \\ back", "line\r\nline\n", "\t\b\f\x00\x01\x1f\x7f",
	"<html>&amp;</html>", "héllo wörld ✓ 日本語", "bad \xff\xfe utf8 \xc3", "sep\u2028par\u2029end",
	"\xe2\x80", "12345678\"2345678\n", strings.Repeat("x", 7) + "é" + strings.Repeat("y", 9),
	"\xf0\x9f\x98\x80 emoji", "\xed\xa0\x80 surrogate",
}

// TestAppendJSONString: the same bytes as encoding/json for every byte
// value at every offset of the 16 bytes appendJSONString looks at in one
// step and of the 8-byte word after, and for the cases above.
func TestAppendJSONString(t *testing.T) {
	cases := append([]string(nil), jsonTextCases...)
	for c := 0; c < 256; c++ {
		for at := 0; at < 25; at++ {
			cases = append(cases, strings.Repeat("a", at)+string([]byte{byte(c)})+strings.Repeat("b", 24-at))
		}
	}
	for _, s := range cases {
		if got, want := appendJSONString([]byte("x"), s), append([]byte("x"), stdJSON(t, s)...); !bytes.Equal(got, want) {
			t.Fatalf("%q: got %s, encoding/json %s", s, got, want)
		}
	}
}

func FuzzAppendJSONString(f *testing.F) {
	for _, s := range jsonTextCases {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if got, want := appendJSONString(nil, s), stdJSON(t, s); !bytes.Equal(got, want) {
			t.Fatalf("%q: got %s, encoding/json %s", s, got, want)
		}
	})
}

// bigMail is a message whose bodies are written by appendJSONString.
func bigMail(text string) (*deliver.Job, *inbound.Mail) {
	m := &parse.Message{
		Subject: "big \x00" + placeholderTag[1:] + "0", // looks like a placeholder, is not one
		Text:    text, StrippedText: text,
		HTML:         "<p>" + text + "</p>",
		StrippedHTML: "<p>" + text[:len(text)/2] + "</p>",
		Headers:      [][2]string{{"Subject", "big"}},
	}
	mail := &inbound.Mail{ID: "m1", StableID: "s1", ReceivedAt: time.Unix(1700000000, 0),
		Envelope: inbound.Envelope{MailFrom: "a@example.net", RcptTo: []string{"b@example.test"}}, Message: m}
	return &deliver.Job{ID: "j1", MsgID: "m1", Route: "r"}, mail
}

// TestMarshalHeadBodies: the event with its bodies written in by
// marshalHead is what encoding/json makes of the whole event, raw or not,
// and the mail is left as it was.
func TestMarshalHeadBodies(t *testing.T) {
	text := strings.Repeat("Ligne « une », \"deux\"\tet \\ trois\r\n\xff\u2028", 200)
	job, mail := bigMail(text)
	before := *mail.Message
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(newEvent(job, mail)); err != nil {
		t.Fatal(err)
	}
	want := bytes.TrimRight(b.Bytes(), "\n")
	got, err := marshalHead(newEvent(job, mail), false)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("marshalHead differs from encoding/json: %d vs %d bytes", len(got), len(want))
	}
	gotRaw, err := marshalHead(newEvent(job, mail), true)
	if err != nil {
		t.Fatal(err)
	}
	if wantRaw := append(want[:len(want)-1:len(want)-1], rawOpen...); !bytes.Equal(gotRaw, wantRaw) {
		t.Fatal("marshalHead with raw differs")
	}
	if m := mail.Message; m.Text != before.Text || m.HTML != before.HTML || m.StrippedText != before.StrippedText || m.StrippedHTML != before.StrippedHTML {
		t.Fatal("marshalHead changed the mail")
	}
}

// BenchmarkMarshalHead100K: the event of a 100 KB plain-text message.
func BenchmarkMarshalHead100K(b *testing.B) {
	line := "A line of an ordinary message, of words and a few numbers like 42.\r\n"
	job, mail := bigMail(strings.Repeat(line, 100<<10/len(line)))
	mail.Message.HTML, mail.Message.StrippedHTML = "", ""
	b.SetBytes(100 << 10)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := marshalHead(newEvent(job, mail), false); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkAppendJSONString100K against encoding/json on the same text.
func BenchmarkAppendJSONString100K(b *testing.B) {
	line := "A line of an ordinary message, of words and a few numbers like 42.\r\n"
	s := strings.Repeat(line, 100<<10/len(line))
	b.SetBytes(int64(len(s)))
	b.Run("ours", func(b *testing.B) {
		buf := make([]byte, 0, 2*len(s))
		for b.Loop() {
			buf = appendJSONString(buf[:0], s)
		}
	})
	b.Run("encoding-json", func(b *testing.B) {
		var buf bytes.Buffer
		enc := json.NewEncoder(&buf)
		enc.SetEscapeHTML(false)
		for b.Loop() {
			buf.Reset()
			enc.Encode(s)
		}
	})
}
