package parse

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	netmail "net/mail"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/mailhook/mailhook/internal/testenv"
)

// corpusDir is the MIME sample corpus in the team's shared/ folder.
func corpusDir(t testing.TB) string {
	t.Helper()
	return testenv.Shared(t, "conformance/mime")
}

func corpusFiles(t testing.TB) []string {
	t.Helper()
	dir := corpusDir(t)
	var files []string
	for _, pat := range []string{"*/*/*.raw", "*/*/*.eml"} {
		m, err := filepath.Glob(filepath.Join(dir, pat))
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, m...)
	}
	if len(files) == 0 {
		t.Fatalf("no corpus under %s", dir)
	}
	return files
}

func parseString(t testing.TB, s string) *Message {
	t.Helper()
	return parseOpts(t, s, Options{})
}

func parseOpts(t testing.TB, s string, o Options) *Message {
	t.Helper()
	m, err := Parse(strings.NewReader(s), o)
	if err != nil {
		t.Fatalf("Parse = %v, want no error", err)
	}
	checkInvariants(t, m)
	return m
}

// checkInvariants holds for every parse: valid UTF-8 everywhere, JSON
// round trip unchanged, non-nil lists, a consistent attachment.
func checkInvariants(t testing.TB, m *Message) {
	t.Helper()
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatalf("json.Marshal = %v", err)
	}
	var back Message
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatalf("json.Unmarshal = %v", err)
	}
	if !reflect.DeepEqual(&back, m) {
		t.Errorf("JSON round trip changed the message:\n%+v\n%+v", m, &back)
	}
	strs := []string{m.MessageID, m.InReplyTo, m.Date, m.Subject, m.Text, m.HTML, m.StrippedText}
	strs = append(strs, m.References...)
	strs = append(strs, m.Warnings...)
	for _, h := range m.Headers {
		strs = append(strs, h[0], h[1])
	}
	for _, l := range [][]Address{m.To, m.Cc, m.ReplyTo} {
		for _, a := range l {
			strs = append(strs, a.Name, a.Address)
		}
	}
	parts := map[string]bool{}
	for _, a := range m.Attachments {
		strs = append(strs, a.Filename, a.ContentType, a.ContentID)
		if len(a.SHA256) != 64 {
			t.Errorf("attachment %q sha256 = %q", a.Filename, a.SHA256)
		}
		if a.Content != "" {
			raw, err := base64.StdEncoding.DecodeString(a.Content)
			if err != nil || int64(len(raw)) != a.Size {
				t.Errorf("attachment %q content: %d bytes, %v; size %d", a.Filename, len(raw), err, a.Size)
			}
			if sum := sha256.Sum256(raw); hex.EncodeToString(sum[:]) != a.SHA256 {
				t.Errorf("attachment %q sha256 does not match content", a.Filename)
			}
		}
		if a.Disposition != "inline" && a.Disposition != "attachment" {
			t.Errorf("attachment %q disposition %q", a.Filename, a.Disposition)
		}
		if !partRE.MatchString(a.Part) || parts[a.Part] {
			t.Errorf("attachment %q part %q: not a part number, or another attachment's", a.Filename, a.Part)
		}
		parts[a.Part] = true
	}
	for _, s := range strs {
		if !utf8.ValidString(s) {
			t.Errorf("invalid UTF-8 in %q", s)
		}
	}
	if m.References == nil || m.To == nil || m.Cc == nil || m.ReplyTo == nil || m.Headers == nil || m.Attachments == nil {
		t.Errorf("nil list in %+v", m)
	}
}

func TestCorpusParses(t *testing.T) {
	for _, f := range corpusFiles(t) {
		t.Run(filepath.Base(filepath.Dir(f))+"/"+filepath.Base(f), func(t *testing.T) {
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			m := parseString(t, string(b))
			if hasWarning(m, "no header") {
				return // the first line is not a field (package header's rule)
			}
			// Every header field of the sample is listed.
			if hdr, _, ok := strings.Cut(strings.ReplaceAll(string(b), "\r\n", "\n"), "\n\n"); ok && len(m.Headers) == 0 && strings.Contains(hdr, ": ") && !strings.HasPrefix(hdr, "//") {
				t.Errorf("no headers parsed")
			}
			// Fields the sample's header has are filled.
			hdr, _, _ := strings.Cut(strings.ReplaceAll(string(b), "\r\n", "\n"), "\n\n")
			has := func(name string) bool {
				return strings.HasPrefix(strings.ToLower(hdr), strings.ToLower(name)+":") ||
					strings.Contains(strings.ToLower(hdr), "\n"+strings.ToLower(name)+":")
			}
			if has("Subject") && m.Subject == "" && !strings.Contains(hdr, "Subject: \n") {
				t.Errorf("subject empty")
			}
			if has("From") && m.From == nil {
				t.Errorf("from empty")
			}
			if has("To") && len(m.To) == 0 {
				t.Errorf("to empty")
			}
			if has("Message-ID") && m.MessageID == "" {
				t.Errorf("message_id empty")
			}
			if has("Date") && m.Date == "" && !hasWarning(m, "unparseable Date") {
				t.Errorf("date empty without a warning")
			}
			if len(b) > len(hdr)+10 && m.Text == "" && m.HTML == "" && len(m.Attachments) == 0 && len(m.Warnings) == 0 {
				t.Errorf("body lost without a warning")
			}
			// Parsing is deterministic.
			if m2 := parseString(t, string(b)); !reflect.DeepEqual(m, m2) {
				t.Errorf("second parse differs")
			}
		})
	}
}

