package parse

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"testing"
)

// openAll opens every attachment Parse lists in raw (with opts) by its
// Part and checks that the bytes are those the listing describes.
func openAll(t *testing.T, raw []byte, opts Options) *Message {
	t.Helper()
	m, err := Parse(bytes.NewReader(raw), opts)
	if err != nil {
		t.Fatalf("Parse = %v", err)
	}
	for i, a := range m.Attachments {
		got := openPart(t, raw, opts, a.Part)
		sum := sha256.Sum256(got)
		if int64(len(got)) != a.Size || hex.EncodeToString(sum[:]) != a.SHA256 {
			t.Errorf("OpenPart(%q) (attachment %d, %s %s) = %d bytes sha256 %x, want %d bytes sha256 %s",
				a.Part, i, a.ContentType, a.Filename, len(got), sum[:4], a.Size, a.SHA256[:8])
		}
	}
	return m
}

func openPart(t *testing.T, raw []byte, opts Options, part string) []byte {
	t.Helper()
	rc, err := OpenPart(bytes.NewReader(raw), opts, part)
	if err != nil {
		t.Fatalf("OpenPart(%q) = %v, want no error", part, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatalf("OpenPart(%q): read = %v", part, err)
	}
	return b
}

// nestedMessage has attachments at every kind of place: top level, in a
// multipart/related, in a forwarded message (whose own attachment is a
// message that is not multipart), in Latin-1 quoted-printable text.
const nestedMessage = "From: a@example.com\r\nSubject: nest\r\nContent-Type: multipart/mixed; boundary=o\r\n\r\n" +
	"--o\r\nContent-Type: multipart/related; boundary=r\r\n\r\n" +
	"--r\r\nContent-Type: text/html\r\n\r\n<p>hi <img src=cid:logo></p>\r\n" +
	"--r\r\nContent-Type: image/png\r\nContent-ID: <logo>\r\nContent-Transfer-Encoding: base64\r\n\r\niVBORw0KGgo=\r\n" +
	"--r--\r\n" +
	"--o\r\nContent-Type: application/pdf\r\nContent-Disposition: attachment; filename=a.pdf\r\nContent-Transfer-Encoding: base64\r\n\r\nJVBERi0xLjQK\r\n" +
	"--o\r\nContent-Type: message/rfc822\r\n\r\nFrom: b@example.com\r\nSubject: inner\r\nContent-Type: multipart/mixed; boundary=i\r\n\r\n" +
	"--i\r\nContent-Type: text/plain\r\n\r\ninner text\r\n" +
	"--i\r\nContent-Type: text/plain; charset=iso-8859-1\r\nContent-Disposition: attachment; filename=notes.txt\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\ncaf=E9\r\n" +
	"--i\r\nContent-Type: message/rfc822\r\n\r\nSubject: innermost\r\nContent-Type: application/zip; name=z.zip\r\nContent-Transfer-Encoding: base64\r\n\r\nUEsDBA==\r\n" +
	"--i--\r\n" +
	"--o--\r\n"

func TestOpenPartNested(t *testing.T) {
	m := openAll(t, []byte(nestedMessage), Options{})
	var parts []string
	for _, a := range m.Attachments {
		parts = append(parts, a.Part+" "+a.Filename)
	}
	// Numbered as IMAP numbers sections (RFC 3501 §6.4.5).
	want := []string{"1.2 ", "2 a.pdf", "3 inner.eml", "3.2 notes.txt", "3.3 innermost.eml", "3.3.1 z.zip"}
	if !slices.Equal(parts, want) {
		t.Fatalf("parts = %q, want %q", parts, want)
	}
	for part, want := range map[string]string{
		"1.2":   "\x89PNG\r\n\x1a\n",
		"2":     "%PDF-1.4\n",
		"3.2":   "café",
		"3.3.1": "PK\x03\x04",
	} {
		if got := string(openPart(t, []byte(nestedMessage), Options{}, part)); got != want {
			t.Errorf("OpenPart(%q) = %q, want %q", part, got, want)
		}
	}
	eml := string(openPart(t, []byte(nestedMessage), Options{}, "3.3"))
	if !strings.HasPrefix(eml, "Subject: innermost\r\n") || !strings.HasSuffix(eml, "UEsDBA==") {
		t.Errorf("OpenPart(3.3) = %q, want the attached message", eml)
	}

	// A message that is not multipart has its body at 1.
	single := []byte("Subject: scan\r\nContent-Type: application/pdf; name=scan.pdf\r\nContent-Transfer-Encoding: base64\r\n\r\nJVBERi0=\r\n")
	if m := openAll(t, single, Options{}); len(m.Attachments) != 1 || m.Attachments[0].Part != "1" {
		t.Errorf("single part: attachments %+v, want one at part 1", m.Attachments)
	}
}

func TestOpenPartCorpus(t *testing.T) {
	n, dir := 0, corpusDir(t)
	for _, f := range corpusFiles(t) {
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		t.Run(f[len(dir)+1:], func(t *testing.T) {
			n += len(openAll(t, raw, Options{}).Attachments)
		})
	}
	if n == 0 {
		t.Fatal("no attachment in the corpus")
	}
}

// TestOpenPartLimits: with the options of the listing, OpenPart reaches
// what the listing reached, cut where it was cut, and nothing past it.
func TestOpenPartLimits(t *testing.T) {
	var b strings.Builder
	b.WriteString("Content-Type: multipart/mixed; boundary=b\r\n\r\n")
	for i := range 300 {
		fmt.Fprintf(&b, "--b\r\nContent-Type: application/octet-stream\r\nContent-Disposition: attachment; filename=f%d\r\n\r\nx%d\r\n", i, i)
	}
	b.WriteString("--b--\r\n")
	many := []byte(b.String())
	m := openAll(t, many, Options{MaxParts: 100})
	if len(m.Attachments) != 99 || m.Attachments[98].Part != "99" {
		t.Fatalf("%d attachments listed, want 99 (the last at part 99)", len(m.Attachments))
	}
	if _, err := OpenPart(bytes.NewReader(many), Options{MaxParts: 100}, "100"); !errors.Is(err, ErrNoPart) {
		t.Errorf("OpenPart(past MaxParts) = %v, want ErrNoPart", err)
	}
	// More parts than parse's default limit, listed with a higher one.
	b.Reset()
	b.WriteString("Content-Type: multipart/mixed; boundary=b\r\n\r\n")
	for i := range 2*DefaultMaxParts + 10 {
		fmt.Fprintf(&b, "--b\r\nContent-Type: text/plain\r\nContent-Disposition: attachment; filename=f%d\r\n\r\n%d\r\n", i, i)
	}
	b.WriteString("--b--\r\n")
	opts := Options{MaxParts: 3 * DefaultMaxParts}
	last := fmt.Sprint(2*DefaultMaxParts + 10)
	if got := string(openPart(t, []byte(b.String()), opts, last)); got != fmt.Sprint(2*DefaultMaxParts+9) {
		t.Errorf("OpenPart(%s) = %q", last, got)
	}

	// An attachment cut by MaxDecodedBytes opens cut, as listed.
	payload := bytes.Repeat([]byte("x"), 1<<20)
	cut := []byte("Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nhello\r\n" +
		"--b\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\n" +
		base64.StdEncoding.EncodeToString(payload) + "\r\n--b--\r\n")
	m = openAll(t, cut, Options{MaxDecodedBytes: 100 << 10})
	if len(m.Attachments) != 1 || m.Attachments[0].Size != 100<<10-5 {
		t.Fatalf("cut attachment listed as %+v", m.Attachments)
	}
	// An attached message cut at MaxParts inside it.
	b.Reset()
	b.WriteString("Content-Type: multipart/mixed; boundary=o\r\n\r\n--o\r\nContent-Type: message/rfc822\r\n\r\nContent-Type: multipart/mixed; boundary=i\r\n\r\n")
	for i := range 20 {
		fmt.Fprintf(&b, "--i\r\nContent-Type: image/gif\r\n\r\nGIF%d\r\n", i)
	}
	b.WriteString("--i--\r\n--o--\r\n")
	m = openAll(t, []byte(b.String()), Options{MaxParts: 10})
	if len(m.Attachments) == 0 || m.Attachments[0].Part != "1" {
		t.Fatalf("attachments %+v, want the message at part 1 first", m.Attachments)
	}
}

func TestOpenPartBadReference(t *testing.T) {
	for _, part := range []string{"", "0", "a", "1..2", "1.", ".1", "01", "7", "1", "1.1", "2.1", "3.1", "3.3.2", "3.3.1.1"} {
		rc, err := OpenPart(strings.NewReader(nestedMessage), Options{}, part)
		if !errors.Is(err, ErrNoPart) || rc != nil {
			t.Errorf("OpenPart(%q) = %v, %v; want ErrNoPart", part, rc, err)
			continue
		}
		if !strings.Contains(err.Error(), fmt.Sprintf("%q", part)) {
			t.Errorf("OpenPart(%q) error %q does not name the part", part, err)
		}
	}
}

func TestOpenPartReadError(t *testing.T) {
	// The part ends where the message does: the read error surfaces.
	truncated := "Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: image/gif\r\n\r\nGIF89a"
	rc, err := OpenPart(failingReader{strings.NewReader(truncated)}, Options{}, "1")
	if err != nil {
		t.Fatalf("OpenPart = %v", err)
	}
	if _, err := io.ReadAll(rc); !errors.Is(err, errDisk) {
		t.Errorf("read = %v, want %v", err, errDisk)
	}
	rc.Close()
	// A part never reached: the read error is OpenPart's.
	if _, err := OpenPart(failingReader{strings.NewReader(truncated)}, Options{}, "2"); !errors.Is(err, errDisk) {
		t.Errorf("OpenPart(unreached) = %v, want %v", err, errDisk)
	}
}

// countingReader counts the bytes read from it.
type countingReader struct {
	r io.Reader
	n int
}

func (c *countingReader) Read(b []byte) (int, error) {
	n, err := c.r.Read(b)
	c.n += n
	return n, err
}

// TestOpenPartClose: closing the reader early stops the walk; after Close
// the message is read no further (the race detector sees any late read).
func TestOpenPartClose(t *testing.T) {
	raw, payload := attachmentMessage(8 << 20)
	cr := &countingReader{r: bytes.NewReader(raw)}
	rc, err := OpenPart(cr, Options{}, "2")
	if err != nil {
		t.Fatal(err)
	}
	head := make([]byte, 100)
	if _, err := io.ReadFull(rc, head); err != nil || !bytes.Equal(head, payload[:100]) {
		t.Fatalf("first bytes = %v, %v", head, err)
	}
	if err := rc.Close(); err != nil {
		t.Fatal(err)
	}
	if n := cr.n; n > len(raw)/4 {
		t.Errorf("%d of %d bytes read after an early Close", n, len(raw))
	}
	if _, err := rc.Read(head); err == nil {
		t.Error("Read after Close succeeded")
	}
}
