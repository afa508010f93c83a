package mailbox

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Index layout (bbolt):
//
//	meta/   "uidvalidity" → last UIDVALIDITY handed out (u32)
//	blobs/  blob id (16 bytes) → reference count (u32)
//	dedup/  key → dedupRecord (JSON)
//	dedupt/ time (u64 unix nano) + key → nil, for pruning by age
//	users/  <user>/ "f"/ <folder name> → folderMeta (JSON)
//	                "m"/ <folder id u64>/ <uid u32> → message record
//	                "used" → bytes stored (i64)
var (
	bMeta   = []byte("meta")
	bBlobs  = []byte("blobs")
	bDedup  = []byte("dedup")
	bDedupT = []byte("dedupt")
	bUsers  = []byte("users")
	bF      = []byte("f")
	bM      = []byte("m")
	kUsed   = []byte("used")
	bSubs   = []byte("subs")
	kUIDV   = []byte("uidvalidity")
)

const blobIDLen = 16

type folderMeta struct {
	ID          uint64 `json:"id"`
	UIDValidity uint32 `json:"uidvalidity"`
	UIDNext     uint32 `json:"uidnext"`
	ModSeq      uint64 `json:"modseq"`
	Subscribed  bool   `json:"subscribed,omitempty"`
	SpecialUse  string `json:"special_use,omitempty"`
	Messages    uint32 `json:"messages"`
	Unseen      uint32 `json:"unseen"`
	Size        int64  `json:"size"`
	// RecentUID is the first UID no IMAP session has been told about
	// yet: the messages from it on are \Recent (RFC 3501 §2.3.2).
	RecentUID uint32 `json:"recent_uid,omitempty"`
}

type dedupRecord struct {
	User        string `json:"user"`
	FolderID    uint64 `json:"folder_id"`
	UIDValidity uint32 `json:"uidvalidity"`
	UID         uint32 `json:"uid"`
	At          int64  `json:"at"`
}

// Open opens (creating if needed) the store under dir. It removes body
// files that no index entry references — left by a crash between the body
// write and the index commit, or between an expunge commit and the file
// removal — and empties the temp directory.
func Open(dir string, opts Options) (*Store, error) {
	if opts.DedupTTL <= 0 {
		opts.DedupTTL = 7 * 24 * time.Hour
	}
	if opts.MaxMessageSize <= 0 {
		opts.MaxMessageSize = 64 << 20
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.OpenTimeout <= 0 {
		opts.OpenTimeout = 5 * time.Second
	}
	for _, d := range []string{dir, filepath.Join(dir, blobDir), filepath.Join(dir, tmpDir)} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, fmt.Errorf("mailbox: create %s: %w", d, err)
		}
	}
	db, err := bolt.Open(filepath.Join(dir, indexFile), 0o600, &bolt.Options{Timeout: opts.OpenTimeout, NoSync: opts.noSync})
	if err != nil {
		return nil, fmt.Errorf("mailbox: open index: %w", err)
	}
	s := &Store{
		dir:      dir,
		opts:     opts,
		db:       db,
		log:      opts.Logger,
		watchers: make(map[watchKey]map[*Watcher]struct{}),
		locks:    make(map[watchKey]struct{}),
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bMeta, bBlobs, bDedup, bDedupT, bUsers} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		return nil
	})
	if err == nil {
		err = s.cleanup()
	}
	if err == nil {
		_, err = s.PruneDedup(context.Background())
	}
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("mailbox: open %s: %w", dir, err)
	}
	return s, nil
}

// cleanup removes temp files and unreferenced bodies. It runs in Open,
// while this process holds the index's exclusive file lock, so no other
// writer can be between a body write and its commit.
func (s *Store) cleanup() error {
	tmp := filepath.Join(s.dir, tmpDir)
	ents, err := os.ReadDir(tmp)
	if err != nil {
		return err
	}
	for _, e := range ents {
		os.Remove(filepath.Join(tmp, e.Name()))
	}
	ents, err = os.ReadDir(filepath.Join(s.dir, blobDir))
	if err != nil {
		return err
	}
	removed := 0
	err = s.db.View(func(tx *bolt.Tx) error {
		blobs := tx.Bucket(bBlobs)
		for _, e := range ents {
			id, err := hex.DecodeString(e.Name())
			if err == nil && len(id) == blobIDLen && blobs.Get(id) != nil {
				continue
			}
			if err := os.Remove(filepath.Join(s.dir, blobDir, e.Name())); err != nil {
				return err
			}
			removed++
		}
		return nil
	})
	if err != nil {
		return err
	}
	if removed > 0 {
		s.log.Info("mailbox: removed orphan bodies", "count", removed)
		return syncDir(filepath.Join(s.dir, blobDir))
	}
	return nil
}

// PruneDedup forgets dedup keys older than Options.DedupTTL. Open runs it;
// a long-running process may call it now and then. It returns the number
// of keys removed.
func (s *Store) PruneDedup(ctx context.Context) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	s.lastPrune.Store(s.opts.Now().UnixNano())
	limit := s.opts.Now().Add(-s.opts.DedupTTL).UnixNano()
	n := 0
	err := s.db.Update(func(tx *bolt.Tx) error {
		bt, bd := tx.Bucket(bDedupT), tx.Bucket(bDedup)
		c := bt.Cursor()
		var del [][]byte
		for k, _ := c.First(); k != nil && len(k) >= 8; k, _ = c.Next() {
			if int64(binary.BigEndian.Uint64(k)) >= limit {
				break
			}
			del = append(del, bytes.Clone(k))
		}
		for _, k := range del {
			if err := bt.Delete(k); err != nil {
				return err
			}
			if err := bd.Delete(k[8:]); err != nil {
				return err
			}
		}
		n = len(del)
		return nil
	})
	return n, err
}

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
	return syncDir(dir)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// --- names ---

