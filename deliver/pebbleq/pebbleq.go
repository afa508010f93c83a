// Package pebbleq is the embedded queue backend: a deliver.Backend in a
// Pebble store (an LSM tree with a write-ahead log) under data_dir, with
// large raw messages in files beside it. It needs nothing installed and
// serves one node; it is what queue.backend "embedded" opens.
//
// Layout under <data_dir>/queue:
//
//	store/     Pebble: jobs, message records, mail JSON, small raw messages, commit keys
//	msg/*.eml  raw messages larger than InlineMax, one file each, named in their record
//	LOCK       held while a process has the queue open
//
// Every change (a commit, a take, a settlement, an operator's action) is
// one Pebble batch appended to the write-ahead log in the order the changes
// are made. A commit, a retry, a dead letter and an operator's action then
// wait for the log's fsync, which Pebble shares among every change
// appended meanwhile (group commit without a timer: one session pays one
// fsync, twenty sessions share few). A take and an ack do not wait for it:
// delivery is at least once, and a take or an ack that a crash loses only
// means the job is taken again (and its webhook sent again under the same
// webhook-id). The next fsync makes them durable; an acked message's file
// is removed only after it, so a lost ack finds its message whole. One
// fsync per accepted message.
//
// A small message (up to InlineMax) is written inside the commit's batch.
// A larger one: Commit fsyncs the raw file, renames it into msg/, fsyncs
// msg/, then commits the batch: the batch is the commit point. A crash
// before it leaves an unreferenced file that Open removes. Open also
// returns the leases of the previous process to the queue and dead-letters
// the jobs of a message whose raw data is missing, so nothing is lost
// silently and nothing crashes the server.
//
// Where each job is (ready, leased, dead, and by which time) is kept in
// memory only, rebuilt from the jobs at Open: Take never scans the store,
// whose deleted keys an LSM tree keeps until it compacts them away.
//
// The store replaced a bbolt file (deliver/boltq) as the embedded default.
// Measured on a 2-core machine with `go test -bench . ./deliver/boltq
// ./deliver/pebbleq` (2 KB messages; see README, "Performance"):
//
//	jobs/s                        bbolt (boltq)   Pebble (pebbleq)
//	commit, 16 concurrent         3056            5403
//	take 10 + ack each            2009            43884
//
// (2026-12-05, quiet machine; the take figure includes the ack not waiting
// for its fsync.) Serving mail end to end the difference is smaller: the
// queue is one of several costs (see README, "Performance").
//
// Open migrates a bbolt store it finds (queue/queue.db) into Pebble once,
// then renames queue.db to queue.db.migrated.
package pebbleq

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/bloom"
	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/mailhook/mailhook/deliver"
)

// ErrLocked means another process (a running `mailhook serve`) has the
// queue open.
var ErrLocked = errors.New("in use by another process")

// DefaultInlineMax is the size up to which a raw message is stored inside
// the commit's batch rather than as a file of its own: as large as the
// messages ingest holds in memory, so that such a message costs one log
// append and a shared fsync, not a file, its fsync and its directory's.
// (An acked message's copy mostly dies in the memtable; at 100 KB × 20
// sessions, 256 KB rather than 64 KB costs serve about 5% less CPU.)
const DefaultInlineMax = 256 << 10

// Options configures Open.
type Options struct {
	// Logger receives recovery and store reports; nil discards.
	Logger *slog.Logger
	// DedupWindow is how long a commit key is remembered (see
	// deliver.Queue.Commit); default deliver.DefaultDedupWindow.
	DedupWindow time.Duration
	// InlineMax is the largest raw message stored inside the store
	// (DefaultInlineMax when 0; negative stores every message as a file).
	InlineMax int64
	// Now returns the current time; nil means time.Now.
	Now func() time.Time
}

// Queue is the embedded deliver.Backend.
type Queue struct {
	db        *pebble.DB
	lock      interface{ Close() error }
	msgDir    string
	inlineMax int64
	dedup     time.Duration
	log       *slog.Logger
	now       func() time.Time

	// mu orders every change: the index is changed and the change's batch
	// applied under it, so the log holds the changes in index order.
	mu  sync.Mutex
	idx *index
	// nextPrune is when Commit next looks for expired commit keys;
	// pruneFrom is where the last look stopped (the expired keys before
	// it are deleted).
	nextPrune time.Time
	pruneFrom []byte

	// life is read-held by every call that uses the store and write-held
	// by Close, so the store is never used closed.
	life   sync.RWMutex
	closed bool

	closeOnce sync.Once
	closeErr  error

	// rmPending are the files of messages whose deletion is applied but
	// not yet synced (an Ack's): removed after the next sync, so that a
	// crash which loses the deletion finds the file still there. rmTimer
	// makes that sync happen within removeDelay when nothing else syncs.
	rmMu      sync.Mutex
	rmPending []string
	rmTimer   *time.Timer
}