type attWant struct {
	filename, ctype, disp, cid string
	size                       int64
}

// Expected values for samples of the corpus, read from the files.
var corpusWant = []struct {
	file                        string
	id, date, subject, from, to string
	text, html                  string // substrings
	atts                        []attWant
	warn                        string // substring of some warning
	noWarnings                  bool
}{
	{file: "enmime/mail/html-mime-inline.raw", id: "4E2E5A48-1A2C-4450-8663-D41B451DA93E@makita.skynet", date: "2012-10-13T15:33:07-07:00",
		subject: "MIME test 1", from: "James Hillyerd <james@makita.skynet>", to: "greg@nobody.com", text: "Test of text section", html: "<html><head></head><body",
		atts: []attWant{{"favicon.png", "image/png", "inline", "8B8481A2-25CA-4886-9B5A-8EB9115DD064@skynet", 687}}, noWarnings: true},
	{file: "enmime/mail/attachment.raw", subject: "Attachment", text: "A text section",
		atts: []attWant{{"test.html", "text/html", "attachment", "", 7}}, noWarnings: true},
	{file: "enmime/mail/attachment-only-inline.raw", id: "56A0AA5F.4020203@test.com", date: "2016-01-21T10:52:31+01:00", from: "<alice@test.com>", to: "bob@test.com",
		atts: []attWant{{"favicon.jpg", "image/jpeg", "inline", "", 687}}},
	{file: "enmime/mail/attachment-only-text-attachment.raw", atts: []attWant{{"test.csv", "text/plain", "attachment", "", 10}}},
	{file: "enmime/mail/qp-utf8-header.raw", subject: "MIME UTF8 Test ¢ More Text", to: "Mirosław Marczak <marczak@inbucket.com>", text: "Lorem ipsum dolor sit amet"},
	{file: "enmime/mail/qp-ascii-header.raw", subject: "Test QP Subject!"},
	{file: "enmime/mail/mime-signed.raw", subject: "Multipart Signed", text: "Section one\nSection two", atts: []attWant{{"signature.asc", "application/pgp-signature", "attachment", "", 828}}},
	{file: "enmime/mail/other-multi-related.raw", text: "Plain text.", html: "<i>HTML text.</i>",
		atts: []attWant{{"image001.png", "image/png", "inline", "image001.png@01D3BA12.F6C6AEB0", 687}, {"image002.png", "image/png", "inline", "image002.png@01D3BA12.F6C6AEB0", 687}}},
	{file: "enmime/mail/mime-bad-8bit-filename.raw", atts: []attWant{{"管理.doc", "application/msword", "attachment", "", 7}}},
	{file: "enmime/mail/mime-duplicate-param.raw", atts: []attWant{{"Invoice_302232133150612.pdf", "application/pdf", "attachment", "", 522}}},
	{file: "enmime/mail/mime-bad-content-type.raw", atts: []attWant{{"Invoice_302232133150612.pdf", "application/pdf", "attachment", "", 522}}, warn: "malformed Content-Type"},
	{file: "enmime/mail/malformed-multiple-address-header-values.raw", from: "<bob@extern>", to: "alice@intern", text: "Simple text."},
	{file: "enmime/mail/multipart-wo-boundary.raw", text: "I'm  multipart message without boundary", warn: "without boundary"},
	{file: "enmime/mail/erroneous.raw", text: "// Not an RFC-822 Document", warn: "no header"},
	{file: "enmime/mail/html-only-inline.raw", text: "Test of HTML section", html: "Test of HTML section"},
	{file: "enmime/low-quality/malformed-base64-attach.raw", atts: []attWant{{"some.doc", "application/msword", "attachment", "", 3}}, warn: "malformed base64"},
	{file: "enmime/low-quality/unk-charset-part.raw", text: "A text section", warn: `unknown charset "fakescii"`},
	{file: "enmime/low-quality/unk-encoding-part.raw", atts: []attWant{{"foo_9E5D72.zip", "application/x-zip-compressed", "attachment", "", 13}}, warn: "unknown transfer encoding"},
	{file: "enmime/low-quality/bad-header-start.raw", warn: "no header"}, // a first line that is folded is not a field: no header (package header's rule)
	{file: "enmime/low-quality/incorrect-charset.raw", text: "∮ E⋅da = Q"},
	{file: "enmime/low-quality/bad-final-boundary.raw", text: "A text section", atts: []attWant{{"foo_9E5D72.zip", "application/x-zip-compressed", "attachment", "", 7}}, warn: "closing boundary missing"},
	{file: "enmime/parts/multi-malformed.raw", text: "Section one\nSection two", warn: "malformed part"},
	{file: "enmime/parts/nestedmulti.raw", text: "A text section", html: "An HTML section",
		atts: []attWant{{"attach.txt", "text/plain", "inline", "", 25}, {"attach2.txt", "text/plain", "inline", "", 30}}},
	{file: "enmime/parts/similar-boundary.raw", text: "Section one\nA text section", html: "An HTML section"},
	{file: "enmime/parts/chardet-success-iso-8859-1.raw", text: "Drachenköpfe"},
	{file: "enmime/parts/quoted-printable.raw", text: "Start=ABC=Finish"},
	{file: "enmime/parts/missing-ctype-root.raw", text: "content type defaults to text/plain"},
	{file: "stalwart-mail-parser/rfc/000.eml", date: "1994-10-07T16:15:05-07:00", subject: "A multipart example", from: "Nathaniel Borenstein <nsb@nsb.fv.com>", to: "Ned Freed <ned@innosoft.com>",
		text: "... Some text appears here ..."},
	{file: "stalwart-mail-parser/rfc/001.eml", id: "id1@host.com", subject: "whatever", warn: "unparseable Date"},
	{file: "stalwart-mail-parser/rfc/002.eml", subject: "[Fwd: Map of Argentina with Description]", from: "Al Gore <vice-president@whitehouse.gov>",
		to: "White House Transportation Coordinator <transport@whitehouse.gov>", text: "Fire up Air Force One!",
		atts: []attWant{{"Map of Argentina with Description.eml", "message/rfc822", "inline", "", 1979}, {"map_of_Argentina.gif", "image/gif", "inline", "", 288}}},
	{file: "stalwart-mail-parser/rfc/003.eml", date: "1993-03-22T09:41:09-08:00", text: "... plain text version of message goes here ...",
		atts: []attWant{{"", "text/enriched", "attachment", "", 69}, {"", "application/x-whatever", "attachment", "", 51}}},
	{file: "stalwart-mail-parser/rfc/004.eml", subject: "Internet Digest, volume 42", text: "...body goes here ...",
		atts: []attWant{{"my opinion.eml", "message/rfc822", "attachment", "", 100}, {"my different opinion.eml", "message/rfc822", "attachment", "", 125}}},
	{file: "stalwart-mail-parser/rfc/005.eml", text: "This is implicitly typed plain US-ASCII text.\nIt does NOT end with a linebreak.\nThis is explicitly typed"},
	{file: "stalwart-mail-parser/rfc/006.eml", text: "Plain text email goes here!", html: "<h1>This is the HTML Section!</h1>", noWarnings: true},
	{file: "stalwart-mail-parser/rfc/008.eml", text: "This is a message with a base64 encoded attached email", atts: []attWant{{"attached_email.eml", "message/rfc822", "attachment", "", 872}}},
}

