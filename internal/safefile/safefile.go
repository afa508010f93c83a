// Package safefile makes files durable: a file's data is fsync'd before
// it is renamed into place, and the directory is fsync'd after, so that
// after a crash the file is either absent or whole under its final name
// (rename(2) is atomic; without the directory fsync the rename itself may
// be lost). Files it creates are private (0600): they hold mail.
package safefile

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"syscall"
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
	_, err = io.Copy(out, r)
	if err == nil {
		err = out.Sync()
	}
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(dst)
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
