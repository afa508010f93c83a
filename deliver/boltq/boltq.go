// Package boltq was the embedded queue backend before deliver/pebbleq: a
// deliver.Backend in a bbolt file under data_dir, with each raw message in
// its own file beside it. pebbleq imports a store it wrote (Export) and
// was chosen against it by measurement (its benchmarks and pebbleq's); it
// still passes the shared suite.
//
// Layout under <data_dir>/queue:
//
//	queue.db    bbolt: jobs, indexes by due time, lease expiry and death, messages
//	            (a small record each, the mail JSON beside it)
//	msg/*.eml   the raw messages, one file each, named in their message record
//
// Durability: a small message (up to InlineMax; ingest hands over those it
// held in memory as inbound.Mail.Raw, with no file at all) is written inside
// the commit's transaction, so its one durable write is the batch's fsync,
// shared with the concurrent commits. A larger one: Commit fsyncs the raw
// file, renames it into msg/, fsyncs msg/, then commits the bbolt
// transaction (bbolt fsyncs on every commit;
// concurrent Commits share one fsync through DB.Batch). The bbolt commit is
// the commit point: a crash before it leaves an unreferenced file that Open
// removes, a crash after it leaves a committed message whose file is already
// durable. Open also returns the leases of the previous process to the queue
// and dead-letters the jobs of a message whose file is missing, so nothing
// is lost silently and nothing crashes the server.
//
// bbolt holds an exclusive flock on queue.db, so a second process opening the
// same data_dir fails instead of corrupting it.
package boltq

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"

	"github.com/mailhook/mailhook/deliver"
	"github.com/mailhook/mailhook/internal/safefile"
)

// ErrLocked means another process (a running `mailhook serve`) has the
// queue open.
var ErrLocked = errors.New("in use by another process")

// Options configures Open.
type Options struct {
	// Logger receives recovery reports; nil discards.
	Logger *slog.Logger
	// BatchDelay is how long a Commit waits for others to share its fsync
	// (bbolt's MaxBatchDelay); 0 means 2ms.
	BatchDelay time.Duration
	// DedupWindow is how long a commit key is remembered (see
	// deliver.Queue.Commit); default deliver.DefaultDedupWindow.
	DedupWindow time.Duration
	// InlineMax is the largest raw message stored inside the database
	// (DefaultInlineMax when 0; negative stores every message as a file).
	InlineMax int64
	// Now returns the current time; nil means time.Now.
	Now func() time.Time
}

// Queue is the embedded deliver.Backend.
type Queue struct {
	db        *bolt.DB
	msgDir    string
	inlineMax int64
	dedup     time.Duration
	log       *slog.Logger
	now       func() time.Time

	closeOnce sync.Once
	closeErr  error
}

var _ deliver.Backend = (*Queue)(nil)

var (
	bJobs   = []byte("jobs")   // job id -> job JSON
	bReady  = []byte("ready")  // kind -> (timeKey(NextAt, id) -> nil), jobs neither leased nor dead
	bLeased = []byte("leased") // timeKey(LeaseUntil, id) -> nil
	bDead   = []byte("dead")   // timeKey(DeadAt, id) -> nil
	bMsgs   = []byte("msgs")   // msg id -> msgRecord JSON
	bRaw    = []byte("raw")    // msg id -> raw message, for messages stored inline
	bMail   = []byte("mail")   // msg id -> inbound.Mail JSON
)

// DefaultInlineMax is the size up to which a raw message is stored inside
// the commit's transaction rather than as a file of its own.
const DefaultInlineMax = 64 << 10

// msgRecord is a committed message.
type msgRecord struct {
	// Mail is the mail JSON of records written before it moved to the
	// mail bucket; new records leave it empty. Settling a job rewrites
	// the record to count jobs, which must not copy, scan and rewrite the
	// message (up to megabytes with inlined attachments) on every ack.
	Mail json.RawMessage `json:"mail,omitempty"`
	File string          `json:"file"` // name under msg/; "" when Inline
	// Inline means the raw message is in the raw bucket, written in the
	// same transaction as the jobs: one fsync of the batch makes many
	// small messages durable at once, where a file each costs its own
	// fsync and a directory fsync.
	Inline bool `json:"inline,omitempty"`
	Jobs   int  `json:"jobs"` // jobs left; the record goes with the last
}