func formatAddr(a Address) string {
	if a.Name == "" {
		if strings.Contains(a.Address, " ") {
			return a.Address
		}
		return "<" + a.Address + ">"
	}
	return a.Name + " <" + a.Address + ">"
}

func TestCorpusValues(t *testing.T) {
	dir := corpusDir(t)
	for _, w := range corpusWant {
		t.Run(w.file, func(t *testing.T) {
			b, err := os.ReadFile(filepath.Join(dir, w.file))
			if err != nil {
				t.Fatal(err)
			}
			m := parseString(t, string(b))
			check := func(field, got, want string) {
				t.Helper()
				if want != "" && got != want {
					t.Errorf("%s = %q, want %q", field, got, want)
				}
			}
			check("message_id", m.MessageID, w.id)
			check("date", m.Date, w.date)
			check("subject", m.Subject, w.subject)
			if w.from != "" {
				if m.From == nil {
					t.Errorf("from = nil, want %q", w.from)
				} else {
					check("from", formatAddr(*m.From), w.from)
				}
			}
			if w.to != "" {
				if len(m.To) == 0 {
					t.Errorf("to empty, want %q", w.to)
				} else if got := formatAddr(m.To[0]); got != w.to && got != "<"+w.to+">" {
					t.Errorf("to[0] = %q, want %q", got, w.to)
				}
			}
			if !strings.Contains(m.Text, w.text) {
				t.Errorf("text = %q, want it to contain %q", m.Text, w.text)
			}
			if !strings.Contains(m.HTML, w.html) {
				t.Errorf("html = %q, want it to contain %q", m.HTML, w.html)
			}
			if w.atts != nil {
				var got []attWant
				for _, a := range m.Attachments {
					got = append(got, attWant{a.Filename, a.ContentType, a.Disposition, a.ContentID, a.Size})
				}
				if !reflect.DeepEqual(got, w.atts) {
					t.Errorf("attachments = %+v, want %+v", got, w.atts)
				}
			}
			if w.warn != "" && !strings.Contains(strings.Join(m.Warnings, "\n"), w.warn) {
				t.Errorf("warnings = %q, want one containing %q", m.Warnings, w.warn)
			}
			if w.noWarnings && len(m.Warnings) > 0 {
				t.Errorf("warnings = %q, want none", m.Warnings)
			}
		})
	}
}

