package admin

// The activity store: its type, its buckets, opening and closing. What it
// holds is written and read in the files named for it: history.go,
// query.go, refusals.go, claims.go, sent.go, rawcopies.go, series.go;
// purge.go ages it all out.

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"

	"github.com/mailhook/mailhook/deliver"
)

// Message statuses, as reported by MessageSummary.Status. A message's
// status is derived from the statuses of its jobs (see messageStatus).
const (
	StatusQueued    = "queued"              // accepted, no job finished yet
	StatusDelivered = "delivered"           // every job delivered
	StatusPartial   = "partially delivered" // some jobs delivered, the others dead or dropped
	StatusRetrying  = "retrying"            // at least one job failed and will be retried
	StatusDead      = "dead"                // no job delivered and none left to try
	StatusDropped   = "dropped"             // no jobs (a drop rule), or every job dropped by an operator
)

// Job statuses in JobRecord.Status (besides StatusQueued, StatusDelivered,
// StatusRetrying and StatusDead).
const jobDropped = "dropped"

// ErrNotFound means no such message (or raw copy) in the activity store.
var ErrNotFound = errors.New("admin: not found")

// Bounds on what one message may put into the activity store, so hostile
// mail cannot grow it without limit.
const (
	// DefaultRetention is how long records and raw copies are kept.
	DefaultRetention = 7 * 24 * time.Hour
	// DefaultMaxSentBytes bounds each webhook body kept by RecordSent.
	DefaultMaxSentBytes = 256 << 10
	maxBodyText         = 256 << 10 // Message.Text and Message.HTML kept
	maxTimeline         = 500       // events per message
	maxAttempts         = deliver.MaxHistory
	maxResponse         = 512  // bytes of an attempt's response kept
	maxErrorText        = 1024 // bytes of an attempt's error kept
	maxSummaryText      = 200  // subject and from in summaries
	// MaxPageSize is the largest page Messages returns.
	MaxPageSize = 500
)

var (
	bMsgs    = []byte("msgs")    // msg id -> msgRecord JSON
	bParsed  = []byte("parsed")  // msg id -> deliver.EncodeMessage of the trimmed parse.Message, deliver.Pack'ed
	bIndex   = []byte("index")   // timeKey(ReceivedAt, id) -> MessageSummary JSON
	bJobs    = []byte("jobs")    // job id -> msg id, merged from bIdxLog (idindex.go)
	bSent    = []byte("sent")    // sentKey(msg id, job id) (or job id, before) -> 8-byte unix nanos + deliver.Pack(body)
	bRefused = []byte("refused") // timeKey(At, seq) -> Refused JSON
	bSeries  = []byte("series")  // 8-byte unix minute -> seriesCell JSON
	bMeta    = []byte("meta")    // "probe" -> nil, written by Writable
	bClaims  = []byte("claims")  // one-time link key -> 8-byte unix expiry
	bAlias   = []byte("alias")   // stable id -> msg id, merged from bIdxLog
	bRawMsg  = []byte("raw")     // msg id -> deliver.Pack(raw message), for messages held in memory (inbound.Mail.Raw)
	bIdxLog  = []byte("idxlog")  // 8-byte sequence -> an entry of bJobs or bAlias not merged yet (idindex.go)
)

// ActivityOptions configures OpenActivity.
type ActivityOptions struct {
	// Retention is how long records and raw copies are kept; zero means
	// DefaultRetention.
	Retention time.Duration
	// Logger receives purge reports; nil discards.
	Logger *slog.Logger
	// Now returns the current time; nil means time.Now.
	Now func() time.Time
	// MaxSentBytes bounds each body kept by RecordSent; zero means
	// DefaultMaxSentBytes.
	MaxSentBytes int
}

