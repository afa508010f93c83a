package parse

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"io"
	"runtime"
	"strings"
	"testing"
)

func hasWarning(m *Message, sub string) bool {
	return strings.Contains(strings.Join(m.Warnings, "\n"), sub)
}

func TestHugeHeader(t *testing.T) {
	big := "X-Junk: " + strings.Repeat("a", 4000) + "\r\n"
	hdr := "Subject: kept\r\nFrom: a@example.com\r\n" + strings.Repeat(big, 100) + "To: lost@example.com\r\n"
	m := parseOpts(t, hdr+"\r\nthe body\r\n", Options{MaxHeaderBytes: 64 << 10})
	if m.Subject != "kept" || m.Text != "the body\r\n" && m.Text != "the body\n" {
		t.Errorf("subject %q text %q", m.Subject, m.Text)
	}
	if len(m.To) != 0 || !hasWarning(m, "header: larger than 65536 bytes") {
		t.Errorf("to = %+v warnings = %q", m.To, m.Warnings)
	}
	if len(m.Headers) > 30 {
		t.Errorf("%d headers kept past the limit", len(m.Headers))
	}

	// One folded field of 2 MiB: cut, and the body still read.
	folded := "Subject: s\r\nX-Long: " + strings.Repeat("b\r\n ", 700<<10) + "\r\n\r\nbody\r\n"
	m = parseString(t, folded)
	if m.Text != "body\n" || !hasWarning(m, "header: larger than") {
		t.Errorf("folded: text %q warnings %q", m.Text, m.Warnings)
	}

	// A part header past the limit.
	part := "Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nfirst\r\n--b\r\n" +
		strings.Repeat(big, 100) + "\r\nsecond\r\n--b--\r\n"
	m = parseOpts(t, part, Options{MaxHeaderBytes: 64 << 10})
	if m.Text != "first" || !hasWarning(m, "part header larger than") {
		t.Errorf("part: text %q warnings %q", m.Text, m.Warnings)
	}
}

// nested builds depth levels of multipart/mixed around a text part.
func nested(depth int) string {
	var b strings.Builder
	b.WriteString("Subject: deep\r\n")
	for i := range depth {
		fmt.Fprintf(&b, "Content-Type: multipart/mixed; boundary=b%d\r\n\r\n--b%d\r\n", i, i)
	}
	b.WriteString("Content-Type: text/plain\r\n\r\ninnermost\r\n")
	for i := depth - 1; i >= 0; i-- {
		fmt.Fprintf(&b, "--b%d--\r\n", i)
	}
	return b.String()
}

func TestDeepNesting(t *testing.T) {
	m := parseString(t, nested(19))
	if m.Text != "innermost" || len(m.Warnings) != 0 {
		t.Errorf("depth 19: text %q warnings %q", m.Text, m.Warnings)
	}
	m = parseString(t, nested(25))
	if m.Text != "" || !hasWarning(m, "nesting deeper than 20") {
		t.Errorf("depth 25: text %q warnings %q", m.Text, m.Warnings)
	}
	m = parseString(t, nested(5000))
	if !hasWarning(m, "nesting deeper than 20") {
		t.Errorf("depth 5000: warnings %q", m.Warnings)
	}

	// message/rfc822 inside message/rfc822.
	var b strings.Builder
	for range 30 {
		b.WriteString("Subject: fwd\r\nContent-Type: message/rfc822\r\n\r\n")
	}
	b.WriteString("Subject: inner\r\n\r\ninner text\r\n")
	m = parseString(t, b.String())
	if m.Subject != "fwd" || !hasWarning(m, "nesting deeper than 20") || strings.Contains(m.Text, "inner text") {
		t.Errorf("rfc822 nest: subject %q text %q warnings %q", m.Subject, m.Text, m.Warnings)
	}
}

func TestMaxParts(t *testing.T) {
	var b strings.Builder
	b.WriteString("Content-Type: multipart/mixed; boundary=b\r\n\r\n")
	for i := range 1000 {
		fmt.Fprintf(&b, "--b\r\nContent-Type: application/octet-stream\r\nContent-Disposition: attachment; filename=f%d\r\n\r\nx\r\n", i)
	}
	b.WriteString("--b--\r\n")
	m := parseOpts(t, b.String(), Options{MaxParts: 100})
	if len(m.Attachments) != 99 || !hasWarning(m, "more than 100 MIME parts") {
		t.Errorf("%d attachments, warnings %q", len(m.Attachments), m.Warnings)
	}
}

func TestMaxDecoded(t *testing.T) {
	payload := bytes.Repeat([]byte("x"), 1<<20)
	msg := "Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nhello\r\n" +
		"--b\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\n" +
		base64.StdEncoding.EncodeToString(payload) + "\r\n--b\r\nContent-Type: text/plain\r\n\r\nafter\r\n--b--\r\n"
	m := parseOpts(t, msg, Options{MaxDecodedBytes: 100 << 10})
	if m.Text != "hello" || len(m.Attachments) != 1 || m.Attachments[0].Size != 100<<10-5 || !hasWarning(m, "decoded size over") {
		t.Errorf("text %q atts %d warnings %q", m.Text, len(m.Attachments), m.Warnings)
	}
}