func TestHeaders(t *testing.T) {
	m := parseString(t, "Message-ID: <abc.123@mail.example.com>\r\n"+
		"In-Reply-To: <parent@example.com> (comment)\r\n"+
		"References: <root@example.com>\r\n <parent@example.com>\r\n"+
		"Date: Tue, 9 Jan 2024 08:30:00 +0100\r\n"+
		"Subject: =?UTF-8?B?w5xiZXIgZGVuIFDDpHNzZW4=?= und =?ISO-8859-1?Q?T=E4ler?=\r\n"+
		"From: =?UTF-8?Q?J=C3=BCrgen_M=C3=BCller?= <juergen@example.de>\r\n"+
		"To: \"Doe, Jane\" <jane@example.com>, bob@example.com\r\n"+
		"Cc: Team: alice@example.com, Carol <carol@example.com>;, dave@example.com\r\n"+
		"Reply-To: undisclosed-recipients:;\r\n"+
		"X-Custom: one\r\nX-Custom: two\r\n"+
		"\r\nbody\r\n")
	if m.MessageID != "abc.123@mail.example.com" {
		t.Errorf("message_id = %q", m.MessageID)
	}
	if m.InReplyTo != "parent@example.com" {
		t.Errorf("in_reply_to = %q", m.InReplyTo)
	}
	if want := []string{"root@example.com", "parent@example.com"}; !reflect.DeepEqual(m.References, want) {
		t.Errorf("references = %q, want %q", m.References, want)
	}
	if m.Date != "2024-01-09T08:30:00+01:00" {
		t.Errorf("date = %q", m.Date)
	}
	if m.Subject != "Über den Pässen und Täler" {
		t.Errorf("subject = %q", m.Subject)
	}
	if m.From == nil || *m.From != (Address{"Jürgen Müller", "juergen@example.de"}) {
		t.Errorf("from = %+v", m.From)
	}
	if want := []Address{{"Doe, Jane", "jane@example.com"}, {"", "bob@example.com"}}; !reflect.DeepEqual(m.To, want) {
		t.Errorf("to = %+v, want %+v", m.To, want)
	}
	if want := []Address{{"", "alice@example.com"}, {"Carol", "carol@example.com"}, {"", "dave@example.com"}}; !reflect.DeepEqual(m.Cc, want) {
		t.Errorf("cc = %+v, want %+v", m.Cc, want)
	}
	if len(m.ReplyTo) != 0 {
		t.Errorf("reply_to = %+v, want empty group", m.ReplyTo)
	}
	var names []string
	for _, h := range m.Headers {
		names = append(names, h[0])
	}
	if want := []string{"Message-ID", "In-Reply-To", "References", "Date", "Subject", "From", "To", "Cc", "Reply-To", "X-Custom", "X-Custom"}; !reflect.DeepEqual(names, want) {
		t.Errorf("header names = %q, want %q", names, want)
	}
	if m.Headers[4][1] != "Über den Pässen und Täler" || m.Headers[10][1] != "two" {
		t.Errorf("header values = %q", m.Headers)
	}
	if m.Header("x-custom") != "one" {
		t.Errorf("Header(x-custom) = %q", m.Header("x-custom"))
	}
}

func TestBrokenHeaders(t *testing.T) {
	m := parseString(t, "Message-ID: not-bracketed@example.com\r\n"+
		"References: <a@x> garbage <b@y>,<c@z>\r\n"+
		"In-Reply-To: Your message of Mon, 8 Jan 2024 <id@host.example>\r\n"+
		"From: Broken <no-at-sign>, \"Ok\" <ok@example.com>\r\n"+
		"To: Gr\xfc\xdfe <gruesse@example.de>\r\n"+
		"Subject: Caf\xe9 au lait\r\n"+
		"Content-Type: text/plain; charset=iso-8859-1\r\n"+
		"\r\nbody\r\n")
	if m.MessageID != "not-bracketed@example.com" {
		t.Errorf("message_id = %q", m.MessageID)
	}
	if want := []string{"a@x", "b@y", "c@z"}; !reflect.DeepEqual(m.References, want) {
		t.Errorf("references = %q, want %q", m.References, want)
	}
	if m.InReplyTo != "id@host.example" {
		t.Errorf("in_reply_to = %q", m.InReplyTo)
	}
	// The author shown is the first address with a domain: the one DMARC
	// judged (header.ReadAuthor).
	if m.From == nil || m.From.Address != "ok@example.com" {
		t.Errorf("from = %+v, want ok@example.com", m.From)
	}
	if len(m.To) != 1 || m.To[0] != (Address{"Grüße", "gruesse@example.de"}) {
		t.Errorf("to = %+v", m.To)
	}
	if m.Subject != "Café au lait" {
		t.Errorf("subject = %q", m.Subject)
	}
}

