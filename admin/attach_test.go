package admin

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/mailhook/mailhook/parse"
)

// TestAttachmentParseOptions: the server lists a message's attachments with
// the parse options it is given (ingest's), so an attachment that only a
// higher limit than parse's default reaches is served, and one that the
// limits cut off is not.
func TestAttachmentParseOptions(t *testing.T) {
	e := newEnv(t, testToken)
	const n = 3 * parse.DefaultMaxParts
	var b strings.Builder
	b.WriteString("Subject: many\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n")
	for i := range n {
		fmt.Fprintf(&b, "--b\r\nContent-Type: application/octet-stream\r\nContent-Disposition: attachment; filename=f%d.bin\r\n\r\npart %d\r\n", i, i)
	}
	b.WriteString("--b--\r\n")
	mail, _ := accept(t, e.q, e.act, mailOpts{id: "many", raw: b.String()})

	wide := NewServer(ServerOptions{Queue: e.q, Activity: e.act, AttachmentKey: testKey, Now: e.clock.Now,
		Parse: parse.Options{MaxParts: 2 * n}})
	hs := httptest.NewServer(wide.PublicHandler())
	defer hs.Close()
	fetch := func(base string, index int) (int, string) {
		t.Helper()
		res, err := http.Get(wide.SignAttachmentURL(base, mail.ID, index, e.clock.Now().Add(time.Hour)))
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		body, err := io.ReadAll(res.Body)
		if err != nil {
			t.Fatal(err)
		}
		return res.StatusCode, string(body)
	}
	last := n - 1
	if code, body := fetch(hs.URL, last); code != 200 || body != fmt.Sprintf("part %d", last) {
		t.Fatalf("attachment %d with MaxParts %d = %d %q", last, 2*n, code, body)
	}
	// The default limits stop before it: not found, rather than another part.
	if code, body := fetch(e.base, last); code != http.StatusNotFound {
		t.Fatalf("attachment %d with the default MaxParts = %d %q, want 404", last, code, body)
	}
	if code, body := fetch(e.base, 7); code != 200 || body != "part 7" {
		t.Fatalf("attachment 7 with the default MaxParts = %d %q", code, body)
	}
}
