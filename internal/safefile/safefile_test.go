package safefile

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mailhook/mailhook/internal/testenv"
)

func TestCopy(t *testing.T) {
	dir := t.TempDir()
	src, dst := filepath.Join(dir, "src"), filepath.Join(dir, "dst")
	if err := os.WriteFile(src, []byte("raw message"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := Copy(src, dst); err != nil {
		t.Fatalf("Copy = %v", err)
	}
	if b, _ := os.ReadFile(dst); string(b) != "raw message" {
		t.Errorf("copy holds %q", b)
	}
	if fi, _ := os.Stat(dst); fi.Mode().Perm() != 0o600 {
		t.Errorf("copy mode %v, want 0600", fi.Mode().Perm())
	}
	if err := Copy(src, dst); !errors.Is(err, fs.ErrExist) {
		t.Errorf("Copy onto an existing file = %v, want ErrExist", err)
	}
	if err := Copy(filepath.Join(dir, "missing"), filepath.Join(dir, "x")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Copy of a missing file = %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "x")); !errors.Is(err, fs.ErrNotExist) {
		t.Error("a failed Copy left its destination")
	}
}

func TestMove(t *testing.T) {
	dir := t.TempDir()
	sub := filepath.Join(dir, "msg")
	os.Mkdir(sub, 0o700)
	src, dst := filepath.Join(dir, "in"), filepath.Join(sub, "out")
	os.WriteFile(src, []byte("body"), 0o600)
	if err := Move(src, dst); err != nil {
		t.Fatalf("Move = %v", err)
	}
	if _, err := os.Stat(src); !errors.Is(err, fs.ErrNotExist) {
		t.Error("source still there after Move")
	}
	if b, _ := os.ReadFile(dst); string(b) != "body" {
		t.Errorf("moved file holds %q", b)
	}
	if err := Move(src, dst); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Move of a missing file = %v", err)
	}
	if err := SyncDir(filepath.Join(dir, "nope")); err == nil {
		t.Error("SyncDir of a missing directory = nil")
	}
}

// TestMoveAcrossFileSystems: rename(2) fails with EXDEV between file
// systems; Move copies instead. /dev/shm is a tmpfs on Linux.
func TestMoveAcrossFileSystems(t *testing.T) {
	shm, err := os.MkdirTemp("/dev/shm", "safefile-")
	if err != nil {
		testenv.Missing(t, "a tmpfs at /dev/shm: %v", err)
	}
	defer os.RemoveAll(shm)
	src := filepath.Join(shm, "in")
	dst := filepath.Join(t.TempDir(), "out")
	os.WriteFile(src, []byte("across"), 0o644)
	if err := os.Link(src, dst); err == nil {
		testenv.Missing(t, "/dev/shm on another file system than %s", filepath.Dir(dst))
	}
	if err := Move(src, dst); err != nil {
		t.Fatalf("Move across file systems = %v", err)
	}
	if b, _ := os.ReadFile(dst); string(b) != "across" {
		t.Errorf("moved file holds %q", b)
	}
	if fi, _ := os.Stat(dst); fi.Mode().Perm() != 0o600 {
		t.Errorf("moved copy mode %v, want 0600", fi.Mode().Perm())
	}
	if _, err := os.Stat(src); !errors.Is(err, fs.ErrNotExist) {
		t.Error("source still there after Move")
	}
}

func TestWrite(t *testing.T) {
	dst := filepath.Join(t.TempDir(), "raw.eml")
	if err := Write(dst, strings.NewReader("in memory")); err != nil {
		t.Fatalf("Write = %v", err)
	}
	if b, _ := os.ReadFile(dst); string(b) != "in memory" {
		t.Errorf("file holds %q", b)
	}
	if fi, _ := os.Stat(dst); fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, want 0600", fi.Mode().Perm())
	}
	if err := Write(dst, strings.NewReader("again")); !errors.Is(err, fs.ErrExist) {
		t.Errorf("Write onto an existing file = %v, want ErrExist", err)
	}
}