func TestDates(t *testing.T) {
	for in, want := range map[string]string{
		"Tue, 9 Jan 2024 08:30:00 +0100":          "2024-01-09T08:30:00+01:00",
		"9 Jan 2024 08:30:00 +0100":               "2024-01-09T08:30:00+01:00",
		"Tue, 09 Jan 2024 08:30 +0100":            "2024-01-09T08:30:00+01:00",
		"Tue, 9 Jan 2024 08:30:00 +0100 (CET)":    "2024-01-09T08:30:00+01:00",
		"Tue, 9 Jan 2024 08:30:00 GMT":            "2024-01-09T08:30:00Z",
		"Tue, 9 Jan 2024 08:30:00 EST":            "2024-01-09T08:30:00-05:00",
		"Tue, 9 Jan 2024 08:30:00":                "2024-01-09T08:30:00Z",
		"Tue, 9 Jan 2024 08:30:00 GMT+0200":       "2024-01-09T08:30:00+02:00",
		"Tue, 9 Jan 2024 08:30:00 UTC+2":          "2024-01-09T08:30:00+02:00",
		"Tue, 9 Jan 2024 08.30.00 +0100":          "2024-01-09T08:30:00+01:00",
		"Tue,  9  Jan  2024  08:30:00  +0100":     "2024-01-09T08:30:00+01:00",
		"2024-01-09T08:30:00+01:00":               "2024-01-09T08:30:00+01:00",
		"2024-01-09 08:30:00":                     "2024-01-09T08:30:00Z",
		"Tue Jan  9 08:30:00 2024":                "2024-01-09T08:30:00Z",
		"Tue, 9 Jan 24 08:30:00 +0100":            "2024-01-09T08:30:00+01:00",
		"Tuesday, 9 January 2024 08:30:00 +0100":  "2024-01-09T08:30:00+01:00",
		"Tue, 9 Jan 2024 08:30:00 +0100 (CET) xx": "2024-01-09T08:30:00+01:00",
		"Whenever": "",
		"":         "",
	} {
		if got := parseDate(in); got != want {
			t.Errorf("parseDate(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestBodies(t *testing.T) {
	alt := "From: a@example.com\r\nSubject: alt\r\nMIME-Version: 1.0\r\n" +
		"Content-Type: multipart/mixed; boundary=outer\r\n\r\n" +
		"--outer\r\nContent-Type: multipart/alternative; boundary=\"alt\"\r\n\r\n" +
		"--alt\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n" +
		"Gr=C3=BC=C3=9Fe aus K=C3=B6ln,=\r\n gerne.\r\n" +
		"--alt\r\nContent-Type: multipart/related; boundary=rel\r\n\r\n" +
		"--rel\r\nContent-Type: text/html; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n\r\n" +
		base64.StdEncoding.EncodeToString([]byte("<p>Grüße aus <b>Köln</b>, gerne.</p><img src=\"cid:logo@x\">")) + "\r\n" +
		"--rel\r\nContent-Type: image/png\r\nContent-ID: <logo@x>\r\nContent-Transfer-Encoding: base64\r\n\r\niVBORw0KGgo=\r\n" +
		"--rel--\r\n--alt--\r\n" +
		"--outer\r\nContent-Type: application/pdf; name=\"ignored.pdf\"\r\n" +
		"Content-Disposition: attachment; filename*=UTF-8''%E2%82%AC%20report.pdf\r\nContent-Transfer-Encoding: base64\r\n\r\n" +
		base64.StdEncoding.EncodeToString([]byte("%PDF-1.4 fake")) + "\r\n" +
		"--outer\r\nContent-Type: text/plain; name=\"=?UTF-8?Q?r=C3=A9sum=C3=A9.txt?=\"\r\nContent-Disposition: attachment\r\n\r\nCV\r\n" +
		"--outer\r\nContent-Type: application/octet-stream\r\nContent-Disposition: attachment;\r\n filename*0*=iso-8859-1''Gr%FC;\r\n filename*1*=%DFe.bin\r\n\r\nxx\r\n" +
		"--outer\r\nContent-Type: application/octet-stream\r\nContent-Disposition: attachment; filename=\"..\\\\..\\\\evil.exe\"\r\n\r\nx\r\n" +
		"--outer--\r\n"
	m := parseString(t, alt)
	if m.Text != "Grüße aus Köln, gerne." {
		t.Errorf("text = %q", m.Text)
	}
	if !strings.Contains(m.HTML, "<b>Köln</b>") {
		t.Errorf("html = %q", m.HTML)
	}
	want := []attWant{
		{"", "image/png", "inline", "logo@x", 8},
		{"€ report.pdf", "application/pdf", "attachment", "", 13},
		{"résumé.txt", "text/plain", "attachment", "", 2},
		{"Grüße.bin", "application/octet-stream", "attachment", "", 2},
		{"evil.exe", "application/octet-stream", "attachment", "", 1},
	}
	var got []attWant
	for _, a := range m.Attachments {
		got = append(got, attWant{a.Filename, a.ContentType, a.Disposition, a.ContentID, a.Size})
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("attachments = %+v\nwant %+v", got, want)
	}
	if m.Attachments[1].Content != base64.StdEncoding.EncodeToString([]byte("%PDF-1.4 fake")) {
		t.Errorf("pdf content = %q", m.Attachments[1].Content)
	}
	if len(m.Warnings) != 0 {
		t.Errorf("warnings = %q", m.Warnings)
	}
}

func TestInlineLimit(t *testing.T) {
	payload := bytes.Repeat([]byte("0123456789abcdef"), 1024) // 16 KiB
	msg := "Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nhi\r\n" +
		"--b\r\nContent-Type: application/octet-stream\r\nContent-Disposition: attachment; filename=big.bin\r\nContent-Transfer-Encoding: base64\r\n\r\n" +
		base64.StdEncoding.EncodeToString(payload) + "\r\n--b--\r\n"
	sum := sha256.Sum256(payload)
	for _, tc := range []struct {
		limit   int64
		content bool
	}{{16 << 10, true}, {16<<10 - 1, false}, {-1, false}, {0, true}} {
		m := parseOpts(t, msg, Options{InlineLimit: tc.limit})
		a := m.Attachments[0]
		if a.Size != int64(len(payload)) || a.SHA256 != hex.EncodeToString(sum[:]) {
			t.Errorf("limit %d: size %d sha %s", tc.limit, a.Size, a.SHA256)
		}
		if (a.Content != "") != tc.content {
			t.Errorf("limit %d: content present = %v, want %v", tc.limit, a.Content != "", tc.content)
		}
	}
}

func TestFlowed(t *testing.T) {
	for _, tc := range []struct {
		in    string
		delsp bool
		want  string
	}{
		{"This is a \nflowed para.\nFixed line.\n", false, "This is a flowed para.\nFixed line.\n"},
		{"Del\nSp: no-\nspace \njoin\n", true, "Del\nSp: no-\nspacejoin\n"},
		{"> quoted \n> flowed\n>> deeper \n>> still\nback\n", false, "> quoted flowed\n>> deeper still\nback\n"},
		{" From stuffed\n", false, "From stuffed\n"},
		{"text \n-- \nsig\n", false, "text -- \nsig\n"},
		{"-- \nsig\n", false, "-- \nsig\n"},
		{"a \n> b\n", false, "a \n> b\n"},
	} {
		if got := unflow(tc.in, tc.delsp); got != tc.want {
			t.Errorf("unflow(%q, %v) = %q, want %q", tc.in, tc.delsp, got, tc.want)
		}
	}
	m := parseString(t, "Content-Type: text/plain; format=flowed; delsp=yes\r\n\r\nHello wor \r\nld, how \r\nare you?\r\n")
	if m.Text != "Hello world, howare you?\n" {
		t.Errorf("text = %q", m.Text)
	}
}

func TestHTMLOnly(t *testing.T) {
	m := parseString(t, "From: x@example.com\r\nContent-Type: text/html; charset=utf-8\r\n\r\n"+
		"<html><head><style>p{color:red}</style><title>T</title></head><body>"+
		"<div dir=\"ltr\">Thanks&nbsp;a lot,<br>Anna</div>"+
		"<ul><li>one</li><li><a href=\"https://example.com/t/1\">two</a></li><li><a href=\"https://example.com/\">https://example.com/</a></li></ul><script>alert(1)</script>"+
		"<div class=\"gmail_quote\"><div class=\"gmail_attr\">On Mon, Jan 8, 2024 at 10:15 AM Bob &lt;bob@example.com&gt; wrote:<br></div>"+
		"<blockquote class=\"gmail_quote\">Old text</blockquote></div></body></html>\r\n")
	if want := "Thanks a lot,\nAnna\n- one\n- two <https://example.com/t/1>\n- https://example.com/\nOn Mon, Jan 8, 2024 at 10:15 AM Bob <bob@example.com> wrote:\nOld text"; m.Text != want {
		t.Errorf("text = %q, want %q", m.Text, want)
	}
	if want := "Thanks a lot,\nAnna\n- one\n- two <https://example.com/t/1>\n- https://example.com/"; m.StrippedText != want {
		t.Errorf("stripped_text = %q, want %q", m.StrippedText, want)
	}
	for _, tc := range []struct{ html, want string }{
		{`<p>Yes.</p><blockquote type="cite">On Jan 8 Bob wrote:<br>old</blockquote><p>More.</p>`, "Yes.\n\nMore."},
		{`<div>Ok</div><div class="moz-cite-prefix">On 08/01/2024 Bob wrote:</div><blockquote type="cite">old</blockquote>`, "Ok"},
		{`<div>Done</div><div id="appendonsend"></div><hr><div id="divRplyFwdMsg">From: Bob</div><div>old</div>`, "Done"},
		{`<div>Sure</div><div class="yahoo_quoted"><div>On Monday, Bob wrote:</div>old</div>`, "Sure"},
		{`<p>Fine</p><p>From: Bob &lt;b@x&gt;<br>Sent: Monday<br>To: Anna<br>Subject: x</p><p>old</p>`, "Fine"},
	} {
		if got := StripReply(htmlToText(tc.html, true)); got != tc.want {
			t.Errorf("stripped html %q = %q, want %q", tc.html, got, tc.want)
		}
	}
}

func TestAutoSubmitted(t *testing.T) {
	for _, tc := range []struct {
		header string
		want   bool
	}{
		{"Subject: hello", false},
		{"Auto-Submitted: no", false},
		{"Auto-Submitted: auto-replied", true},
		{"Auto-Submitted: auto-generated; owner-email=x@y", true},
		{"Precedence: bulk", true},
		{"Precedence: junk", true},
		{"Precedence: list", true},
		{"Precedence: first-class", false},
		{"X-Auto-Response-Suppress: All", true},
		{"X-Autoreply: yes", true},
		{"X-Autorespond: Out of office", true},
		{"Subject: Automatic reply: Ticket 4411", true},
		{"Subject: Out of Office: Ticket 4411", true},
		{"Subject: Abwesenheitsnotiz: Ticket", true},
		{"Subject: Réponse automatique : Ticket", true},
		{"Subject: Respuesta automática: Ticket", true},
		{"Subject: 自动回复: Ticket", true},
		{"Subject: Re: out of office policy", false},
		{"Return-Path: <>", true},
	} {
		m := parseString(t, tc.header+"\r\nFrom: a@example.com\r\n\r\nbody\r\n")
		if m.AutoSubmitted != tc.want {
			t.Errorf("%q: auto_submitted = %v, want %v", tc.header, m.AutoSubmitted, tc.want)
		}
	}
}

const dsnMessage = "From: Mail Delivery System <MAILER-DAEMON@mx.example.net>\r\n" +
	"To: sender@example.com\r\nSubject: Undelivered Mail Returned to Sender\r\n" +
	"Content-Type: multipart/report; report-type=delivery-status;\r\n boundary=\"B1\"\r\n\r\n" +
	"--B1\r\nContent-Description: Notification\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n" +
	"This is the mail system at host mx.example.net.\r\n\r\nI'm sorry to have to inform you that your message could not\r\nbe delivered.\r\n\r\n" +
	"--B1\r\nContent-Description: Delivery report\r\nContent-Type: message/delivery-status\r\n\r\n" +
	"Reporting-MTA: dns; mx.example.net\r\nX-Postfix-Queue-ID: 4ABC\r\nArrival-Date: Mon,  8 Jan 2024 10:15:00 +0100 (CET)\r\n\r\n" +
	"Final-Recipient: rfc822; nobody@example.org\r\nOriginal-Recipient: rfc822;nobody@example.org\r\nAction: failed\r\nStatus: 5.1.1\r\n" +
	"Remote-MTA: dns; mx.example.org\r\nDiagnostic-Code: smtp; 550 5.1.1 <nobody@example.org>: Recipient address\r\n rejected: User unknown\r\n\r\n" +
	"Final-Recipient: rfc822; late@example.org\r\nAction: delayed\r\nStatus: 4.4.1 (connection timed out)\r\n\r\n" +
	"--B1\r\nContent-Description: Undelivered Message\r\nContent-Type: message/rfc822\r\n\r\n" +
	"From: sender@example.com\r\nTo: nobody@example.org\r\nSubject: hello\r\n\r\nOriginal body\r\n" +
	"--B1--\r\n"

func TestDSN(t *testing.T) {
	m := parseString(t, dsnMessage)
	if !m.AutoSubmitted {
		t.Error("auto_submitted = false for a DSN")
	}
	want := &DSN{ReportingMTA: "mx.example.net", Recipients: []DSNRecipient{
		{FinalRecipient: "nobody@example.org", Action: "failed", Status: "5.1.1", Diagnostic: "550 5.1.1 <nobody@example.org>: Recipient address rejected: User unknown"},
		{FinalRecipient: "late@example.org", Action: "delayed", Status: "4.4.1"},
	}}
	if !reflect.DeepEqual(m.DSN, want) {
		t.Errorf("dsn = %+v, want %+v", m.DSN, want)
	}
	if strings.Contains(m.Text, "Original body") {
		t.Errorf("text includes the returned message: %q", m.Text)
	}
	if len(m.Attachments) != 2 || m.Attachments[0].ContentType != "message/delivery-status" || m.Attachments[1].ContentType != "message/rfc822" {
		t.Errorf("attachments = %+v", m.Attachments)
	}
}

func TestForwardedDSN(t *testing.T) {
	m := parseString(t, "From: person@example.com\r\nSubject: Fwd: bounce\r\nContent-Type: multipart/mixed; boundary=f\r\n\r\n"+
		"--f\r\nContent-Type: text/plain\r\n\r\nWhy did this bounce?\r\n--f\r\nContent-Type: message/rfc822\r\n\r\n"+dsnMessage+"--f--\r\n")
	if m.AutoSubmitted || m.DSN != nil {
		t.Errorf("auto_submitted %v dsn %+v for a person forwarding a bounce", m.AutoSubmitted, m.DSN)
	}
	if m.StrippedText != "Why did this bounce?" {
		t.Errorf("stripped_text = %q", m.StrippedText)
	}
}

func TestForwardedMessage(t *testing.T) {
	m := parseString(t, "Subject: Fwd: hi\r\nContent-Type: multipart/mixed; boundary=o\r\n\r\n--o\r\nContent-Type: text/plain\r\n\r\nSee below.\r\n"+
		"--o\r\nContent-Type: message/rfc822\r\n\r\nFrom: Carol <carol@example.com>\r\nSubject: =?UTF-8?Q?Gr=C3=BC=C3=9Fe?=\r\n"+
		"Content-Type: multipart/mixed; boundary=i\r\n\r\n--i\r\nContent-Type: text/plain\r\n\r\nInner text\r\n"+
		"--i\r\nContent-Type: image/gif\r\nContent-Disposition: attachment; filename=a.gif\r\n\r\nGIF\r\n--i--\r\n--o--\r\n")
	if !strings.Contains(m.Text, "See below.") || !strings.Contains(m.Text, "Inner text") || !strings.Contains(m.Text, "Subject: Grüße") {
		t.Errorf("text = %q", m.Text)
	}
	if m.StrippedText != "See below." {
		t.Errorf("stripped_text = %q", m.StrippedText)
	}
	if len(m.Attachments) != 2 || m.Attachments[0].Filename != "Grüße.eml" || m.Attachments[1].Filename != "a.gif" {
		t.Errorf("attachments = %+v", m.Attachments)
	}
	if m.Subject != "Fwd: hi" {
		t.Errorf("subject = %q (nested headers must not leak)", m.Subject)
	}
}

func TestHTMLWithForwardedText(t *testing.T) {
	m := parseString(t, "Content-Type: multipart/mixed; boundary=o\r\n\r\n--o\r\nContent-Type: text/html\r\n\r\n<p>My <b>note</b></p>\r\n"+
		"--o\r\nContent-Type: message/rfc822\r\n\r\nSubject: old\r\n\r\nold text\r\n--o--\r\n")
	if !strings.HasPrefix(m.Text, "My note\n") || !strings.Contains(m.Text, "old text") || m.StrippedText != "My note" {
		t.Errorf("text %q stripped %q", m.Text, m.StrippedText)
	}
	m = parseString(t, "Content-Type: multipart/mixed; boundary=o\r\n\r\n--o\r\nContent-Type: message/rfc822\r\n\r\n"+
		"Subject: old\r\nContent-Type: text/html\r\n\r\n<p>old html</p>\r\n--o--\r\n")
	if m.Text != "old html" {
		t.Errorf("text %q", m.Text)
	}
}

type failingReader struct{ r io.Reader }

var errDisk = errors.New("disk on fire")

func (f failingReader) Read(b []byte) (int, error) {
	n, err := f.r.Read(b)
	if err == io.EOF {
		return n, errDisk
	}
	return n, err
}

func TestReadError(t *testing.T) {
	for _, s := range []string{"", "Subject: x\r\n", "Subject: x\r\n\r\nbody", dsnMessage[:600]} {
		m, err := Parse(failingReader{strings.NewReader(s)}, Options{})
		if !errors.Is(err, errDisk) || m != nil {
			t.Errorf("Parse(failing %q) = %v, %v; want nil, %v", s, m, err, errDisk)
		}
	}
	m, err := Parse(strings.NewReader(""), Options{})
	if err != nil || m == nil {
		t.Errorf("Parse(empty) = %v, %v", m, err)
	}
}

// TestConcurrentParse runs parses side by side (the buffers are pooled), so
// that -race sees them; each result must equal a lone parse.
func TestConcurrentParse(t *testing.T) {
	files := corpusFiles(t)
	want := map[string]*Message{}
	for _, f := range files {
		b, _ := os.ReadFile(f)
		want[f] = parseString(t, string(b))
	}
	for i := range 2 {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			t.Parallel()
			for _, f := range files {
				b, _ := os.ReadFile(f)
				if m := parseString(t, string(b)); !reflect.DeepEqual(m, want[f]) {
					t.Errorf("%s: concurrent parse differs", f)
				}
			}
		})
	}
}

// htmlToText renders src as htmlTexts does, one way.
func htmlToText(src string, stripQuotes bool) string {
	full, quoteless := htmlTexts(src)
	if stripQuotes {
		return quoteless
	}
	return full
}

// TestParseCommonDate: the first try in the common form gives what
// net/mail.ParseDate gives, on dates it reads and on dates it does not.
func TestParseCommonDate(t *testing.T) {
	for _, v := range []string{
		"Sat, 5 Dec 2026 18:59:49 +0000", "Sat, 05 Dec 2026 18:59:49 -0800", "Thu, 4 Dec 2026 15:00:00 +0530 (IST)",
		"5 Dec 2026 18:59:49 +0000", "Sat, 5 Dec 26 18:59 +0000", "Sat, 5 Dec 2026 18:59:49 GMT", "Sat, 5 Dec 2026 18:59:49 UT",
		"Mon, 5 Dec 2026 18:59:49 +0000", "Sat, 5 Dec 2026 25:59:49 +0000", "Sat,  5 Dec 2026 18:59:49 +0000",
		"Sat, 5 Dec 2026 18:59:49 +0000\r\n", "Sat, 5 Dec\r\n 2026 18:59:49 +0000", "garbage", "",
		// Comments after the zone.
		"Sat, 5 Dec 2026 18:59:49 +0000 (UTC)", "Sat, 5 Dec 2026 18:59:49 -0800\t(PST) ", "Sat, 5 Dec 2026 18:59:49 +0000 ()",
		"Sat, 5 Dec 2026 18:59:49 +0000 (a (b))", "Sat, 5 Dec 2026 18:59:49 +0000 (UTC", "Sat, 5 Dec 2026 18:59:49 +0000 UTC)",
		"Sat, 5 Dec 2026 18:59:49 +0000 junk", "Sat, 5 Dec 2026 18:59:49 +0000 (UTC) junk", "Sat, 5 Dec 2026 18:59:49 +0000\r\n (UTC)",
		"Sat, 5 Dec 2026 18:59:49 +0000 (U\\)TC)", "Sat, 5 Dec 2026 18:59:49 +0000(UTC)", "Sat, 5 Dec 2026 18:59:49 +00 (UTC)",
		"Sat, 5 Dec 2026 18:59:49 +000 (UTC)", "Sat, 5-Dec 2026 18:59:49 +0000 (UTC)", " Sat, 5 Dec 2026 18:59:49 +0000 (UTC)",
		"Sat, 5 Dec 2026 18:59:49 GMT (UTC)", "Sat, 5 Dec 2026 18:59:49 +0000 (UTC)\r",
	} {
		checkCommonDate(t, v)
	}
}

// TestParseCommonDateAllocs: the common form, with or without a comment
// after the zone, is read by the first try, which allocates nothing
// (ParseDate's failed layouts each allocate an error).
func TestParseCommonDateAllocs(t *testing.T) {
	for _, v := range []string{"Sat, 5 Dec 2026 18:59:49 +0000", "Sat, 5 Dec 2026 18:59:49 +0000 (UTC)", "Thu, 4 Dec 2026 15:00:00 -0800 (PST)"} {
		if n := testing.AllocsPerRun(100, func() { parseCommonDate(v) }); n != 0 {
			t.Errorf("parseCommonDate(%q): %v allocations, want 0", v, n)
		}
	}
}

func checkCommonDate(t *testing.T, v string) {
	got, gotErr := parseCommonDate(v)
	want, wantErr := netmail.ParseDate(v)
	if (gotErr == nil) != (wantErr == nil) || !got.Equal(want) || got.Location().String() != want.Location().String() {
		t.Errorf("parseCommonDate(%q) = %v, %v; ParseDate gives %v, %v", v, got, gotErr, want, wantErr)
	}
	if _, off := got.Zone(); gotErr == nil {
		if _, woff := want.Zone(); off != woff {
			t.Errorf("parseCommonDate(%q): zone offset %d, ParseDate %d", v, off, woff)
		}
	}
}

func FuzzParseCommonDate(f *testing.F) {
	for _, v := range []string{"Sat, 5 Dec 2026 18:59:49 +0000", "Thu, 04 Dec 26 15:00 -0800 (PST)", "5 Dec 2026 18:59:49 GMT", "Sat, 5 Dec 2026 18:59:49 +0000 (UTC)"} {
		f.Add(v)
	}
	f.Fuzz(func(t *testing.T, v string) { checkCommonDate(t, v) })
}