func TestBrokenMIME(t *testing.T) {
	for _, tc := range []struct {
		name, msg, text, warn string
	}{
		{"missing closing boundary", "Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n\r\npart one\r\n--b\r\n\r\npart two", "part one\npart two", "closing boundary missing"},
		{"boundary never appears", "Content-Type: multipart/alternative; boundary=nope\r\n\r\njust text\r\n", "just text", "boundary not found"},
		{"empty boundary", "Content-Type: multipart/mixed; boundary=\"\"\r\n\r\nbody\r\n", "body", "without boundary"},
		{"bad base64", "Content-Type: text/plain\r\nContent-Transfer-Encoding: base64\r\n\r\naGVsbG8g!!d29ybGQ=\r\n", "hello ", "malformed base64"},
		{"truncated base64", "Content-Type: text/plain\r\nContent-Transfer-Encoding: base64\r\n\r\naGVsbG8gd29y\r\nb", "hello wor", "truncated"},
		{"bad quoted-printable", "Content-Type: text/plain\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\nfine =ZZ end\r\n", "fine", ""},
		{"unknown transfer encoding", "Content-Type: text/plain\r\nContent-Transfer-Encoding: x-uuencode\r\n\r\nbegin 644\r\n", "begin 644", "unknown transfer encoding"},
		{"junk content type", "Content-Type: ;;;\r\n\r\nstill text\r\n", "still text", "malformed Content-Type"},
		{"no header at all", "\r\nonly a body\r\n", "only a body", ""},
		{"header without body", "Subject: s", "", ""},
		{"bare LF", "Subject: s\nContent-Type: multipart/mixed; boundary=b\n\n--b\nContent-Type: text/plain\n\nlf text\n--b--\n", "lf text", ""},
		{"nul bytes", "Subject: s\r\n\r\na\x00b\r\n", "a\x00b", ""},
		// A line that is not a field ends the header (package header's
		// rule, the one every stage applies): the rest is body.
		{"8-bit header name", "Subj\xe9ct: x\r\nSubject: ok\r\n\r\nbody\r\n", "Subject: ok", "no header"},
		{"mbox From line", "From someone@example.com Mon Jan  8 10:15:00 2024\r\nSubject: s\r\n\r\nbody\r\n", "Subject: s", "no header"},
		{"line without colon mid-header", "Subject: s\r\nno colon\r\nFrom: a@b.test\r\n\r\nbody\r\n", "From: a@b.test", "not a field ended the header"},
		{"part header garbage", "Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nno colon here\r\n\r\nlost\r\n--b\r\n\r\nkept\r\n--b--\r\n", "kept", "malformed part"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := parseString(t, tc.msg)
			if !strings.Contains(m.Text, tc.text) {
				t.Errorf("text = %q, want %q", m.Text, tc.text)
			}
			if tc.warn != "" && !hasWarning(m, tc.warn) {
				t.Errorf("warnings = %q, want %q", m.Warnings, tc.warn)
			}
		})
	}
}

// attachmentMessage returns a message with a size-byte attachment, base64
// encoded, and the attachment's bytes.
func attachmentMessage(size int) ([]byte, []byte) {
	payload := make([]byte, size)
	for i := range payload {
		payload[i] = byte(i*7 + i>>8)
	}
	var b bytes.Buffer
	b.WriteString("From: a@example.com\r\nTo: b@example.com\r\nSubject: file\r\nMIME-Version: 1.0\r\n" +
		"Content-Type: multipart/mixed; boundary=\"=_b\"\r\n\r\n--=_b\r\nContent-Type: text/plain\r\n\r\nThe file.\r\n" +
		"--=_b\r\nContent-Type: application/octet-stream\r\nContent-Disposition: attachment; filename=data.bin\r\n" +
		"Content-Transfer-Encoding: base64\r\n\r\n")
	enc := base64.StdEncoding.EncodeToString(payload)
	for len(enc) > 76 {
		b.WriteString(enc[:76])
		b.WriteString("\r\n")
		enc = enc[76:]
	}
	b.WriteString(enc + "\r\n--=_b--\r\n")
	return b.Bytes(), payload
}

