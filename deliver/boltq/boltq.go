// Package boltq is the embedded queue backend: a deliver.Queue in a bbolt
// file under data_dir, with each raw message in its own file beside it. It
// needs nothing installed and serves one node.
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
	"bytes"
	"cmp"
	"context"
	"crypto/rand"
	"crypto/sha256"
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
	bolterrors "go.etcd.io/bbolt/errors"

	"github.com/mailhook/mailhook/deliver"
	"github.com/mailhook/mailhook/inbound"
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

// Queue is the embedded deliver.Queue.
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

var _ deliver.Queue = (*Queue)(nil)

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

// Commit implements deliver.Queue.
func (q *Queue) Commit(ctx context.Context, mail *inbound.Mail, jobs []*deliver.Job) (err error) {
	rawPath := ""
	if mail != nil {
		rawPath = mail.RawPath
	}
	stored := ""
	defer func() {
		if err != nil && rawPath != "" {
			os.Remove(rawPath)
		}
		if err != nil && stored != "" {
			os.Remove(stored)
		}
	}()
	if err := ctx.Err(); err != nil {
		return err
	}
	now := q.now()
	if err := deliver.ValidateCommit(mail, jobs, now); err != nil {
		return err
	}
	if rawPath == "" && mail.Raw == nil {
		return errors.New("boltq: commit: mail without raw message")
	}
	if len(jobs) == 0 {
		if rawPath != "" {
			os.Remove(rawPath)
		}
		return nil
	}
	var name string
	var inline []byte
	switch {
	case mail.Raw != nil && q.inlineMax > 0 && int64(len(mail.Raw)) <= q.inlineMax:
		// Held in memory since the socket: written once, in the batch.
		inline = mail.Raw
	case mail.Raw != nil:
		if dup, err := q.hasMsg(mail, now); err != nil {
			return err
		} else if dup {
			return nil
		}
		name = fileName(mail.ID)
		stored = filepath.Join(q.msgDir, name)
		if err := safefile.Write(stored, bytes.NewReader(mail.Raw)); err != nil {
			return fmt.Errorf("boltq: commit %s: %w", mail.ID, err)
		}
	default:
		if inline, err = q.readInline(rawPath); err != nil {
			return fmt.Errorf("boltq: commit %s: %w", mail.ID, err)
		}
	}
	if inline == nil && name == "" {
		// A duplicate is found again inside the transaction; looking first
		// only spares a large retried message its fsync'd move.
		if dup, err := q.hasMsg(mail, now); err != nil {
			return err
		} else if dup {
			os.Remove(rawPath)
			return nil
		}
		name = fileName(mail.ID)
		stored = filepath.Join(q.msgDir, name)
		if err := safefile.Move(rawPath, stored); err != nil {
			return fmt.Errorf("boltq: commit %s: %w", mail.ID, err)
		}
		rawPath = ""
	}
	mailJSON, err := json.Marshal(mail)
	if err != nil {
		return fmt.Errorf("boltq: commit %s: %w", mail.ID, err)
	}
	var dup bool
	err = q.db.Batch(func(tx *bolt.Tx) error {
		dup = false
		if tx.Bucket(bMsgs).Get([]byte(mail.ID)) != nil || seen(tx, deliver.CommitKey(mail), now) {
			dup = true
			return nil
		}
		if err := remember(tx, deliver.CommitKey(mail), mail.ID, now, q.dedup); err != nil {
			return err
		}
		jb := tx.Bucket(bJobs)
		for _, j := range jobs {
			if jb.Get([]byte(j.ID)) != nil {
				return fmt.Errorf("%w: %q", deliver.ErrDuplicateJob, j.ID)
			}
		}
		rec := &msgRecord{File: name, Jobs: len(jobs), Inline: inline != nil}
		if err := putMsg(tx, mail.ID, rec); err != nil {
			return err
		}
		if err := tx.Bucket(bMail).Put([]byte(mail.ID), mailJSON); err != nil {
			return err
		}
		if inline != nil {
			if err := tx.Bucket(bRaw).Put([]byte(mail.ID), inline); err != nil {
				return err
			}
		}
		for _, j := range jobs {
			if err := replaceJob(tx, nil, j); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("boltq: commit %s: %w", mail.ID, err)
	}
	if dup && stored != "" {
		os.Remove(stored)
	}
	if rawPath != "" {
		os.Remove(rawPath) // stored inline
	}
	return nil
}

// readInline returns the raw message at path when it is small enough to be
// stored inline (the spool file then needs no fsync), nil when it is not.
// The file is opened once and sized from its descriptor.
func (q *Queue) readInline(path string) ([]byte, error) {
	if q.inlineMax <= 0 {
		return nil, nil
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if st.Size() > q.inlineMax {
		return nil, nil
	}
	b := make([]byte, st.Size())
	if _, err := io.ReadFull(f, b); err != nil {
		return nil, err
	}
	return b, nil
}

// hasMsg reports whether mail is already committed (its ID held, or its
// commit key seen).
func (q *Queue) hasMsg(mail *inbound.Mail, now time.Time) (bool, error) {
	var ok bool
	err := q.db.View(func(tx *bolt.Tx) error {
		ok = tx.Bucket(bMsgs).Get([]byte(mail.ID)) != nil || seen(tx, deliver.CommitKey(mail), now)
		return nil
	})
	return ok, err
}

// Take implements deliver.Queue.
func (q *Queue) Take(ctx context.Context, kinds []deliver.Kind, n int, lease time.Duration) ([]*deliver.Job, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if n <= 0 {
		return nil, nil
	}
	// Look before writing: an idle poll must not cost an fsync.
	if busy, err := q.anythingToTake(kinds); err != nil || !busy {
		return nil, err
	}
	var out []*deliver.Job
	// Batch: takes share an fsync with concurrent acks and commits.
	err := q.db.Batch(func(tx *bolt.Tx) error {
		out = nil
		now := q.now()
		// Return expired leases first (their worker died or hung).
		var expired [][]byte
		c := tx.Bucket(bLeased).Cursor()
		for k, _ := c.First(); k != nil && keyTime(k) <= now.UnixNano(); k, _ = c.Next() {
			expired = append(expired, slices.Clone(k))
		}
		for _, k := range expired {
			j, err := getJob(tx, string(k[8:]))
			if err != nil {
				return err
			}
			old := *j
			j.Lease, j.LeaseUntil = "", time.Time{}
			if err := replaceJob(tx, &old, j); err != nil {
				return err
			}
		}
		type cand struct {
			t  int64
			id string
		}
		var cands []cand
		for _, k := range kinds {
			b := tx.Bucket(bReady).Bucket([]byte(k))
			if b == nil {
				continue
			}
			c := b.Cursor()
			i := 0
			for key, _ := c.First(); key != nil && i < n && keyTime(key) <= now.UnixNano(); key, _ = c.Next() {
				cands = append(cands, cand{keyTime(key), string(key[8:])})
				i++
			}
		}
		slices.SortFunc(cands, func(a, b cand) int {
			return cmp.Or(cmp.Compare(a.t, b.t), strings.Compare(a.id, b.id))
		})
		if len(cands) > n {
			cands = cands[:n]
		}
		for _, cd := range cands {
			j, err := getJob(tx, cd.id)
			if err != nil {
				return err
			}
			old := *j
			j.Attempts++
			j.Lease = newToken()
			j.LeaseUntil = now.Add(lease)
			if err := replaceJob(tx, &old, j); err != nil {
				return err
			}
			out = append(out, j)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("boltq: take: %w", err)
	}
	return out, nil
}

// anythingToTake reports whether a lease has expired or a job of kinds is
// due.
func (q *Queue) anythingToTake(kinds []deliver.Kind) (bool, error) {
	var busy bool
	err := q.db.View(func(tx *bolt.Tx) error {
		now := q.now().UnixNano()
		if k, _ := tx.Bucket(bLeased).Cursor().First(); k != nil && keyTime(k) <= now {
			busy = true
			return nil
		}
		for _, kind := range kinds {
			if b := tx.Bucket(bReady).Bucket([]byte(kind)); b != nil {
				if k, _ := b.Cursor().First(); k != nil && keyTime(k) <= now {
					busy = true
					return nil
				}
			}
		}
		return nil
	})
	if err != nil {
		return false, fmt.Errorf("boltq: take: %w", err)
	}
	return busy, nil
}

// settle runs fn on the stored copy of job under job's lease, in a batched
// transaction. fn returns whether to delete the job.
func (q *Queue) settle(ctx context.Context, op string, job *deliver.Job, fn func(j *deliver.Job) (del bool)) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	var remove string
	var stored *deliver.Job
	err := q.db.Batch(func(tx *bolt.Tx) error {
		remove, stored = "", nil
		j, err := getJob(tx, job.ID)
		if errors.Is(err, deliver.ErrNotFound) {
			return deliver.ErrLeaseLost
		}
		if err != nil {
			return err
		}
		if job.Lease == "" || j.Lease != job.Lease || !j.DeadAt.IsZero() {
			return deliver.ErrLeaseLost
		}
		old := *j
		if fn(j) {
			remove, err = deleteJob(tx, &old)
			return err
		}
		stored = j
		return replaceJob(tx, &old, j)
	})
	if err != nil {
		return fmt.Errorf("boltq: %s %s: %w", op, job.ID, err)
	}
	if stored != nil {
		*job = *stored
	}
	q.removeFile(remove)
	return nil
}

func (q *Queue) removeFile(name string) {
	if name == "" {
		return
	}
	// A crash before the remove leaves an orphan that Open deletes.
	if err := os.Remove(filepath.Join(q.msgDir, name)); err != nil && !errors.Is(err, os.ErrNotExist) {
		q.log.Warn("queue: removing delivered message file", "file", name, "err", err)
	}
}

// Ack implements deliver.Queue.
func (q *Queue) Ack(ctx context.Context, job *deliver.Job) error {
	// Keeping delivered messages for inspection (a retention period) is a
	// later feature: it would go here instead of deleting.
	return q.settle(ctx, "ack", job, func(*deliver.Job) bool { return true })
}

// Retry implements deliver.Queue.
func (q *Queue) Retry(ctx context.Context, job *deliver.Job, next time.Time, a deliver.Attempt) error {
	return q.settle(ctx, "retry", job, func(j *deliver.Job) bool {
		j.Lease, j.LeaseUntil = "", time.Time{}
		j.NextAt = next
		j.Rcpts = job.Rcpts
		j.AddAttempt(a)
		return false
	})
}

// Dead implements deliver.Queue.
func (q *Queue) Dead(ctx context.Context, job *deliver.Job, a deliver.Attempt) error {
	return q.settle(ctx, "dead", job, func(j *deliver.Job) bool {
		j.Lease, j.LeaseUntil = "", time.Time{}
		j.DeadAt = q.now()
		j.Rcpts = job.Rcpts
		j.AddAttempt(a)
		return false
	})
}

// Mail implements deliver.Queue.
func (q *Queue) Mail(ctx context.Context, msgID string) (*inbound.Mail, error) {
	m := new(inbound.Mail)
	err := q.db.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(bMail).Get([]byte(msgID))
		if v == nil {
			rec, err := getMsg(tx, msgID) // a record of the older layout
			if err != nil {
				return err
			}
			v = rec.Mail
		}
		// Decoded inside the transaction: v is valid only there, and
		// Unmarshal copies what it keeps.
		return json.Unmarshal(v, m)
	})
	if err != nil {
		return nil, fmt.Errorf("boltq: mail %s: %w", msgID, err)
	}
	return m, nil
}

// OpenRaw implements deliver.Queue.
func (q *Queue) OpenRaw(ctx context.Context, msgID string) (io.ReadCloser, error) {
	var file string
	var inline []byte
	err := q.db.View(func(tx *bolt.Tx) error {
		rec, err := getMsg(tx, msgID)
		if err != nil {
			return err
		}
		if !rec.Inline {
			file = rec.File
			return nil
		}
		v := tx.Bucket(bRaw).Get([]byte(msgID))
		if v == nil {
			return deliver.ErrNotFound
		}
		inline = bytes.Clone(v) // valid only inside the transaction
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("boltq: raw %s: %w", msgID, err)
	}
	if file == "" {
		return io.NopCloser(bytes.NewReader(inline)), nil
	}
	f, err := os.Open(filepath.Join(q.msgDir, file))
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("boltq: raw %s: %w", msgID, deliver.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("boltq: raw %s: %w", msgID, err)
	}
	return f, nil
}

// Stats implements deliver.Queue.
func (q *Queue) Stats(ctx context.Context) (deliver.Stats, error) {
	var st deliver.Stats
	err := q.db.View(func(tx *bolt.Tx) error {
		st = deliver.Stats{}
		now := q.now().UnixNano()
		oldest := int64(0)
		for _, k := range deliver.Kinds {
			b := tx.Bucket(bReady).Bucket([]byte(k))
			c := b.Cursor()
			first := true
			for key, _ := c.First(); key != nil; key, _ = c.Next() {
				t := keyTime(key)
				if t <= now {
					st.Ready++
					if first && (oldest == 0 || t < oldest) {
						oldest = t
					}
				} else {
					st.Scheduled++
				}
				first = false
			}
		}
		if oldest != 0 {
			st.OldestAge = time.Duration(now - oldest)
		}
		st.Leased = tx.Bucket(bLeased).Stats().KeyN
		st.Dead = tx.Bucket(bDead).Stats().KeyN
		return nil
	})
	return st, err
}

// List implements deliver.Queue.
func (q *Queue) List(ctx context.Context, opts deliver.ListOptions) ([]*deliver.Job, error) {
	var out []*deliver.Job
	err := q.db.View(func(tx *bolt.Tx) error {
		now := q.now()
		c := tx.Bucket(bJobs).Cursor()
		k, v := c.First()
		if opts.After != "" {
			k, v = c.Seek([]byte(opts.After))
			if k != nil && string(k) == opts.After {
				k, v = c.Next()
			}
		}
		for ; k != nil && len(out) < opts.Lim(); k, v = c.Next() {
			j, err := decodeJob(v)
			if err != nil {
				return err
			}
			if opts.Matches(j, now) {
				out = append(out, j)
			}
		}
		return nil
	})
	return out, err
}

// ListDead implements deliver.Queue.
func (q *Queue) ListDead(ctx context.Context, opts deliver.ListOptions) ([]*deliver.Job, error) {
	var out []*deliver.Job
	err := q.db.View(func(tx *bolt.Tx) error {
		now := q.now()
		c := tx.Bucket(bDead).Cursor()
		k, _ := c.Last()
		if opts.After != "" {
			after, err := getJob(tx, opts.After)
			if err != nil {
				return err
			}
			ak := timeKey(after.DeadAt, after.ID)
			k, _ = c.Seek(ak)
			if k == nil {
				k, _ = c.Last()
			}
			for k != nil && bytes.Compare(k, ak) >= 0 {
				k, _ = c.Prev()
			}
		}
		opts.State = "" // every job listed here is dead
		for ; k != nil && len(out) < opts.Lim(); k, _ = c.Prev() {
			j, err := getJob(tx, string(k[8:]))
			if err != nil {
				return err
			}
			if opts.Matches(j, now) {
				out = append(out, j)
			}
		}
		return nil
	})
	return out, err
}

// Get implements deliver.Queue.
func (q *Queue) Get(ctx context.Context, jobID string) (*deliver.Job, error) {
	var j *deliver.Job
	err := q.db.View(func(tx *bolt.Tx) error {
		var err error
		j, err = getJob(tx, jobID)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("boltq: get %s: %w", jobID, err)
	}
	return j, nil
}

func (q *Queue) replay(tx *bolt.Tx, id string, now time.Time) error {
	j, err := getJob(tx, id)
	if err != nil {
		return err
	}
	if j.DeadAt.IsZero() {
		return deliver.ErrNotDead
	}
	old := *j
	j.DeadAt = time.Time{}
	j.NextAt = now
	j.ReplayedAt = now
	j.ReplayedAttempts = j.Attempts
	return replaceJob(tx, &old, j)
}

// Replay implements deliver.Queue.
func (q *Queue) Replay(ctx context.Context, jobID string) error {
	err := q.db.Update(func(tx *bolt.Tx) error { return q.replay(tx, jobID, q.now()) })
	if err != nil {
		return fmt.Errorf("boltq: replay %s: %w", jobID, err)
	}
	return nil
}

// ReplayAll implements deliver.Queue.
func (q *Queue) ReplayAll(ctx context.Context, since time.Time) (int, error) {
	var n int
	err := q.db.Update(func(tx *bolt.Tx) error {
		n = 0
		now := q.now()
		var ids []string
		c := tx.Bucket(bDead).Cursor()
		for k, _ := c.Seek(timeKey(since, "")); k != nil; k, _ = c.Next() {
			ids = append(ids, string(k[8:]))
		}
		for _, id := range ids {
			if err := q.replay(tx, id, now); err != nil {
				return err
			}
			n++
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("boltq: replay all: %w", err)
	}
	return n, nil
}

// Drop implements deliver.Queue.
func (q *Queue) Drop(ctx context.Context, jobID string) error {
	var remove string
	err := q.db.Update(func(tx *bolt.Tx) error {
		j, err := getJob(tx, jobID)
		if err != nil {
			return err
		}
		remove, err = deleteJob(tx, j)
		return err
	})
	if err != nil {
		return fmt.Errorf("boltq: drop %s: %w", jobID, err)
	}
	q.removeFile(remove)
	return nil
}

// --- storage helpers ---

func timeKey(t time.Time, id string) []byte {
	k := make([]byte, 8, 8+len(id))
	ns := t.UnixNano()
	if ns < 0 || t.IsZero() {
		ns = 0
	}
	binary.BigEndian.PutUint64(k, uint64(ns))
	return append(k, id...)
}

func keyTime(k []byte) int64 { return int64(binary.BigEndian.Uint64(k[:8])) }

func decodeJob(v []byte) (*deliver.Job, error) {
	j := new(deliver.Job)
	if err := json.Unmarshal(v, j); err != nil {
		return nil, err
	}
	return j, nil
}

func getJob(tx *bolt.Tx, id string) (*deliver.Job, error) {
	v := tx.Bucket(bJobs).Get([]byte(id))
	if v == nil {
		return nil, deliver.ErrNotFound
	}
	return decodeJob(v)
}

func getMsg(tx *bolt.Tx, id string) (*msgRecord, error) {
	v := tx.Bucket(bMsgs).Get([]byte(id))
	if v == nil {
		return nil, deliver.ErrNotFound
	}
	rec := new(msgRecord)
	if err := json.Unmarshal(v, rec); err != nil {
		return nil, fmt.Errorf("message record %q: %w", id, err)
	}
	return rec, nil
}

func putMsg(tx *bolt.Tx, id string, rec *msgRecord) error {
	v, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	return tx.Bucket(bMsgs).Put([]byte(id), v)
}

// indexKey returns the index bucket and key where j is listed.
func indexKey(tx *bolt.Tx, j *deliver.Job) (*bolt.Bucket, []byte) {
	switch {
	case !j.DeadAt.IsZero():
		return tx.Bucket(bDead), timeKey(j.DeadAt, j.ID)
	case j.Lease != "":
		return tx.Bucket(bLeased), timeKey(j.LeaseUntil, j.ID)
	default:
		return tx.Bucket(bReady).Bucket([]byte(j.Kind)), timeKey(j.NextAt, j.ID)
	}
}

// replaceJob stores j, moving its index entry from where old was listed.
func replaceJob(tx *bolt.Tx, old, j *deliver.Job) error {
	if old != nil {
		b, k := indexKey(tx, old)
		if err := b.Delete(k); err != nil {
			return err
		}
	}
	v, err := json.Marshal(j)
	if err != nil {
		return err
	}
	if err := tx.Bucket(bJobs).Put([]byte(j.ID), v); err != nil {
		return err
	}
	b, k := indexKey(tx, j)
	return b.Put(k, nil)
}

// deleteJob removes j and, with its message's last job, the message record;
// it returns the raw file to remove after the transaction commits.
func deleteJob(tx *bolt.Tx, j *deliver.Job) (string, error) {
	b, k := indexKey(tx, j)
	if err := b.Delete(k); err != nil {
		return "", err
	}
	if err := tx.Bucket(bJobs).Delete([]byte(j.ID)); err != nil {
		return "", err
	}
	rec, err := getMsg(tx, j.MsgID)
	if errors.Is(err, deliver.ErrNotFound) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	rec.Jobs--
	if rec.Jobs > 0 {
		return "", putMsg(tx, j.MsgID, rec)
	}
	return rec.File, deleteMsgData(tx, j.MsgID)
}

// deleteMsgData deletes a message's record, mail and inline raw message.
func deleteMsgData(tx *bolt.Tx, id string) error {
	for _, b := range [][]byte{bMsgs, bMail, bRaw} {
		if err := tx.Bucket(b).Delete([]byte(id)); err != nil {
			return err
		}
	}
	return nil
}

func newToken() string {
	var b [16]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// fileName names a message's raw file: the message ID when it is safe as a
// file name (else its hash), plus a random suffix so a duplicate commit of
// the same message never overwrites the committed file.
func fileName(msgID string) string {
	base := msgID
	safe := len(base) <= 100
	for _, r := range base {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.') {
			safe = false
			break
		}
	}
	if !safe || strings.HasPrefix(base, ".") {
		h := sha256.Sum256([]byte(msgID))
		base = "h" + hex.EncodeToString(h[:12])
	}
	return base + "-" + newToken()[:12] + ".eml"
}

var _ deliver.NowRetrier = (*Queue)(nil)

// RetryNow implements deliver.NowRetrier.
func (q *Queue) RetryNow(ctx context.Context, jobID string) error {
	err := q.db.Update(func(tx *bolt.Tx) error {
		j, err := getJob(tx, jobID)
		if err != nil {
			return err
		}
		now := q.now()
		if waiting, err := j.Waiting(now); !waiting {
			return err
		}
		old := *j
		j.NextAt = now
		return replaceJob(tx, &old, j)
	})
	if err != nil {
		return fmt.Errorf("boltq: retry now %s: %w", jobID, err)
	}
	return nil
}
