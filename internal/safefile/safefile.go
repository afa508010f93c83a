// Package safefile makes files durable: a file's data is fsync'd before
// it is renamed into place, and the directory is fsync'd after, so that
// after a crash the file is either absent or whole under its final name
// (rename(2) is atomic; without the directory fsync the rename itself may
// be lost). Files it creates are private (0600): they hold mail.
package safefile

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"unicode"
	"unicode/utf8"
)

// SyncDir fsyncs the directory dir, making the names created, renamed or
// removed in it durable.
func SyncDir(dir string) error { return syncPath(dir) }

// syncPath fsyncs the file or directory at path.
func syncPath(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	err = f.Sync()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("fsync %s: %w", path, err)
	}
	return nil
}

// Copy copies src to a new file dst (mode 0600; an existing dst is an
// error) and fsyncs it. On failure dst is removed. The caller fsyncs
// dst's directory when the name must be durable too.
func Copy(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	return create(dst, in)
}

// Write makes the bytes of r durable in a new file dst (mode 0600; an
// existing dst is an error): it writes and fsyncs the file, then fsyncs
// its directory. On failure dst is removed.
func Write(dst string, r io.Reader) error {
	if err := create(dst, r); err != nil {
		return err
	}
	return SyncDir(filepath.Dir(dst))
}

// create writes r to the new file dst and fsyncs it; on failure dst is
// removed.
func create(dst string, r io.Reader) error {
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	return fill(out, r)
}

// fill writes r to the new file out, fsyncs and closes it; on failure the
// file is removed.
func fill(out *os.File, r io.Reader) error {
	_, err := io.Copy(out, r)
	if err == nil {
		err = out.Sync()
	}
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(out.Name())
	}
	return err
}

// Move makes src durable at dst: it fsyncs src, renames it to dst (copies
// and removes it when dst is on another file system) and fsyncs dst's
// directory.
func Move(src, dst string) error {
	if err := syncPath(src); err != nil {
		return err
	}
	err := os.Rename(src, dst)
	if errors.Is(err, syscall.EXDEV) {
		if err = Copy(src, dst); err == nil {
			os.Remove(src)
		}
	}
	if err != nil {
		return err
	}
	return SyncDir(filepath.Dir(dst))
}

// LoadOrCreateSecret returns the secret kept in the file at path, making
// one first when there is none: n random bytes, written as 2n hex digits
// and a newline (text, so that it can be copied into a config, such as
// relay.srs.secret, to give other nodes the same secret). The new file is
// made atomically, mode 0600: a temporary file is written and fsync'd,
// renamed to path, and the directory fsync'd, so a crash leaves either no
// file or the whole secret. An empty file (an older version's write cut
// short by a crash) is replaced.
//
// The secret is the file's content as it is kept: a text file's text
// without the surrounding white space (the hex digits themselves, not
// the bytes they encode), and a file that is not text (the raw random
// bytes older versions wrote) byte for byte, so that a secret made by an
// older version stays the same. A kept secret shorter than min bytes is an
// error naming the file.
func LoadOrCreateSecret(path string, n, min int) ([]byte, error) {
	b, err := os.ReadFile(path)
	switch {
	case err == nil && len(b) > 0:
		s := secretOf(b)
		if len(s) < min {
			return nil, fmt.Errorf("secret %s: %d bytes, want at least %d (remove the file to make a new one)", path, len(s), min)
		}
		return s, nil
	case err != nil && !errors.Is(err, fs.ErrNotExist):
		return nil, fmt.Errorf("secret: %w", err)
	}
	raw := make([]byte, n)
	if _, err := rand.Read(raw); err != nil {
		return nil, fmt.Errorf("secret %s: %w", path, err)
	}
	text := hex.EncodeToString(raw)
	if err := Replace(path, strings.NewReader(text+"\n")); err != nil {
		return nil, fmt.Errorf("secret: %w", err)
	}
	return []byte(text), nil
}

// secretOf is the secret a secret file's content b holds: the trimmed
// text when b is text (UTF-8 without control characters but white space
// around it), else b as it is.
func secretOf(b []byte) []byte {
	t := bytes.TrimSpace(b)
	if !utf8.Valid(t) {
		return b
	}
	for _, r := range string(t) {
		if unicode.IsControl(r) {
			return b
		}
	}
	return t
}

// Replace makes the bytes of r durable at dst, replacing any file there,
// atomically: r is written to a temporary file (mode 0600) beside dst and
// fsync'd, the file is renamed to dst and the directory fsync'd. A reader
// sees the old file or the whole new one, never part of it; on failure
// the temporary file is removed and dst is left as it was.
func Replace(dst string, r io.Reader) error {
	tmp, err := os.CreateTemp(filepath.Dir(dst), "."+filepath.Base(dst)+".tmp-*") // mode 0600
	if err != nil {
		return err
	}
	if err := fill(tmp, r); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), dst); err != nil {
		os.Remove(tmp.Name())
		return err
	}
	return SyncDir(filepath.Dir(dst))
}

// ErrTooLarge is ReadUpTo's error for a file over its limit.
var ErrTooLarge = errors.New("file over the size limit")

// ReadUpTo returns the whole file at path, or ErrTooLarge when it holds
// more than max bytes (max <= 0: no limit). It opens the file once, sizes
// one buffer from its descriptor (as os.ReadFile does, not io.ReadAll's
// doubling) and never reads past max+1 bytes, even if the file grows.
func ReadUpTo(path string, max int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	var r io.Reader = f
	if max > 0 {
		if st.Size() > max {
			return nil, ErrTooLarge
		}
		r = io.LimitReader(f, max+1)
	}
	buf := bytes.NewBuffer(make([]byte, 0, st.Size()+bytes.MinRead))
	if _, err := buf.ReadFrom(r); err != nil {
		return nil, err
	}
	if max > 0 && int64(buf.Len()) > max {
		return nil, ErrTooLarge
	}
	return buf.Bytes(), nil
}