// normFolder validates a folder name and spells INBOX in upper case.
func normFolder(name string) (string, error) {
	if strings.EqualFold(name, Inbox) {
		return Inbox, nil
	}
	if name == "" || len(name) > 512 || strings.ContainsAny(name, "\x00\r\n*%") ||
		name[0] == Delimiter || name[len(name)-1] == Delimiter || strings.Contains(name, "//") {
		return "", fmt.Errorf("mailbox: folder %q: %w", name, ErrInvalidName)
	}
	if i := strings.IndexByte(name, Delimiter); i > 0 && strings.EqualFold(name[:i], Inbox) {
		name = Inbox + name[i:]
	}
	return name, nil
}

func checkUser(user string) error {
	if user == "" || len(user) > 255 || strings.ContainsAny(user, "\x00\r\n") {
		return fmt.Errorf("mailbox: user %q: %w", user, ErrInvalidName)
	}
	return nil
}

// --- records ---

// message record: blob(16) size(8) date(8, unix nano) modseq(8) flags
// ("\n"-separated).
func encodeMsg(m *Message) []byte {
	b := make([]byte, 0, blobIDLen+24+16*len(m.Flags))
	b = append(b, m.blob[:]...)
	b = binary.BigEndian.AppendUint64(b, uint64(m.Size))
	b = binary.BigEndian.AppendUint64(b, uint64(m.Date.UnixNano()))
	b = binary.BigEndian.AppendUint64(b, m.ModSeq)
	b = append(b, strings.Join(m.Flags, "\n")...)
	return b
}

func decodeMsg(uid uint32, b []byte) (Message, error) {
	var m Message
	if len(b) < blobIDLen+24 {
		return m, fmt.Errorf("mailbox: corrupt message record uid %d", uid)
	}
	m.UID = uid
	copy(m.blob[:], b)
	b = b[blobIDLen:]
	m.Size = int64(binary.BigEndian.Uint64(b))
	m.Date = time.Unix(0, int64(binary.BigEndian.Uint64(b[8:])))
	m.ModSeq = binary.BigEndian.Uint64(b[16:])
	if f := b[24:]; len(f) > 0 {
		m.Flags = strings.Split(string(f), "\n")
	}
	return m, nil
}

func u32(v uint32) []byte { return binary.BigEndian.AppendUint32(nil, v) }
func u64(v uint64) []byte { return binary.BigEndian.AppendUint64(nil, v) }

// canonFlags returns flags deduplicated case-insensitively, system flags
// in their canonical spelling, \Recent and empty strings dropped, sorted.
func canonFlags(flags []string) []string {
	out := make([]string, 0, len(flags))
	for _, f := range flags {
		f = canonFlag(f)
		if f == "" || strings.EqualFold(f, `\Recent`) || strings.ContainsAny(f, "\n\x00") || hasFlag(out, f) {
			continue
		}
		out = append(out, f)
	}
	slices.Sort(out)
	return out
}

func canonFlag(f string) string {
	for _, sys := range []string{FlagSeen, FlagAnswered, FlagFlagged, FlagDeleted, FlagDraft} {
		if strings.EqualFold(f, sys) {
			return sys
		}
	}
	return f
}

func hasFlag(flags []string, f string) bool {
	for _, x := range flags {
		if strings.EqualFold(x, f) {
			return true
		}
	}
	return false
}

// --- transactions helpers ---

// userTx is one user's buckets inside a transaction.
type userTx struct {
	tx      *bolt.Tx
	s       *Store
	name    string
	b       *bolt.Bucket
	folders *bolt.Bucket
	msgs    *bolt.Bucket
	changed map[uint64]struct{}
	freed   [][blobIDLen]byte
}

// user opens the user's buckets, creating the user and the default
// folders in a writable tx. In a read-only tx it returns a nil *userTx for
// a user never seen.
func (s *Store) user(tx *bolt.Tx, name string) (*userTx, error) {
	if err := checkUser(name); err != nil {
		return nil, err
	}
	users := tx.Bucket(bUsers)
	b := users.Bucket([]byte(name))
	if b == nil {
		if !tx.Writable() {
			return nil, nil
		}
		var err error
		if b, err = users.CreateBucket([]byte(name)); err != nil {
			return nil, err
		}
		if _, err = b.CreateBucket(bF); err != nil {
			return nil, err
		}
		if _, err = b.CreateBucket(bM); err != nil {
			return nil, err
		}
		u := &userTx{tx: tx, s: s, name: name, b: b, folders: b.Bucket(bF), msgs: b.Bucket(bM), changed: map[uint64]struct{}{}}
		for _, d := range DefaultFolders {
			if _, err := u.create(d.Name, d.SpecialUse, true); err != nil {
				return nil, err
			}
		}
		return u, nil
	}
	return &userTx{tx: tx, s: s, name: name, b: b, folders: b.Bucket(bF), msgs: b.Bucket(bM), changed: map[uint64]struct{}{}}, nil
}

