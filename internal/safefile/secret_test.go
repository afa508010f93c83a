package safefile

import (
	"bytes"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestLoadOrCreateSecret(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "srs.secret")
	s, err := LoadOrCreateSecret(path, 32, 32)
	if err != nil {
		t.Fatalf("LoadOrCreateSecret(new) = %v", err)
	}
	if len(s) != 64 {
		t.Fatalf("new secret %q: %d bytes, want 64 hex digits", s, len(s))
	}
	if _, err := hex.DecodeString(string(s)); err != nil {
		t.Errorf("new secret %q is not hex: %v", s, err)
	}
	b, _ := os.ReadFile(path)
	if string(b) != string(s)+"\n" {
		t.Errorf("file holds %q, want the secret and a newline", b)
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, want 0600", fi.Mode().Perm())
	}
	again, err := LoadOrCreateSecret(path, 32, 32)
	if err != nil || !bytes.Equal(again, s) {
		t.Errorf("LoadOrCreateSecret(again) = %q, %v; want %q", again, err, s)
	}
	if other, _ := LoadOrCreateSecret(filepath.Join(dir, "other"), 32, 32); bytes.Equal(other, s) {
		t.Error("two new secrets are the same")
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 2 {
		t.Errorf("directory holds %d entries, want 2 (no temporary file left)", len(ents))
	}
}

// TestLoadOrCreateSecretOldFiles: the files older versions wrote keep
// their secrets: srs.secret as hex text (the text was the secret),
// attachment.key as 32 raw bytes.
func TestLoadOrCreateSecretOldFiles(t *testing.T) {
	rawKey := []byte("\n\x00\xff key with white space and control bytes\t\x01 \n")
	for _, tc := range []struct {
		name, content string
		want          string
	}{
		{"srs.secret hex", "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\n", "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"},
		{"srs.secret by hand, CRLF", "  a secret written by hand\r\n", "a secret written by hand"},
		{"attachment.key raw", string(rawKey), string(rawKey)},
		{"raw bytes, invalid UTF-8", "\xfe\xfe\xfe\xfe\xfe\xfe\xfe\xfe\xfe\xfe\xfe\xfe\xfe\xfe\xfe\xfe", "\xfe\xfe\xfe\xfe\xfe\xfe\xfe\xfe\xfe\xfe\xfe\xfe\xfe\xfe\xfe\xfe"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "secret")
			if err := os.WriteFile(path, []byte(tc.content), 0o600); err != nil {
				t.Fatal(err)
			}
			got, err := LoadOrCreateSecret(path, 16, 16)
			if err != nil || string(got) != tc.want {
				t.Errorf("LoadOrCreateSecret = %q, %v; want %q", got, err, tc.want)
			}
			if b, _ := os.ReadFile(path); string(b) != tc.content {
				t.Errorf("the file changed to %q", b)
			}
		})
	}
}

func TestLoadOrCreateSecretBadFiles(t *testing.T) {
	dir := t.TempDir()
	short := filepath.Join(dir, "short")
	os.WriteFile(short, []byte("tiny\n"), 0o600)
	if _, err := LoadOrCreateSecret(short, 16, 16); err == nil || !strings.Contains(err.Error(), short) {
		t.Errorf("LoadOrCreateSecret(short file) = %v, want an error naming the file", err)
	}
	if b, _ := os.ReadFile(short); string(b) != "tiny\n" {
		t.Errorf("a short secret was replaced by %q", b)
	}
	empty := filepath.Join(dir, "empty")
	os.WriteFile(empty, nil, 0o600)
	s, err := LoadOrCreateSecret(empty, 16, 16)
	if err != nil || len(s) != 32 {
		t.Errorf("LoadOrCreateSecret(empty file) = %q, %v; want a new secret", s, err)
	}
	if _, err := LoadOrCreateSecret(filepath.Join(dir, "missing", "secret"), 16, 16); err == nil {
		t.Error("LoadOrCreateSecret in a missing directory = nil")
	}
	unreadable := filepath.Join(dir, "dir")
	os.Mkdir(unreadable, 0o700)
	if _, err := LoadOrCreateSecret(unreadable, 16, 16); err == nil {
		t.Error("LoadOrCreateSecret of a directory = nil")
	}
}

func TestReplace(t *testing.T) {
	dir := t.TempDir()
	dst := filepath.Join(dir, "f")
	os.WriteFile(dst, []byte("old"), 0o644)
	if err := Replace(dst, strings.NewReader("new")); err != nil {
		t.Fatalf("Replace = %v", err)
	}
	if b, _ := os.ReadFile(dst); string(b) != "new" {
		t.Errorf("file holds %q", b)
	}
	if fi, _ := os.Stat(dst); fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, want 0600", fi.Mode().Perm())
	}
	if err := Replace(dst, iotestErr{}); err == nil {
		t.Error("Replace with a failing reader = nil")
	}
	if b, _ := os.ReadFile(dst); string(b) != "new" {
		t.Errorf("a failed Replace changed the file to %q", b)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Errorf("directory holds %d entries, want 1 (no temporary file left)", len(ents))
	}
}

type iotestErr struct{}

func (iotestErr) Read([]byte) (int, error) { return 0, os.ErrClosed }

// TestReadUpTo: the whole file up to the limit, ErrTooLarge past it, no
// limit at 0, and the open error for a missing file.
func TestReadUpTo(t *testing.T) {
	path := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(path, []byte("0123456789"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		max  int64
		want string
		err  error
	}{{0, "0123456789", nil}, {10, "0123456789", nil}, {11, "0123456789", nil}, {9, "", ErrTooLarge}} {
		b, err := ReadUpTo(path, tc.max)
		if string(b) != tc.want || !errors.Is(err, tc.err) {
			t.Errorf("ReadUpTo(max %d) = %q, %v; want %q, %v", tc.max, b, err, tc.want, tc.err)
		}
	}
	if _, err := ReadUpTo(path+"-missing", 10); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("ReadUpTo(missing) = %v", err)
	}
}