// removeDelay bounds how long an acknowledged message's file waits for a
// sync that makes its deletion durable.
const removeDelay = 200 * time.Millisecond

// The store's memory: memtables of memTableSize, and a block cache that
// keeps blockCacheSize for blocks once the memtables' reservations are
// taken out of it (Open).
const (
	memTableSize   = 32 << 20
	blockCacheSize = 32 << 20
)

var _ deliver.Backend = (*Queue)(nil)

// Key prefixes: one byte, then the ID.
const (
	pJob      = 'j' // job id -> job JSON
	pMsg      = 'm' // msg id -> msgRecord JSON
	pMail     = 'a' // msg id -> inbound.Mail JSON
	pRaw      = 'r' // msg id -> raw message stored inline
	pDedup    = 'd' // commit key -> 8-byte window end (ns) + msg id
	pDedupExp = 'x' // 8-byte window end + commit key -> nothing
)

func key(p byte, id string) []byte {
	k := make([]byte, 1+len(id))
	k[0] = p
	copy(k[1:], id)
	return k
}

// prefixBounds returns the iterator bounds of every key with prefix p.
func prefixBounds(p byte) *pebble.IterOptions {
	return &pebble.IterOptions{LowerBound: []byte{p}, UpperBound: []byte{p + 1}}
}

// msgRecord is a committed message.
type msgRecord struct {
	File   string `json:"file,omitempty"`   // name under msg/; "" when Inline
	Inline bool   `json:"inline,omitempty"` // the raw message is under pRaw
}

// Open opens (creating if needed) the queue under dataDir/queue, migrates a
// bbolt store found there, recovers from a previous crash and locks the
// directory against other processes.
func Open(dataDir string, opts Options) (*Queue, error) {
	dir := filepath.Join(dataDir, "queue")
	q := &Queue{
		msgDir:    filepath.Join(dir, "msg"),
		log:       cmp.Or(opts.Logger, slog.New(slog.DiscardHandler)),
		now:       opts.Now,
		dedup:     cmp.Or(opts.DedupWindow, deliver.DefaultDedupWindow),
		inlineMax: cmp.Or(opts.InlineMax, DefaultInlineMax),
		idx:       newIndex(),
	}
	if q.now == nil {
		q.now = time.Now
	}
	if err := os.MkdirAll(q.msgDir, 0o700); err != nil {
		return nil, fmt.Errorf("pebbleq: %w", err)
	}
	fs := privateFS{vfs.Default}
	lock, err := fs.Lock(filepath.Join(dir, "LOCK"))
	if err != nil {
		return nil, fmt.Errorf("pebbleq: %s: %w (%v)", dir, ErrLocked, err)
	}
	q.lock = lock
	path := filepath.Join(dir, "store")
	popts := &pebble.Options{
		FS:                 fs,
		FormatMajorVersion: pebble.FormatNewest,
		Logger:             pebbleLogger{q.log},
		// Most messages are acked while their commit is still in the
		// memtable, where the flush drops them: with the 4 MB default,
		// 100 KB messages at 20 sessions were flushed and compacted
		// first (9% of serve's CPU). The log files stay until the flush.
		MemTableSize: memTableSize,
		// The index and filter blocks of every table stay cached while
		// messages' inline copies pass through. Pebble reserves each
		// memtable's size (the live one, and the one being flushed) out
		// of the block cache: the cache is that much larger, or nothing
		// stays in it and every commit-key lookup reads the table's
		// filter and index from the file.
		CacheSize: blockCacheSize + 2*memTableSize,
	}
	// Every commit looks up its commit key (isDupLocked, once), which is
	// absent but for a duplicate: Bloom filters on every level (the
	// levels below inherit L0's) answer that without reading a block.
	popts.Levels[0].FilterPolicy = bloom.FilterPolicy(10)
	db, err := pebble.Open(path, popts)
	if err != nil {
		lock.Close()
		return nil, fmt.Errorf("pebbleq: open %s: %w", path, err)
	}
	q.db = db
	err = q.migrate(dataDir)
	if err == nil {
		err = q.recover()
	}
	if err != nil {
		db.Close()
		lock.Close()
		return nil, fmt.Errorf("pebbleq: open %s: %w", path, err)
	}
	return q, nil
}