// writeUser runs fn on the user in a write transaction, then signals the
// watchers of changed folders and removes the bodies freed by the commit.
func (s *Store) writeUser(ctx context.Context, name string, fn func(u *userTx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	var u *userTx
	err := s.db.Update(func(tx *bolt.Tx) error {
		var err error
		if u, err = s.user(tx, name); err != nil {
			return err
		}
		return fn(u)
	})
	if err != nil {
		return err
	}
	s.afterCommit(u)
	return nil
}

func (s *Store) afterCommit(u *userTx) {
	for id := range u.changed {
		s.notify(watchKey{u.name, id})
	}
	if len(u.freed) > 0 {
		for _, id := range u.freed {
			if err := os.Remove(s.blobPath(id)); err != nil && !errors.Is(err, os.ErrNotExist) {
				s.log.Warn("mailbox: remove body", "err", err)
			}
		}
		// A crash before this sync leaves orphans that Open removes.
		s.syncDir(filepath.Join(s.dir, blobDir))
	}
}

// readUser runs fn on the user in a read transaction. A user never seen is
// created first (with its default folders).
func (s *Store) readUser(ctx context.Context, name string, fn func(u *userTx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	var missing bool
	err := s.db.View(func(tx *bolt.Tx) error {
		u, err := s.user(tx, name)
		if err != nil {
			return err
		}
		if u == nil {
			missing = true
			return nil
		}
		return fn(u)
	})
	if err != nil || !missing {
		return err
	}
	if err := s.EnsureUser(ctx, name); err != nil {
		return err
	}
	return s.db.View(func(tx *bolt.Tx) error {
		u, err := s.user(tx, name)
		if err != nil {
			return err
		}
		return fn(u)
	})
}

func (u *userTx) folder(name string) (string, *folderMeta, error) {
	name, err := normFolder(name)
	if err != nil {
		return "", nil, err
	}
	v := u.folders.Get([]byte(name))
	if v == nil {
		return name, nil, fmt.Errorf("mailbox: %q: %w", name, ErrNoSuchFolder)
	}
	var m folderMeta
	if err := json.Unmarshal(v, &m); err != nil {
		return name, nil, fmt.Errorf("mailbox: folder %q: %w", name, err)
	}
	return name, &m, nil
}

func (u *userTx) putFolder(name string, m *folderMeta) error {
	v, err := json.Marshal(m)
	if err != nil {
		return err
	}
	return u.folders.Put([]byte(name), v)
}

func (u *userTx) msgBucket(id uint64) *bolt.Bucket {
	return u.msgs.Bucket(u64(id))
}

// create makes a folder. Only the default folders start subscribed: CREATE
// does not subscribe (RFC 3501 §6.3.3, §6.3.6); clients subscribe
// themselves, and dovecot behaves the same.
func (u *userTx) create(name, specialUse string, subscribed bool) (*folderMeta, error) {
	name, err := normFolder(name)
	if err != nil {
		return nil, err
	}
	if u.folders.Get([]byte(name)) != nil {
		return nil, fmt.Errorf("mailbox: %q: %w", name, ErrFolderExists)
	}
	id, err := u.folders.NextSequence()
	if err != nil {
		return nil, err
	}
	// UIDVALIDITY must differ from any earlier folder of the same name
	// (RFC 3501 §2.3.1.1): a store-wide counter, never below the clock.
	meta := u.tx.Bucket(bMeta)
	var last uint32
	if v := meta.Get(kUIDV); len(v) == 4 {
		last = binary.BigEndian.Uint32(v)
	}
	uidv := max(last+1, uint32(u.s.opts.Now().Unix()))
	if err := meta.Put(kUIDV, u32(uidv)); err != nil {
		return nil, err
	}
	if _, err := u.msgs.CreateBucket(u64(id)); err != nil {
		return nil, err
	}
	// A subscription outlives its folder (RFC 3501 §6.3.6): a folder
	// created again under that name is subscribed again.
	if subs := u.b.Bucket(bSubs); subs != nil && subs.Get([]byte(name)) != nil {
		subscribed = true
		if err := subs.Delete([]byte(name)); err != nil {
			return nil, err
		}
	}
	m := &folderMeta{ID: id, UIDValidity: uidv, UIDNext: 1, ModSeq: 1, Subscribed: subscribed, SpecialUse: specialUse}
	return m, u.putFolder(name, m)
}

// createParents creates the missing parent levels of name as selectable
// folders (RFC 3501 §6.3.3 lets the server create them).
func (u *userTx) createParents(name string, subscribed bool) error {
	parts := strings.Split(name, string(Delimiter))
	for i := 1; i < len(parts); i++ {
		p := strings.Join(parts[:i], string(Delimiter))
		if u.folders.Get([]byte(p)) == nil {
			if _, err := u.create(p, "", subscribed); err != nil {
				return err
			}
		}
	}
	return nil
}

func (u *userTx) used() int64 {
	if v := u.b.Get(kUsed); len(v) == 8 {
		return int64(binary.BigEndian.Uint64(v))
	}
	return 0
}

func (u *userTx) addUsed(d int64) error {
	return u.b.Put(kUsed, u64(uint64(max(u.used()+d, 0))))
}

func (u *userTx) quotaCheck(add int64) error {
	if u.s.opts.Quota == nil || add <= 0 {
		return nil
	}
	q := u.s.opts.Quota(u.name)
	if q > 0 && u.used()+add > q {
		return fmt.Errorf("mailbox: user %s: %d+%d bytes exceeds %d: %w", u.name, u.used(), add, q, ErrOverQuota)
	}
	return nil
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

// appendMsg adds a message whose blob reference the caller accounts for.
func (u *userTx) appendMsg(name string, f *folderMeta, m *Message) error {
	m.UID = f.UIDNext
	f.UIDNext++
	f.ModSeq++
	m.ModSeq = f.ModSeq
	f.Messages++
	f.Size += m.Size
	if !m.HasFlag(FlagSeen) {
		f.Unseen++
	}
	if err := u.msgBucket(f.ID).Put(u32(m.UID), encodeMsg(m)); err != nil {
		return err
	}
	u.changed[f.ID] = struct{}{}
	return u.putFolder(name, f)
}

// removeMsg deletes a message record and drops its blob reference.
func (u *userTx) removeMsg(f *folderMeta, m *Message) error {
	if err := u.msgBucket(f.ID).Delete(u32(m.UID)); err != nil {
		return err
	}
	f.Messages--
	f.Size -= m.Size
	if !m.HasFlag(FlagSeen) {
		f.Unseen--
	}
	left, err := blobRef(u.tx, m.blob, -1)
	if err != nil {
		return err
	}
	if left == 0 {
		u.freed = append(u.freed, m.blob)
	}
	u.changed[f.ID] = struct{}{}
	return u.addUsed(-m.Size)
}

// messages returns every message of the folder in UID order.
func (u *userTx) messages(f *folderMeta) ([]Message, error) {
	msgs := make([]Message, 0, f.Messages)
	err := u.msgBucket(f.ID).ForEach(func(k, v []byte) error {
		m, err := decodeMsg(binary.BigEndian.Uint32(k), v)
		msgs = append(msgs, m)
		return err
	})
	return msgs, err
}

// getUIDs returns the messages of the folder with the given UIDs, in that
// order; UIDs that do not exist are skipped.
func (u *userTx) getUIDs(f *folderMeta, uids []uint32) ([]Message, error) {
	var msgs []Message
	for _, uid := range uids {
		m, ok, err := u.get(f, uid)
		if err != nil {
			return nil, err
		}
		if ok {
			msgs = append(msgs, m)
		}
	}
	return msgs, nil
}

// copyMsg appends a copy of m to dst, sharing its body (one more blob
// reference) and counting its size against the user's usage. It returns
// the copy's UID. Quota checks are the caller's.
func (u *userTx) copyMsg(dstN string, dst *folderMeta, m Message) (uint32, error) {
	if _, err := blobRef(u.tx, m.blob, +1); err != nil {
		return 0, err
	}
	if err := u.addUsed(m.Size); err != nil {
		return 0, err
	}
	if err := u.appendMsg(dstN, dst, &m); err != nil {
		return 0, err
	}
	return m.UID, nil
}

func (u *userTx) get(f *folderMeta, uid uint32) (Message, bool, error) {
	v := u.msgBucket(f.ID).Get(u32(uid))
	if v == nil {
		return Message{}, false, nil
	}
	m, err := decodeMsg(uid, v)
	return m, err == nil, err
}

func (f *folderMeta) export(name string) Folder {
	return Folder{
		Name: name, ID: f.ID, UIDValidity: f.UIDValidity, UIDNext: f.UIDNext, ModSeq: f.ModSeq,
		Subscribed: f.Subscribed, SpecialUse: f.SpecialUse, Messages: f.Messages, Unseen: f.Unseen, Size: f.Size,
		RecentUID: max(f.RecentUID, 1),
	}
}

// --- public operations ---

// EnsureUser creates the user and the default folders if they do not
// exist yet.
func (s *Store) EnsureUser(ctx context.Context, user string) error {
	return s.writeUser(ctx, user, func(*userTx) error { return nil })
}

// Deliver appends the message read from r to the user's folder ("" means
// INBOX) with internal date date (zero means now) and returns its UID.
//
// Deliver is idempotent on dedupKey (the queue job id): when a Deliver
// with the same non-empty key committed within Options.DedupTTL, it
// returns that UID and appends nothing. The key is recorded in the same
// index transaction as the message, so a crash at any point either
// delivered the message and recorded the key, or did neither.
//
// A folder that does not exist is created (subscribed). Over quota it
// returns an error wrapping ErrOverQuota; IsPermanent tells the queue
// whether to retry.
func (s *Store) Deliver(ctx context.Context, user, folder string, r io.Reader, date time.Time, dedupKey string) (uint32, error) {
	if folder == "" {
		folder = Inbox
	}
	if date.IsZero() {
		date = s.opts.Now()
	}
	if len(dedupKey) > 1024 {
		return 0, fmt.Errorf("mailbox: dedup key of %d bytes: %w", len(dedupKey), ErrInvalidName)
	}
	if dedupKey != "" {
		// Cheap early answer for a retried job: no body write at all.
		var uid uint32
		var found bool
		err := s.db.View(func(tx *bolt.Tx) error {
			rec, ok, err := getDedup(tx, dedupKey)
			uid, found = rec.UID, ok
			return err
		})
		if err != nil {
			return 0, fmt.Errorf("mailbox: deliver: %w", err)
		}
		if found {
			return uid, nil
		}
	}
	uid, _, err := s.appendBody(ctx, user, folder, r, date, nil, dedupKey, true)
	if err == nil && s.opts.Now().UnixNano()-s.lastPrune.Load() > int64(time.Hour) {
		// Keys older than DedupTTL go about hourly, not only at Open.
		if _, perr := s.PruneDedup(ctx); perr != nil {
			s.log.Warn("mailbox: prune dedup keys", "err", perr)
		}
	}
	return uid, err
}

// Append adds a message like IMAP APPEND (RFC 3501 §6.3.11) and returns
// the folder's UIDVALIDITY and the new UID (RFC 4315 APPENDUID).
func (s *Store) Append(ctx context.Context, user, folder string, r io.Reader, date time.Time, flags []string) (uidValidity, uid uint32, err error) {
	if date.IsZero() {
		date = s.opts.Now()
	}
	uid, uidValidity, err = s.appendBody(ctx, user, folder, r, date, flags, "", false)
	return uidValidity, uid, err
}

// IsPermanent reports whether a Deliver error will not go away by
// retrying: over quota, too large, an invalid user or folder name. The
// queue dead-letters those with the reason; anything else (disk, index)
// is retried.
func IsPermanent(err error) bool {
	return errors.Is(err, ErrOverQuota) || errors.Is(err, ErrTooLarge) || errors.Is(err, ErrInvalidName)
}

func getDedup(tx *bolt.Tx, key string) (dedupRecord, bool, error) {
	var rec dedupRecord
	v := tx.Bucket(bDedup).Get([]byte(key))
	if v == nil {
		return rec, false, nil
	}
	if err := json.Unmarshal(v, &rec); err != nil {
		return rec, false, err
	}
	return rec, true, nil
}

func (s *Store) appendBody(ctx context.Context, user, folder string, r io.Reader, date time.Time, flags []string, dedupKey string, create bool) (uid, uidv uint32, err error) {
	if err := ctx.Err(); err != nil {
		return 0, 0, err
	}
	if err := checkUser(user); err != nil {
		return 0, 0, err
	}
	if _, err := normFolder(folder); err != nil {
		return 0, 0, err
	}
	// Refuse before writing the body what the commit would refuse anyway:
	// a folder APPEND may not create, a user already at quota.
	err = s.readUser(ctx, user, func(u *userTx) error {
		if _, _, err := u.folder(folder); err != nil && !(create && errors.Is(err, ErrNoSuchFolder)) {
			return err
		}
		return u.quotaCheck(1)
	})
	if err != nil {
		return 0, 0, fmt.Errorf("mailbox: append to %s/%s: %w", user, folder, err)
	}
	id, size, err := s.writeBlob(r)
	if err != nil {
		return 0, 0, err
	}
	committed := false
	defer func() {
		if !committed {
			os.Remove(s.blobPath(id))
		}
	}()
	dup := false
	err = s.writeUser(ctx, user, func(u *userTx) error {
		if dedupKey != "" {
			rec, ok, err := getDedup(u.tx, dedupKey)
			if err != nil {
				return err
			}
			if ok {
				dup, uid, uidv = true, rec.UID, rec.UIDValidity
				return nil
			}
		}
		name, f, err := u.folder(folder)
		if errors.Is(err, ErrNoSuchFolder) && create {
			// A delivery (not an IMAP APPEND, which answers TRYCREATE)
			// creates the folder a route names, like Sieve's
			// fileinto :create (RFC 5228, RFC 5490 §3.2).
			if f, err = u.create(name, "", true); err == nil {
				err = u.createParents(name, true)
			}
		}
		if err != nil {
			return err
		}
		if err := u.quotaCheck(size); err != nil {
			return err
		}
		m := &Message{Size: size, Date: date, Flags: canonFlags(flags), blob: id}
		if err := u.appendMsg(name, f, m); err != nil {
			return err
		}
		if _, err := blobRef(u.tx, id, +1); err != nil {
			return err
		}
		if err := u.addUsed(size); err != nil {
			return err
		}
		uid, uidv = m.UID, f.UIDValidity
		if dedupKey != "" {
			now := s.opts.Now().UnixNano()
			v, _ := json.Marshal(dedupRecord{User: user, FolderID: f.ID, UIDValidity: f.UIDValidity, UID: m.UID, At: now})
			if err := u.tx.Bucket(bDedup).Put([]byte(dedupKey), v); err != nil {
				return err
			}
			tk := append(u64(uint64(now)), dedupKey...)
			if err := u.tx.Bucket(bDedupT).Put(tk, nil); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return 0, 0, fmt.Errorf("mailbox: append to %s/%s: %w", user, folder, err)
	}
	committed = !dup
	return uid, uidv, nil
}

// Folders lists the user's folders sorted by name.
func (s *Store) Folders(ctx context.Context, user string) ([]Folder, error) {
	var out []Folder
	err := s.readUser(ctx, user, func(u *userTx) error {
		return u.folders.ForEach(func(k, v []byte) error {
			var m folderMeta
			if err := json.Unmarshal(v, &m); err != nil {
				return err
			}
			out = append(out, m.export(string(k)))
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("mailbox: list folders of %s: %w", user, err)
	}
	return out, nil
}

// Folder returns one folder's description and counts (IMAP STATUS).
func (s *Store) Folder(ctx context.Context, user, name string) (Folder, error) {
	var out Folder
	err := s.readUser(ctx, user, func(u *userTx) error {
		n, f, err := u.folder(name)
		if err != nil {
			return err
		}
		out = f.export(n)
		return nil
	})
	return out, err
}

// CreateFolder creates a folder (RFC 3501 §6.3.3), not subscribed.
// Missing parent levels are created too, as selectable folders.
func (s *Store) CreateFolder(ctx context.Context, user, name string) error {
	return s.writeUser(ctx, user, func(u *userTx) error {
		n, err := normFolder(name)
		if err != nil {
			return err
		}
		if err := u.createParents(n, false); err != nil {
			return err
		}
		_, err = u.create(n, "", false)
		return err
	})
}

// DeleteFolder deletes a folder and its messages (RFC 3501 §6.3.4). INBOX
// cannot be deleted; a folder with children cannot either.
func (s *Store) DeleteFolder(ctx context.Context, user, name string) error {
	return s.writeUser(ctx, user, func(u *userTx) error {
		n, f, err := u.folder(name)
		if err != nil {
			return err
		}
		if n == Inbox {
			return fmt.Errorf("mailbox: cannot delete INBOX: %w", ErrInvalidName)
		}
		c := u.folders.Cursor()
		prefix := []byte(n + string(Delimiter))
		if k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix) {
			return fmt.Errorf("mailbox: %q has children: %w", n, ErrInvalidName)
		}
		msgs, err := u.messages(f)
		if err != nil {
			return err
		}
		for i := range msgs {
			if err := u.removeMsg(f, &msgs[i]); err != nil {
				return err
			}
		}
		if err := u.msgs.DeleteBucket(u64(f.ID)); err != nil {
			return err
		}
		u.changed[f.ID] = struct{}{}
		if f.Subscribed {
			// RFC 3501 §6.3.4: DELETE does not unsubscribe.
			subs, err := u.b.CreateBucketIfNotExists(bSubs)
			if err != nil {
				return err
			}
			if err := subs.Put([]byte(n), []byte{}); err != nil {
				return err
			}
		}
		return u.folders.Delete([]byte(n))
	})
}

// RenameFolder renames a folder and its children (RFC 3501 §6.3.5). The
// UIDVALIDITY is kept. Renaming INBOX moves its messages to a new folder
// and leaves INBOX empty, as RFC 3501 requires.
func (s *Store) RenameFolder(ctx context.Context, user, from, to string) error {
	return s.writeUser(ctx, user, func(u *userTx) error {
		fromN, f, err := u.folder(from)
		if err != nil {
			return err
		}
		toN, err := normFolder(to)
		if err != nil {
			return err
		}
		if u.folders.Get([]byte(toN)) != nil {
			return fmt.Errorf("mailbox: %q: %w", toN, ErrFolderExists)
		}
		if toN == fromN || strings.HasPrefix(toN, fromN+string(Delimiter)) {
			return fmt.Errorf("mailbox: rename %q into itself: %w", fromN, ErrInvalidName)
		}
		if fromN == Inbox {
			nf, err := u.create(toN, "", false)
			if err != nil {
				return err
			}
			msgs, err := u.messages(f)
			if err != nil {
				return err
			}
			for i := range msgs {
				if _, err := u.copyMsg(toN, nf, msgs[i]); err != nil {
					return err
				}
				if err := u.removeMsg(f, &msgs[i]); err != nil {
					return err
				}
			}
			f.ModSeq++
			return u.putFolder(Inbox, f)
		}
		// Children first: collect every name under fromN/.
		type ren struct{ old, new string }
		renames := []ren{{fromN, toN}}
		c := u.folders.Cursor()
		prefix := []byte(fromN + string(Delimiter))
		for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
			renames = append(renames, ren{string(k), toN + string(k[len(fromN):])})
		}
		// Missing parents of the new name.
		parts := strings.Split(toN, string(Delimiter))
		for i := 1; i < len(parts); i++ {
			p := strings.Join(parts[:i], string(Delimiter))
			if u.folders.Get([]byte(p)) == nil {
				if _, err := u.create(p, "", false); err != nil {
					return err
				}
			}
		}
		for _, r := range renames {
			v := bytes.Clone(u.folders.Get([]byte(r.old)))
			var m folderMeta
			if err := json.Unmarshal(v, &m); err != nil {
				return err
			}
			u.changed[m.ID] = struct{}{}
			if err := u.folders.Delete([]byte(r.old)); err != nil {
				return err
			}
			if err := u.folders.Put([]byte(r.new), v); err != nil {
				return err
			}
		}
		return nil
	})
}

// Subscribe sets the subscription state of a folder (RFC 3501 §6.3.6-7).
func (s *Store) Subscribe(ctx context.Context, user, name string, subscribed bool) error {
	return s.writeUser(ctx, user, func(u *userTx) error {
		n, f, err := u.folder(name)
		if errors.Is(err, ErrNoSuchFolder) {
			// RFC 3501 §6.3.6: a name may be subscribed without a
			// folder (deleted, or not created yet).
			if n, err = normFolder(name); err != nil {
				return err
			}
			if !subscribed {
				subs := u.b.Bucket(bSubs)
				if subs == nil || subs.Get([]byte(n)) == nil {
					return fmt.Errorf("mailbox: %q is not subscribed: %w", n, ErrNoSuchFolder)
				}
				return subs.Delete([]byte(n))
			}
			subs, err := u.b.CreateBucketIfNotExists(bSubs)
			if err != nil {
				return err
			}
			return subs.Put([]byte(n), []byte{})
		}
		if err != nil {
			return err
		}
		f.Subscribed = subscribed
		return u.putFolder(n, f)
	})
}

// Subscriptions returns the subscribed names that have no folder (RFC
// 3501 §6.3.6; LIST-EXTENDED answers them \NonExistent, RFC 5258 §3.4).
func (s *Store) Subscriptions(ctx context.Context, user string) ([]string, error) {
	var out []string
	err := s.readUser(ctx, user, func(u *userTx) error {
		subs := u.b.Bucket(bSubs)
		if subs == nil {
			return nil
		}
		return subs.ForEach(func(k, _ []byte) error {
			out = append(out, string(k))
			return nil
		})
	})
	return out, err
}

// ClaimRecent hands the folder's \Recent messages to one IMAP session
// (RFC 3501 §2.3.2: only one session sees a message as recent): it
// returns the first recent UID and marks every message up to uidNext as
// seen by a session. Peeking sessions (EXAMINE) read Folder.RecentUID
// instead.
func (s *Store) ClaimRecent(ctx context.Context, user, folder string, uidNext uint32) (uint32, error) {
	var first uint32
	err := s.writeUser(ctx, user, func(u *userTx) error {
		n, f, err := u.folder(folder)
		if err != nil {
			return err
		}
		first = max(f.RecentUID, 1)
		if uidNext <= first {
			return nil
		}
		f.RecentUID = uidNext
		return u.putFolder(n, f)
	})
	return first, err
}

// Messages returns the folder and its messages in UID order.
func (s *Store) Messages(ctx context.Context, user, folder string) (Folder, []Message, error) {
	var (
		out  Folder
		msgs []Message
	)
	err := s.readUser(ctx, user, func(u *userTx) error {
		n, f, err := u.folder(folder)
		if err != nil {
			return err
		}
		out = f.export(n)
		msgs, err = u.messages(f)
		return err
	})
	if err != nil {
		return Folder{}, nil, err
	}
	return out, msgs, nil
}

// Get returns the messages with the given UIDs that exist, in the order
// asked.
func (s *Store) Get(ctx context.Context, user, folder string, uids []uint32) ([]Message, error) {
	var msgs []Message
	err := s.readUser(ctx, user, func(u *userTx) error {
		_, f, err := u.folder(folder)
		if err != nil {
			return err
		}
		msgs, err = u.getUIDs(f, uids)
		return err
	})
	return msgs, err
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

// SetFlags changes the flags of the messages with the given UIDs (RFC 3501
// §6.4.6) and returns them with their new flags. UIDs that do not exist
// are skipped.
func (s *Store) SetFlags(ctx context.Context, user, folder string, uids []uint32, op FlagOp, flags []string) ([]Message, error) {
	flags = canonFlags(flags)
	var out []Message
	err := s.writeUser(ctx, user, func(u *userTx) error {
		n, f, err := u.folder(folder)
		if err != nil {
			return err
		}
		changed := false
		for _, uid := range uids {
			m, ok, err := u.get(f, uid)
			if err != nil {
				return err
			}
			if !ok {
				continue
			}
			var nf []string
			switch op {
			case FlagsReplace:
				nf = flags
			case FlagsAdd:
				nf = canonFlags(append(slices.Clone(m.Flags), flags...))
			case FlagsRemove:
				nf = slices.DeleteFunc(slices.Clone(m.Flags), func(x string) bool { return hasFlag(flags, x) })
			}
			if slices.Equal(nf, m.Flags) {
				out = append(out, m)
				continue
			}
			wasSeen := m.HasFlag(FlagSeen)
			m.Flags = nf
			f.ModSeq++
			m.ModSeq = f.ModSeq
			switch isSeen := m.HasFlag(FlagSeen); {
			case wasSeen && !isSeen:
				f.Unseen++
			case !wasSeen && isSeen:
				f.Unseen--
			}
			if err := u.msgBucket(f.ID).Put(u32(uid), encodeMsg(&m)); err != nil {
				return err
			}
			changed = true
			out = append(out, m)
		}
		if !changed {
			return nil
		}
		u.changed[f.ID] = struct{}{}
		return u.putFolder(n, f)
	})
	if err != nil {
		return nil, fmt.Errorf("mailbox: set flags: %w", err)
	}
	return out, nil
}

// CopyResult is the outcome of Copy and Move (RFC 4315 COPYUID).
type CopyResult struct {
	// UIDValidity is the destination folder's UIDVALIDITY.
	UIDValidity uint32
	// Source and Dest pair the UIDs copied, in order.
	Source, Dest []uint32
}

// Copy copies messages to dest (RFC 3501 §6.4.7). Bodies are shared, not
// duplicated, but count against the quota again.
func (s *Store) Copy(ctx context.Context, user, folder string, uids []uint32, dest string) (CopyResult, error) {
	return s.copyMove(ctx, user, folder, uids, dest, false)
}

// Move moves messages to dest (RFC 6851): copy and expunge in one
// transaction.
func (s *Store) Move(ctx context.Context, user, folder string, uids []uint32, dest string) (CopyResult, error) {
	return s.copyMove(ctx, user, folder, uids, dest, true)
}

func (s *Store) copyMove(ctx context.Context, user, folder string, uids []uint32, dest string, move bool) (CopyResult, error) {
	var res CopyResult
	err := s.writeUser(ctx, user, func(u *userTx) error {
		srcN, src, err := u.folder(folder)
		if err != nil {
			return err
		}
		dstN, dst, err := u.folder(dest)
		if err != nil {
			return err
		}
		if src.ID == dst.ID {
			// COPY into the same folder duplicates (RFC 3501 §6.4.7
			// does not forbid it; dovecot allows it), MOVE gives the
			// messages new UIDs (RFC 6851 §3.3, as dovecot): one meta to
			// update.
			dst = src
		}
		msgs, err := u.getUIDs(src, uids)
		if err != nil {
			return err
		}
		if !move {
			var total int64
			for _, m := range msgs {
				total += m.Size
			}
			if err := u.quotaCheck(total); err != nil {
				return err
			}
		}
		res.UIDValidity = dst.UIDValidity
		for _, m := range msgs {
			uid, err := u.copyMsg(dstN, dst, m)
			if err != nil {
				return err
			}
			res.Source = append(res.Source, m.UID)
			res.Dest = append(res.Dest, uid)
			if move {
				if err := u.removeMsg(src, &m); err != nil {
					return err
				}
			}
		}
		if move && len(msgs) > 0 {
			src.ModSeq++
			return u.putFolder(srcN, src)
		}
		return nil
	})
	if err != nil {
		return CopyResult{}, fmt.Errorf("mailbox: copy to %s: %w", dest, err)
	}
	return res, nil
}

// Expunge removes the messages flagged \Deleted (RFC 3501 §6.4.3), only
// those among uids when uids is not nil (RFC 4315 UID EXPUNGE). It returns
// the UIDs removed.
func (s *Store) Expunge(ctx context.Context, user, folder string, uids []uint32) ([]uint32, error) {
	return s.remove(ctx, user, folder, uids, true)
}

// Remove removes the messages with the given UIDs whatever their flags
// (POP3 DELE applied at QUIT, RFC 1939 §6). It returns the UIDs removed.
func (s *Store) Remove(ctx context.Context, user, folder string, uids []uint32) ([]uint32, error) {
	if uids == nil {
		return nil, nil
	}
	return s.remove(ctx, user, folder, uids, false)
}

func (s *Store) remove(ctx context.Context, user, folder string, uids []uint32, onlyDeleted bool) ([]uint32, error) {
	var out []uint32
	err := s.writeUser(ctx, user, func(u *userTx) error {
		n, f, err := u.folder(folder)
		if err != nil {
			return err
		}
		var msgs []Message
		if uids == nil {
			msgs, err = u.messages(f)
		} else {
			msgs, err = u.getUIDs(f, uids)
		}
		if err != nil {
			return err
		}
		for i := range msgs {
			if onlyDeleted && !msgs[i].HasFlag(FlagDeleted) {
				continue
			}
			if err := u.removeMsg(f, &msgs[i]); err != nil {
				return err
			}
			out = append(out, msgs[i].UID)
		}
		if len(out) == 0 {
			return nil
		}
		f.ModSeq++
		return u.putFolder(n, f)
	})
	if err != nil {
		return nil, fmt.Errorf("mailbox: expunge: %w", err)
	}
	slices.Sort(out)
	return out, nil
}

// CheckQuota reports whether size more bytes fit in the user's quota: nil,
// or an error wrapping ErrOverQuota. The SMTP front end calls it at end of
// data to refuse with 452 4.2.2 while it still can (RFC 3463 §3.3); the
// append itself checks again.
func (s *Store) CheckQuota(ctx context.Context, user string, size int64) error {
	if s.opts.Quota == nil {
		return nil
	}
	return s.readUser(ctx, user, func(u *userTx) error { return u.quotaCheck(size) })
}

// Usage returns the bytes stored for user (what the quota counts).
func (s *Store) Usage(ctx context.Context, user string) (int64, error) {
	var n int64
	err := s.readUser(ctx, user, func(u *userTx) error { n = u.used(); return nil })
	return n, err
}

// Watch returns a Watcher signalled on each change of the folder.
// Close it when done.
func (s *Store) Watch(ctx context.Context, user, folder string) (*Watcher, error) {
	f, err := s.Folder(ctx, user, folder)
	if err != nil {
		return nil, err
	}
	c := make(chan struct{}, 1)
	w := &Watcher{C: c, c: c, s: s, key: watchKey{user, f.ID}}
	s.mu.Lock()
	defer s.mu.Unlock()
	m := s.watchers[w.key]
	if m == nil {
		m = make(map[*Watcher]struct{})
		s.watchers[w.key] = m
	}
	m[w] = struct{}{}
	return w, nil
}

func (s *Store) notify(k watchKey) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for w := range s.watchers[k] {
		select {
		case w.c <- struct{}{}:
		default:
		}
	}
}

// TryLock takes the folder's exclusive lock, held by a POP3 session for
// its length (RFC 1939 §8). It returns ErrLocked (wrapped) when another
// holder has it. The lock is in-process only.
func (s *Store) TryLock(ctx context.Context, user, folder string) (unlock func(), err error) {
	f, err := s.Folder(ctx, user, folder)
	if err != nil {
		return nil, err
	}
	k := watchKey{user, f.ID}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, held := s.locks[k]; held {
		return nil, fmt.Errorf("mailbox: %s/%s: %w", user, f.Name, ErrLocked)
	}
	s.locks[k] = struct{}{}
	var once bool
	return func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		if !once {
			once = true
			delete(s.locks, k)
		}
	}, nil
}

// Verify checks the store's consistency: every message's body exists and
// has the recorded size, reference counts match, folder counts and quota
// usage match the messages, no unreferenced body file remains. Run it on
// a quiescent store: a delivery in flight has a body not yet indexed.
func (s *Store) Verify(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	var problems []string
	refs := map[[blobIDLen]byte]uint32{}
	err := s.db.View(func(tx *bolt.Tx) error {
		users := tx.Bucket(bUsers)
		err := users.ForEach(func(name, _ []byte) error {
			u, err := s.user(tx, string(name))
			if err != nil || u == nil {
				return err
			}
			var used int64
			err = u.folders.ForEach(func(k, v []byte) error {
				var f folderMeta
				if err := json.Unmarshal(v, &f); err != nil {
					return err
				}
				mb := u.msgBucket(f.ID)
				if mb == nil {
					problems = append(problems, fmt.Sprintf("%s/%s: no message bucket", name, k))
					return nil
				}
				var n, unseen uint32
				var size int64
				err := mb.ForEach(func(kk, vv []byte) error {
					m, err := decodeMsg(binary.BigEndian.Uint32(kk), vv)
					if err != nil {
						return err
					}
					n++
					size += m.Size
					if !m.HasFlag(FlagSeen) {
						unseen++
					}
					if m.UID >= f.UIDNext {
						problems = append(problems, fmt.Sprintf("%s/%s: uid %d >= uidnext %d", name, k, m.UID, f.UIDNext))
					}
					refs[m.blob]++
					st, err := os.Stat(s.blobPath(m.blob))
					switch {
					case err != nil:
						problems = append(problems, fmt.Sprintf("%s/%s uid %d: body: %v", name, k, m.UID, err))
					case st.Size() != m.Size:
						problems = append(problems, fmt.Sprintf("%s/%s uid %d: size %d, file %d", name, k, m.UID, m.Size, st.Size()))
					}
					return nil
				})
				if err != nil {
					return err
				}
				used += size
				if n != f.Messages || unseen != f.Unseen || size != f.Size {
					problems = append(problems, fmt.Sprintf("%s/%s: counts %d/%d/%d, recorded %d/%d/%d", name, k, n, unseen, size, f.Messages, f.Unseen, f.Size))
				}
				return nil
			})
			if err != nil {
				return err
			}
			if used != u.used() {
				problems = append(problems, fmt.Sprintf("%s: usage %d, recorded %d", name, used, u.used()))
			}
			return nil
		})
		if err != nil {
			return err
		}
		return tx.Bucket(bBlobs).ForEach(func(k, v []byte) error {
			var id [blobIDLen]byte
			copy(id[:], k)
			if got := binary.BigEndian.Uint32(v); got != refs[id] {
				problems = append(problems, fmt.Sprintf("blob %x: refcount %d, referenced %d", k, got, refs[id]))
			}
			delete(refs, id)
			return nil
		})
	})
	if err != nil {
		return fmt.Errorf("mailbox: verify: %w", err)
	}
	for id := range refs {
		problems = append(problems, fmt.Sprintf("blob %x: referenced but not counted", id))
	}
	ents, err := os.ReadDir(filepath.Join(s.dir, blobDir))
	if err != nil {
		return fmt.Errorf("mailbox: verify: %w", err)
	}
	err = s.db.View(func(tx *bolt.Tx) error {
		for _, e := range ents {
			id, _ := hex.DecodeString(e.Name())
			if len(id) != blobIDLen || tx.Bucket(bBlobs).Get(id) == nil {
				problems = append(problems, "orphan body file "+e.Name())
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("mailbox: verify: %w", err)
	}
	if len(problems) > 0 {
		return fmt.Errorf("mailbox: verify: %d problems: %s", len(problems), strings.Join(problems, "; "))
	}
	return nil
}
