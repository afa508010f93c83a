package webhook

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/mailhook/mailhook/internal/testenv"
)

// TestReceiverSnippets runs the README's Python and Node receivers
// (testdata/receivers) on a real delivery: they must accept it, and reject
// it with one byte of the body changed or with another secret.
func TestReceiverSnippets(t *testing.T) {
	srv, ch := receiver(t, nil)
	oldS, newS := NewSecret(), NewSecret()
	s := NewSender(Options{Endpoints: map[string]Endpoint{
		"e": {URL: srv.URL, Secrets: []string{newS, oldS}, AllowPrivate: true, Raw: true}}})
	defer s.Close()
	if o := mustHandle(t, s, testJob("e"), rawOf([]byte("Subject: x\r\n\r\nbody\r\n"))); !o.Done {
		t.Fatalf("Handle = %+v", o)
	}
	r := recv(t, ch)
	// The same, signed ten minutes ago: past the receivers' tolerance.
	sOld := NewSender(Options{Now: func() time.Time { return time.Now().Add(-10 * time.Minute) },
		Endpoints: map[string]Endpoint{"e": {URL: srv.URL, Secrets: []string{newS}, AllowPrivate: true}}})
	defer sOld.Close()
	if o := mustHandle(t, sOld, testJob("e"), nil); !o.Done {
		t.Fatalf("Handle = %+v", o)
	}
	rOld := recv(t, ch)
	dir := t.TempDir()
	hdrJSON := func(r received) []byte {
		b, _ := json.Marshal(map[string]string{
			"Webhook-Id":        r.header.Get(HeaderID),
			"Webhook-Timestamp": r.header.Get(HeaderTimestamp),
			"Webhook-Signature": r.header.Get(HeaderSignature),
		})
		return b
	}
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	headers, body := write("headers.json", hdrJSON(r)), write("body", r.body)
	oldHeaders, oldBody := write("old-headers.json", hdrJSON(rOld)), write("old-body", rOld.body)
	tampered := append([]byte(nil), r.body...)
	tampered[len(tampered)/2] ^= 1
	bad := write("tampered", tampered)

	for _, tc := range []struct{ tool, script string }{
		{"python3", "verify.py"},
		{"node", "verify.js"},
	} {
		t.Run(tc.tool, func(t *testing.T) {
			if _, err := exec.LookPath(tc.tool); err != nil {
				testenv.Missing(t, "%s not installed", tc.tool)
			}
			script, _ := filepath.Abs(filepath.Join("testdata", "receivers", tc.script))
			run := func(secret, body string, hdr ...string) error {
				h := headers
				if len(hdr) > 0 {
					h = hdr[0]
				}
				out, err := exec.Command(tc.tool, script, secret, h, body).CombinedOutput()
				if len(out) > 0 {
					t.Logf("%s: %s", tc.script, out)
				}
				return err
			}
			for _, sec := range []string{oldS, newS} {
				if err := run(sec, body); err != nil {
					t.Errorf("%s rejected a genuine delivery: %v", tc.script, err)
				}
			}
			if run(newS, bad) == nil {
				t.Errorf("%s accepted a tampered body", tc.script)
			}
			if run(NewSecret(), body) == nil {
				t.Errorf("%s accepted another secret", tc.script)
			}
			if run(newS, oldBody, oldHeaders) == nil {
				t.Errorf("%s accepted a delivery signed 10 minutes ago", tc.script)
			}
		})
	}
}