// sync makes every change applied so far durable: an empty record
// appended to the log with an fsync, which Pebble shares among every
// caller waiting at once.
func (q *Queue) sync() error {
	q.rmMu.Lock()
	rm := q.rmPending
	q.rmPending = nil
	q.rmMu.Unlock()
	if err := q.db.LogData(nil, pebble.Sync); err != nil {
		if len(rm) > 0 {
			q.rmMu.Lock()
			q.rmPending = append(q.rmPending, rm...)
			q.rmMu.Unlock()
		}
		return err
	}
	// The deletions of rm were applied before this sync began.
	for _, name := range rm {
		q.removeFile(name)
	}
	return nil
}

// removeAfterSync removes file name (of a message whose deletion is
// applied) once a sync has made the deletion durable: the next one, or
// one of its own within removeDelay.
func (q *Queue) removeAfterSync(name string) {
	if name == "" {
		return
	}
	q.rmMu.Lock()
	defer q.rmMu.Unlock()
	q.rmPending = append(q.rmPending, name)
	if q.rmTimer == nil {
		q.rmTimer = time.AfterFunc(removeDelay, q.syncPending)
	} else {
		q.rmTimer.Reset(removeDelay)
	}
}

// syncPending syncs for the files waiting in rmPending.
func (q *Queue) syncPending() {
	if err := q.enter(); err != nil {
		return // Close synced them
	}
	defer q.life.RUnlock()
	q.rmMu.Lock()
	n := len(q.rmPending)
	q.rmMu.Unlock()
	if n == 0 {
		return
	}
	if err := q.sync(); err != nil {
		q.log.Warn("queue: sync for delivered messages' files", "err", err)
		q.rmMu.Lock()
		q.rmTimer.Reset(removeDelay)
		q.rmMu.Unlock()
	}
}

// get returns a copy of k's value, deliver.ErrNotFound when k is absent.
func (q *Queue) get(k []byte) ([]byte, error) {
	v, closer, err := q.db.Get(k)
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, deliver.ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	out := make([]byte, len(v))
	copy(out, v)
	closer.Close()
	return out, nil
}

// lookup is get for keys that are mostly absent (the commit keys): an
// iterator that consults every level's Bloom filter, the last level's
// too, which Get leaves out, so a miss reads no data block.
func (q *Queue) lookup(k []byte) ([]byte, error) {
	it, err := q.db.NewIter(&pebble.IterOptions{UseL6Filters: true})
	if err != nil {
		return nil, err
	}
	defer it.Close()
	if !it.SeekPrefixGE(k) || !bytes.Equal(it.Key(), k) {
		if err := it.Error(); err != nil {
			return nil, err
		}
		return nil, deliver.ErrNotFound
	}
	v, err := it.ValueAndErr()
	if err != nil {
		return nil, err
	}
	return bytes.Clone(v), nil
}

// Close closes the store and releases the data directory.
func (q *Queue) Close() error {
	q.closeOnce.Do(func() {
		q.life.Lock()
		defer q.life.Unlock()
		q.closed = true
		q.rmMu.Lock()
		if q.rmTimer != nil {
			q.rmTimer.Stop()
		}
		q.rmMu.Unlock()
		// The acknowledgements not yet synced, and their files.
		syncErr := q.sync()
		q.closeErr = errors.Join(syncErr, q.db.Close(), q.lock.Close())
	})
	return q.closeErr
}

// enter starts a call that uses the store; the call ends with q.life.RUnlock.
func (q *Queue) enter() error {
	q.life.RLock()
	if q.closed {
		q.life.RUnlock()
		return deliver.ErrClosed
	}
	return nil
}

// pebbleLogger sends Pebble's warnings and errors to the queue's logger and
// drops its routine information (compactions, flushes).
type pebbleLogger struct{ log *slog.Logger }

func (l pebbleLogger) Infof(format string, args ...any) {}

func (l pebbleLogger) Errorf(format string, args ...any) {
	l.log.Error("queue store: " + fmt.Sprintf(format, args...))
}

func (l pebbleLogger) Fatalf(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	l.log.Error("queue store: " + msg)
	panic("pebbleq: " + msg)
}
