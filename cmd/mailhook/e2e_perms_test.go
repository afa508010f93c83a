package main

import (
	"fmt"
	"io/fs"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/mailhook/mailhook/dns/dnstest"
)

// TestRawCopiesArePrivate: every file `serve` writes under data_dir (the
// spool, the queue's raw copies, the admin history's kept raw sources,
// mailbox bodies, the stores) is readable by its owner only, and every
// directory is closed to others, whatever the umask. Checked while a
// webhook job waits for a retry (its raw copy still queued) and again
// after everything is delivered.
func TestRawCopiesArePrivate(t *testing.T) {
	dir := t.TempDir()
	dns := dnstest.Start(t, "")
	rcv := newReceiver(t, testSecret)
	var accept atomic.Bool
	var attempts atomic.Int64
	rcv.status = func() int {
		attempts.Add(1)
		if accept.Load() {
			return 200
		}
		return 503
	}
	hash, _ := bcrypt.GenerateFromPassword([]byte("correct horse"), bcrypt.MinCost)
	smtpAddr := freePort(t)
	extra := fmt.Sprintf(`mailbox:
  imap_listen: %q
  pop3_listen: %q
  users:
    - {name: carol, password_hash: %q, addresses: ["carol@example.test"]}
`, freePort(t), freePort(t), hash)
	cfg := writeConfig(t, dir, smtpAddr, dns.Addr(), rcv.srv.URL, extra)
	startServe(t, cfg, smtpAddr)
	// Over the queue's DefaultInlineMax (256 KiB, also what ingest holds
	// in memory), so that the message is spooled and the queue keeps it
	// as a file rather than inside its store.
	msg := "From: Dave <dave@sender.test>\r\nTo: support@example.test\r\nSubject: private\r\n\r\n" +
		strings.Repeat("Secret body line.\r\n", 16000)
	if err := sendMail(smtpAddr, nil, "dave@sender.test", []string{"support@example.test", "carol@example.test"}, []byte(msg)); err != nil {
		t.Fatalf("send: %v", err)
	}
	data := filepath.Join(dir, "data")
	// The webhook answers 503: its job keeps the raw copy in the queue.
	waitFor(t, 20*time.Second, func() bool { return attempts.Load() > 0 })
	// The queue's copy and the admin history's.
	if n := checkPrivate(t, data); n < 2 {
		t.Fatalf("%d raw copies under data_dir while the webhook job waits, want 2", n)
	}
	accept.Store(true)
	rcv.wait(t, 1, 20*time.Second)
	checkPrivate(t, data)
}

// checkPrivate checks the modes under root and returns how many raw
// messages (*.eml) it saw.
func checkPrivate(t *testing.T, root string) (raw int) {
	t.Helper()
	files := 0
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			if d != nil && !d.IsDir() {
				return nil // removed while we walked
			}
			return err
		}
		info, err := d.Info()
		if err != nil {
			return nil
		}
		want := fs.FileMode(0o600)
		if d.IsDir() {
			want = 0o700
		} else {
			files++
			if strings.HasSuffix(path, ".eml") {
				raw++
			}
		}
		if info.Mode().Perm()&^want != 0 {
			t.Errorf("%s: mode %v, want at most %v", path, info.Mode().Perm(), want)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if files == 0 {
		t.Fatal("no files under data_dir")
	}
	return raw
}
