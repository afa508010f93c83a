package pebbleq

import (
	"io"
	"os"

	"github.com/cockroachdb/pebble/v2/vfs"
)

// privateFS is the disk as Pebble sees it, with the store's files readable
// by their owner only (0600, directories 0700), like every other copy of
// a message mailhook keeps: Pebble creates them with the process's umask.
type privateFS struct{ vfs.FS }

func private(name string, err error) error {
	if err != nil {
		return err
	}
	return os.Chmod(name, 0o600)
}

func (fs privateFS) Create(name string, c vfs.DiskWriteCategory) (vfs.File, error) {
	f, err := fs.FS.Create(name, c)
	if err == nil {
		if err = private(name, nil); err != nil {
			f.Close()
		}
	}
	return f, err
}

func (fs privateFS) OpenReadWrite(name string, c vfs.DiskWriteCategory, opts ...vfs.OpenOption) (vfs.File, error) {
	f, err := fs.FS.OpenReadWrite(name, c, opts...)
	if err == nil {
		if err = private(name, nil); err != nil {
			f.Close()
		}
	}
	return f, err
}

func (fs privateFS) MkdirAll(dir string, _ os.FileMode) error { return fs.FS.MkdirAll(dir, 0o700) }

func (fs privateFS) Lock(name string) (io.Closer, error) {
	c, err := fs.FS.Lock(name)
	if err == nil {
		if err = private(name, nil); err != nil {
			c.Close()
		}
	}
	return c, err
}

func (fs privateFS) Unwrap() vfs.FS { return fs.FS }