// Activity is the message history kept for inspection: what was accepted
// (envelope, verification, parsed message, rule decisions), what was
// refused, every delivery attempt, the webhook bodies sent, a copy of each
// raw message, and per-minute counters for charts. It is a bbolt file
// (activity.db) and a raw/ directory under the directory given to
// OpenActivity.
//
// Activity is safe for concurrent use. It is a record, not a queue: nothing
// in it is needed to deliver mail, and callers must log, never act on, the
// errors its Record methods return, so a failing activity write can never
// fail mail acceptance.
//
// The Record methods (and SampleQueue) check their arguments and hand the
// writes to one goroutine, the committer, and return: it writes every
// record pending in one transaction, not fsync'd, at most about 100 ms
// after the first, and merges the records of one message (its acceptance
// and its attempts) into one write of its record. It logs a record it
// could not write. Every read waits until the records handed in before
// it are written, so what was recorded shows at once; a crash loses at
// most the records not yet written. Close writes those still pending.
type Activity struct {
	db        *store
	dir       string
	rawDir    string
	retention time.Duration
	log       *slog.Logger
	now       func() time.Time
	maxSent   int
}

// OpenActivity opens (creating if needed) the activity store under dir.
func OpenActivity(dir string, opts ActivityOptions) (*Activity, error) {
	a := &Activity{
		dir:       dir,
		rawDir:    filepath.Join(dir, "raw"),
		retention: opts.Retention,
		log:       opts.Logger,
		now:       opts.Now,
		maxSent:   opts.MaxSentBytes,
	}
	if a.retention <= 0 {
		a.retention = DefaultRetention
	}
	if a.log == nil {
		a.log = slog.New(slog.DiscardHandler)
	}
	if a.now == nil {
		a.now = time.Now
	}
	if a.maxSent <= 0 {
		a.maxSent = DefaultMaxSentBytes
	}
	if err := os.MkdirAll(a.rawDir, 0o700); err != nil {
		return nil, fmt.Errorf("admin: activity: %w", err)
	}
	path := filepath.Join(dir, "activity.db")
	// The activity log is history for operators, not the queue: nothing
	// acknowledged depends on it. So it is written without an fsync per
	// transaction, nor when the file grows (a process crash loses only the
	// records the committer had not written yet, the page cache has the
	// rest; an OS crash may lose recent records or, rarely, the file,
	// which is then set aside and started afresh rather than stopping
	// mailhook).
	bopts := &bolt.Options{Timeout: time.Second, NoSync: true, NoGrowSync: true, NoFreelistSync: true}
	db, err := bolt.Open(path, 0o600, bopts)
	if errors.Is(err, bolterrors.ErrTimeout) {
		return nil, fmt.Errorf("admin: activity: %s is in use by another process", path)
	}
	if err != nil {
		aside := path + ".broken-" + time.Now().UTC().Format("20060102T150405")
		if rerr := os.Rename(path, aside); rerr == nil {
			a.log.Warn("admin: activity store unreadable; set aside, starting afresh", "error", err, "aside", aside)
			db, err = bolt.Open(path, 0o600, bopts)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("admin: activity: open %s: %w", path, err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bMsgs, bParsed, bIndex, bJobs, bSent, bRefused, bSeries, bMeta, bClaims, bAlias, bRawMsg, bIdxLog} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("admin: activity: open %s: %w", path, err)
	}
	// Concurrent claims share one transaction; a lone caller waits at
	// most this long for company. (Records go through the committer.)
	db.MaxBatchDelay = 10 * time.Millisecond
	a.db = &store{DB: db, c: newCommitter(db, a.log, commitDelay)}
	return a, nil
}

// Close writes the records still pending and closes the store.
func (a *Activity) Close() error {
	a.db.c.close()
	return a.db.Close()
}

// Retention returns how long records are kept.
func (a *Activity) Retention() time.Duration { return a.retention }

// Writable checks that the store accepts writes, for a readiness probe.
func (a *Activity) Writable(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	err := a.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bMeta).Put([]byte("probe"), nil)
	})
	if err != nil {
		return fmt.Errorf("admin: activity store not writable: %w", err)
	}
	return nil
}