// Open opens (creating if needed) the queue under dataDir/queue, recovers
// from a previous crash and locks the directory against other processes.
func Open(dataDir string, opts Options) (*Queue, error) {
	q := &Queue{
		msgDir: filepath.Join(dataDir, "queue", "msg"),
		log:    opts.Logger,
		now:    opts.Now,
	}
	if q.log == nil {
		q.log = slog.New(slog.DiscardHandler)
	}
	if q.now == nil {
		q.now = time.Now
	}
	if err := os.MkdirAll(q.msgDir, 0o700); err != nil {
		return nil, fmt.Errorf("boltq: %w", err)
	}
	path := filepath.Join(dataDir, "queue", "queue.db")
	// The freelist is not written on each commit (bbolt rebuilds it when it
	// opens the file): less to write and fsync per transaction, durability
	// unchanged.
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second, NoFreelistSync: true, FreelistType: bolt.FreelistMapType})
	if errors.Is(err, bolterrors.ErrTimeout) {
		return nil, fmt.Errorf("boltq: %s: %w", path, ErrLocked)
	}
	if err != nil {
		return nil, fmt.Errorf("boltq: open %s: %w", path, err)
	}
	db.MaxBatchDelay = opts.BatchDelay
	if db.MaxBatchDelay <= 0 {
		db.MaxBatchDelay = 2 * time.Millisecond
	}
	q.db = db
	q.dedup = cmp.Or(opts.DedupWindow, deliver.DefaultDedupWindow)
	q.inlineMax = opts.InlineMax
	if q.inlineMax == 0 {
		q.inlineMax = DefaultInlineMax
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bJobs, bReady, bLeased, bDead, bMsgs, bRaw, bMail, bDedup, bDedupExp} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		for _, k := range deliver.Kinds {
			if _, err := tx.Bucket(bReady).CreateBucketIfNotExists([]byte(k)); err != nil {
				return err
			}
		}
		return nil
	})
	if err == nil {
		err = q.recover()
	}
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("boltq: open %s: %w", path, err)
	}
	return q, nil
}

// recover runs at Open, when no other process can use the store: it
// returns the previous process's leases to the queue, dead-letters jobs
// whose raw message is missing, recounts each message's jobs, deletes
// messages without jobs and removes raw files no record names (crashes
// between the rename and the bbolt commit, or after the last ack).
func (q *Queue) recover() error {
	now := q.now()
	keep := map[string]bool{}
	var requeued, missing, emptied int
	err := q.db.Update(func(tx *bolt.Tx) error {
		keep = map[string]bool{}
		requeued, missing, emptied = 0, 0, 0
		// Every job, grouped by message.
		byMsg := map[string][]*deliver.Job{}
		err := tx.Bucket(bJobs).ForEach(func(k, v []byte) error {
			j, err := decodeJob(v)
			if err != nil {
				return fmt.Errorf("job %q: %w", k, err)
			}
			byMsg[j.MsgID] = append(byMsg[j.MsgID], j)
			return nil
		})
		if err != nil {
			return err
		}
		msgs := tx.Bucket(bMsgs)
		var msgIDs []string
		if err := msgs.ForEach(func(k, _ []byte) error {
			msgIDs = append(msgIDs, string(k))
			return nil
		}); err != nil {
			return err
		}
		for _, id := range msgIDs {
			rec, err := getMsg(tx, id)
			if err != nil {
				return err
			}
			jobs := byMsg[id]
			delete(byMsg, id)
			if len(jobs) == 0 {
				emptied++
				if err := deleteMsgData(tx, id); err != nil {
					return err
				}
				continue
			}
			var fileMissing bool
			if rec.Inline {
				fileMissing = tx.Bucket(bRaw).Get([]byte(id)) == nil
			} else {
				_, statErr := os.Stat(filepath.Join(q.msgDir, rec.File))
				fileMissing = statErr != nil
			}
			if fileMissing {
				missing++
			} else {
				keep[rec.File] = true
			}
			for _, j := range jobs {
				old := *j
				changed := false
				if j.Lease != "" {
					j.Lease, j.LeaseUntil = "", time.Time{}
					j.AddAttempt(deliver.Attempt{At: now, Error: "interrupted: the process stopped during the attempt"})
					requeued++
					changed = true
				}
				if fileMissing && j.DeadAt.IsZero() {
					j.DeadAt = now
					j.AddAttempt(deliver.Attempt{At: now, Error: "raw message file missing from the queue store"})
					changed = true
				}
				if changed {
					if err := replaceJob(tx, &old, j); err != nil {
						return err
					}
				}
			}
			if rec.Jobs != len(jobs) {
				rec.Jobs = len(jobs)
				if err := putMsg(tx, id, rec); err != nil {
					return err
				}
			}
		}
		// Jobs without a message record cannot be delivered: dead-letter
		// them, visibly, rather than crash on them later.
		for _, jobs := range byMsg {
			for _, j := range jobs {
				if j.DeadAt.IsZero() {
					old := *j
					j.Lease, j.LeaseUntil, j.DeadAt = "", time.Time{}, now
					j.AddAttempt(deliver.Attempt{At: now, Error: "message record missing from the queue store"})
					missing++
					if err := replaceJob(tx, &old, j); err != nil {
						return err
					}
				}
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	ents, err := os.ReadDir(q.msgDir)
	if err != nil {
		return err
	}
	var orphans int
	for _, e := range ents {
		if !keep[e.Name()] {
			if err := os.Remove(filepath.Join(q.msgDir, e.Name())); err == nil {
				orphans++
			}
		}
	}
	if orphans > 0 {
		if err := safefile.SyncDir(q.msgDir); err != nil {
			return err
		}
	}
	if requeued+missing+emptied+orphans > 0 {
		q.log.Warn("queue recovered after an unclean stop",
			"leases_returned", requeued, "jobs_dead_missing_data", missing,
			"empty_messages_removed", emptied, "orphan_files_removed", orphans)
	}
	return nil
}

// Close closes the store and releases the data directory.
func (q *Queue) Close() error {
	q.closeOnce.Do(func() { q.closeErr = q.db.Close() })
	return q.closeErr
}
