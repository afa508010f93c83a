package mailbox

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"

	"github.com/mailhook/mailhook/internal/safefile"
	bolt "go.etcd.io/bbolt"
)

func (s *Store) blobPath(id [blobIDLen]byte) string {
	return filepath.Join(s.dir, blobDir, hex.EncodeToString(id[:]))
}

// writeBlob copies r into a new body file: temp file, write (CRLF line
// endings), fsync, rename, fsync the directory. It returns the blob id and
// size; the caller commits the index or removes the blob.
func (s *Store) writeBlob(r io.Reader) (id [blobIDLen]byte, size int64, err error) {
	if _, err := rand.Read(id[:]); err != nil {
		return id, 0, err
	}
	f, err := os.CreateTemp(filepath.Join(s.dir, tmpDir), "msg-*")
	if err != nil {
		return id, 0, fmt.Errorf("mailbox: temp file: %w", err)
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(tmp)
		}
	}()
	bw := writerPool.Get().(*bufio.Writer)
	bw.Reset(f)
	defer func() { bw.Reset(nil); writerPool.Put(bw) }()
	size, err = copyCRLF(bw, io.LimitReader(r, s.opts.MaxMessageSize+1))
	if err != nil {
		return id, 0, fmt.Errorf("mailbox: write body: %w", err)
	}
	if size > s.opts.MaxMessageSize {
		return id, 0, fmt.Errorf("mailbox: %d bytes or more: %w", size, ErrTooLarge)
	}
	if err = bw.Flush(); err != nil {
		return id, 0, fmt.Errorf("mailbox: write body: %w", err)
	}
	if !s.opts.noSync {
		if err = f.Sync(); err != nil {
			return id, 0, fmt.Errorf("mailbox: sync body: %w", err)
		}
	}
	if err = f.Close(); err != nil {
		return id, 0, fmt.Errorf("mailbox: close body: %w", err)
	}
	if err = os.Rename(tmp, s.blobPath(id)); err != nil {
		return id, 0, fmt.Errorf("mailbox: rename body: %w", err)
	}
	if err = s.syncDir(filepath.Join(s.dir, blobDir)); err != nil {
		os.Remove(s.blobPath(id))
		return id, 0, fmt.Errorf("mailbox: sync dir: %w", err)
	}
	return id, size, nil
}

// Buffers for body writes, reused: a delivery would otherwise allocate
// 128 KiB.
var (
	readerPool = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, 64<<10) }}
	writerPool = sync.Pool{New: func() any { return bufio.NewWriterSize(nil, 64<<10) }}
)

// copyCRLF copies r to w turning bare LF into CRLF, so that the stored
// size is what IMAP (RFC 3501 §2.3.4 RFC822.SIZE) and POP3 send.
func copyCRLF(w *bufio.Writer, r io.Reader) (int64, error) {
	br := readerPool.Get().(*bufio.Reader)
	br.Reset(r)
	defer func() { br.Reset(nil); readerPool.Put(br) }()
	var n int64
	prevCR := false
	for {
		chunk, err := br.ReadSlice('\n')
		if len(chunk) > 0 {
			if chunk[len(chunk)-1] == '\n' {
				body := chunk[:len(chunk)-1]
				cr := (len(body) > 0 && body[len(body)-1] == '\r') || (len(body) == 0 && prevCR)
				if _, werr := w.Write(body); werr != nil {
					return n, werr
				}
				n += int64(len(body))
				if !cr {
					w.WriteByte('\r')
					n++
				}
				w.WriteByte('\n')
				n++
				prevCR = false
			} else {
				if _, werr := w.Write(chunk); werr != nil {
					return n, werr
				}
				n += int64(len(chunk))
				prevCR = chunk[len(chunk)-1] == '\r'
			}
		}
		switch {
		case err == nil, errors.Is(err, bufio.ErrBufferFull):
		case errors.Is(err, io.EOF):
			return n, nil
		default:
			return n, err
		}
	}
}

func (s *Store) syncDir(dir string) error {
	if s.opts.noSync {
		return nil
	}
	return safefile.SyncDir(dir)
}

func blobRef(tx *bolt.Tx, id [blobIDLen]byte, d int) (left uint32, err error) {
	b := tx.Bucket(bBlobs)
	var n uint32
	if v := b.Get(id[:]); len(v) == 4 {
		n = binary.BigEndian.Uint32(v)
	}
	n = uint32(max(int64(n)+int64(d), 0))
	if n == 0 {
		return 0, b.Delete(id[:])
	}
	return n, b.Put(id[:], u32(n))
}

// OpenMessage opens the body of a message returned by Messages or Get.
// If the message has been expunged and its body removed since, it returns
// an error wrapping ErrNoSuchMessage.
func (s *Store) OpenMessage(m Message) (Body, error) {
	f, err := os.Open(s.blobPath(m.blob))
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("mailbox: uid %d: %w", m.UID, ErrNoSuchMessage)
	}
	if err != nil {
		return nil, fmt.Errorf("mailbox: open body: %w", err)
	}
	return f, nil
}

// OpenBody opens the body of the message with the given UID.
func (s *Store) OpenBody(ctx context.Context, user, folder string, uid uint32) (Body, error) {
	msgs, err := s.Get(ctx, user, folder, []uint32{uid})
	if err != nil {
		return nil, err
	}
	if len(msgs) == 0 {
		return nil, fmt.Errorf("mailbox: uid %d: %w", uid, ErrNoSuchMessage)
	}
	return s.OpenMessage(msgs[0])
}