// TestAttachmentStreaming checks that an attachment over the inline limit
// is hashed as it streams and never held: a 4 MiB attachment is parsed
// with far less than 4 MiB allocated.
func TestAttachmentStreaming(t *testing.T) {
	raw, payload := attachmentMessage(4 << 20)
	sum := sha256.Sum256(payload)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	m, err := Parse(bytes.NewReader(raw), Options{InlineLimit: 512 << 10})
	runtime.ReadMemStats(&after)
	if err != nil {
		t.Fatal(err)
	}
	a := m.Attachments[0]
	if a.Size != 4<<20 || a.SHA256 != hex.EncodeToString(sum[:]) || a.Content != "" {
		t.Errorf("attachment = size %d sha %s content %d bytes", a.Size, a.SHA256, len(a.Content))
	}
	// The base64 text is kept only up to the 512 KiB inline limit (683 KiB
	// of base64), then dropped; holding the 4 MiB attachment would take far
	// more.
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 1536<<10 {
		t.Errorf("parsing a 4 MiB attachment allocated %d bytes, want < 1.5 MiB", alloc)
	}
	runtime.GC()
	runtime.ReadMemStats(&before)
	if _, err := Parse(bytes.NewReader(raw), Options{InlineLimit: -1}); err != nil {
		t.Fatal(err)
	}
	runtime.ReadMemStats(&after)
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 1<<20 {
		t.Errorf("parsing a 4 MiB attachment never inlined allocated %d bytes, want < 1 MiB", alloc)
	}

	// Within the limit the content is held once, as base64.
	raw, payload = attachmentMessage(1 << 20)
	runtime.GC()
	runtime.ReadMemStats(&before)
	m, err = Parse(bytes.NewReader(raw), Options{})
	runtime.ReadMemStats(&after)
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := base64.StdEncoding.DecodeString(m.Attachments[0].Content); !bytes.Equal(got, payload) {
		t.Error("inline content differs")
	}
	// The base64 text is 1.33 MiB, built in chunks and joined once: about
	// twice that allocated. A copy of the decoded bytes would add 1 MiB.
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 3<<20 {
		t.Errorf("parsing a 1 MiB inline attachment allocated %d bytes", alloc)
	}
}

// endless is an infinite message body.
type endless struct{ n int64 }

func (e *endless) Read(b []byte) (int, error) {
	for i := range b {
		b[i] = 'a'
		if i%70 == 69 {
			b[i] = '\n'
		}
	}
	e.n += int64(len(b))
	return len(b), nil
}

func TestEndlessInput(t *testing.T) {
	src := io.MultiReader(strings.NewReader("Content-Type: application/octet-stream\r\n\r\n"), &endless{})
	m, err := Parse(src, Options{MaxDecodedBytes: 1 << 20})
	if err != nil || !hasWarning(m, "decoded size over") {
		t.Errorf("Parse(endless) = %v, warnings %q", err, m.Warnings)
	}
	// A preamble that never ends stops at the header gate.
	src = io.MultiReader(strings.NewReader("Content-Type: multipart/mixed; boundary=b\r\n\r\n"), &endless{})
	m, err = Parse(src, Options{MaxDecodedBytes: 1 << 20, MaxHeaderBytes: 1 << 10})
	if err != nil || !hasWarning(m, "boundary not found") {
		t.Errorf("Parse(endless preamble) = %v, warnings %q", err, m.Warnings)
	}
	// Raw bytes that are skipped, not decoded (a part too deep to parse),
	// stop at the raw limit.
	src = io.MultiReader(strings.NewReader("Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n"+
		"Content-Type: multipart/mixed; boundary=c\r\n\r\n"), &endless{})
	m, err = Parse(src, Options{MaxDecodedBytes: 1 << 20, MaxHeaderBytes: 1 << 10, MaxDepth: 1})
	if err != nil || !hasWarning(m, "message larger than") {
		t.Errorf("Parse(endless skipped part) = %v, warnings %q", err, m.Warnings)
	}
}

func TestHugeHTML(t *testing.T) {
	defer func(n int) { maxHTMLRender = n }(maxHTMLRender)
	maxHTMLRender = 64 << 10
	html := "<html><body>" + strings.Repeat("<p>para</p>", (maxHTMLRender/11)+1000) + "</body></html>"
	m := parseString(t, "Content-Type: text/html\r\n\r\n"+html)
	if m.HTML == "" || !strings.HasPrefix(m.Text, "para") || !hasWarning(m, "html larger than") {
		t.Errorf("html %d bytes, text %d bytes, warnings %q", len(m.HTML), len(m.Text), m.Warnings)
	}
}

func TestSinglePartAttachment(t *testing.T) {
	m := parseString(t, "Subject: scan\r\nContent-Type: application/pdf; name=\"scan.pdf\"\r\nContent-Transfer-Encoding: base64\r\n\r\nJVBERi0=\r\n")
	if len(m.Attachments) != 1 || m.Attachments[0].Filename != "scan.pdf" || m.Attachments[0].Size != 5 || m.Text != "" {
		t.Errorf("attachments %+v text %q", m.Attachments, m.Text)
	}
	m = parseString(t, "Subject: invite\r\nContent-Type: text/calendar; method=REQUEST; charset=utf-8\r\n\r\nBEGIN:VCALENDAR\r\n")
	if len(m.Attachments) != 1 || m.Attachments[0].ContentType != "text/calendar" || m.Attachments[0].Charset != "utf-8" {
		t.Errorf("attachments %+v", m.Attachments)
	}
}
