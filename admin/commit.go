package admin

// The activity store's write path: one goroutine (the committer) takes
// every record handed to it since its last commit and writes them all in
// one transaction, each message's record decoded and encoded once per
// transaction however many records touched it.

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Bounds on the records waiting for the committer: past either, a Record
// call waits until the committer has taken them (and a Writer a whole
// buffer behind drops records, as before).
const (
	maxPendingOps   = 4096
	maxPendingBytes = 32 << 20
	// commitDelay is how long the committer waits for company after the
	// first record of a transaction: an attempt that follows its
	// message's acceptance within it (a webhook answered in a few
	// milliseconds) is merged into the same record write. A crash may
	// lose as much history; a read does not wait for it (it has the
	// pending records written at once).
	commitDelay = 100 * time.Millisecond
)

// errClosed is returned by the Record methods of a closed Activity.
var errClosed = errors.New("admin: activity: closed")

// store is the activity database. Its View and Update first wait until
// every record handed to the committer before the call is written, so
// that whoever reads (the API, the purge, a test) sees what was recorded.
type store struct {
	*bolt.DB
	c *committer
}

// View is bolt.DB.View after the records handed in so far are written.
func (s *store) View(fn func(*bolt.Tx) error) error {
	s.c.flush()
	return s.DB.View(fn)
}

// Update is bolt.DB.Update after the records handed in so far are written.
func (s *store) Update(fn func(*bolt.Tx) error) error {
	s.c.flush()
	return s.DB.Update(fn)
}

// writeOp is one record for the committer.
type writeOp struct {
	// what names the record in logs ("record accepted m1").
	what string
	// size is about how many bytes the record holds until it is written.
	size int
	// fn applies the record to the batch. It may run more than once (when
	// another record of its transaction failed), so it must not change
	// what it captured. An error rolls back the transaction; the others
	// are written again without this record.
	fn func(b *wbatch, op *writeOp) error
	// res is the record's answer for a caller that waits (done != nil),
	// set by fn without failing the transaction (ErrNotFound).
	res  error
	done chan error
}

// committer writes records in batches, from one goroutine.
type committer struct {
	db    *bolt.DB
	log   *slog.Logger
	delay time.Duration

	mu      sync.Mutex
	cond    *sync.Cond // broadcast when records are taken and when written
	pending []*writeOp
	bytes   int
	queued  uint64 // records handed in
	written uint64 // records written (or failed)
	closed  bool

	wake    chan struct{} // a record is pending
	hurry   chan struct{} // commit without waiting for company
	stopped chan struct{}
}

func newCommitter(db *bolt.DB, log *slog.Logger, delay time.Duration) *committer {
	c := &committer{
		db: db, log: log, delay: delay,
		wake: make(chan struct{}, 1), hurry: make(chan struct{}, 1), stopped: make(chan struct{}),
	}
	c.cond = sync.NewCond(&c.mu)
	go c.run()
	return c
}

func signal(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// add hands op to the committer; it waits while the committer is a whole
// bound behind.
func (c *committer) add(op *writeOp) error {
	c.mu.Lock()
	for !c.closed && (len(c.pending) >= maxPendingOps || c.bytes >= maxPendingBytes) {
		signal(c.hurry)
		c.cond.Wait()
	}
	if c.closed {
		c.mu.Unlock()
		return errClosed
	}
	c.pending = append(c.pending, op)
	c.bytes += op.size
	c.queued++
	full := len(c.pending) >= maxPendingOps || c.bytes >= maxPendingBytes
	c.mu.Unlock()
	signal(c.wake)
	if full {
		signal(c.hurry)
	}
	return nil
}

// do hands op to the committer and waits for its answer.
func (c *committer) do(op *writeOp) error {
	op.done = make(chan error, 1)
	if err := c.add(op); err != nil {
		return err
	}
	signal(c.hurry)
	return <-op.done
}

// flush returns once every record handed in before the call is written.
func (c *committer) flush() {
	c.mu.Lock()
	defer c.mu.Unlock()
	target := c.queued
	if c.written >= target {
		return
	}
	signal(c.hurry)
	for c.written < target {
		c.cond.Wait()
	}
}

// close writes the records still pending and stops the committer.
func (c *committer) close() {
	c.mu.Lock()
	c.closed = true
	c.cond.Broadcast()
	c.mu.Unlock()
	signal(c.wake)
	signal(c.hurry)
	<-c.stopped
}

func (c *committer) run() {
	defer close(c.stopped)
	t := time.NewTimer(time.Hour)
	t.Stop()
	for {
		<-c.wake
		c.mu.Lock()
		idle, closed := len(c.pending) == 0, c.closed
		c.mu.Unlock()
		if idle && closed {
			return
		}
		if idle {
			continue
		}
		if c.delay > 0 && !closed {
			t.Reset(c.delay)
			select {
			case <-t.C:
			case <-c.hurry:
				t.Stop()
			}
		}
		c.mu.Lock()
		ops := c.pending
		c.pending, c.bytes = nil, 0
		c.cond.Broadcast()
		c.mu.Unlock()

		c.commit(ops)

		c.mu.Lock()
		c.written += uint64(len(ops))
		c.cond.Broadcast()
		again := len(c.pending) > 0 || c.closed
		c.mu.Unlock()
		if again {
			signal(c.wake)
		}
	}
}

// errRecordFailed marks a transaction rolled back for one record's error.
var errRecordFailed = errors.New("record failed")

// commit writes ops in one transaction. When one fails, it is answered
// (or logged) alone and the others are written again without it.
func (c *committer) commit(ops []*writeOp) {
	for len(ops) > 0 {
		var failed int
		var ferr error
		err := safely(func() error {
			return c.db.Update(func(tx *bolt.Tx) error {
				b := newBatch(tx)
				for i, op := range ops {
					op.res = nil
					if err := c.apply(b, op); err != nil {
						failed, ferr = i, err
						return errRecordFailed
					}
				}
				return b.finish()
			})
		})
		switch {
		case err == nil:
			for _, op := range ops {
				c.answer(op, op.res)
			}
			return
		case errors.Is(err, errRecordFailed):
			c.answer(ops[failed], ferr)
			ops = append(ops[:failed:failed], ops[failed+1:]...)
		default:
			pe := (*panicError)(nil)
			if errors.As(err, &pe) {
				c.log.Error("activity records panicked", "records", len(ops), "panic", pe.p, "stack", pe.stack)
			} else {
				c.log.Warn("activity: records not written", "records", len(ops), "first", ops[0].what, "error", err)
			}
			for _, op := range ops {
				if op.done != nil {
					op.done <- err
				}
			}
			return
		}
	}
}

// apply runs op's fn, turning a panic into its error.
func (c *committer) apply(b *wbatch, op *writeOp) error {
	return safely(func() error { return op.fn(b, op) })
}

// panicError is a panic recovered by safely.
type panicError struct {
	p     any
	stack string
}

func (e *panicError) Error() string { return fmt.Sprintf("panic: %v", e.p) }

// safely runs fn, turning a panic into a *panicError.
func safely(fn func() error) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = &panicError{p: p, stack: string(debug.Stack())}
		}
	}()
	return fn()
}

// answer gives op's result to its caller, or logs a failure nobody waits
// for.
func (c *committer) answer(op *writeOp, err error) {
	pe := (*panicError)(nil)
	switch {
	case errors.As(err, &pe):
		c.log.Error("activity record panicked", "record", op.what, "panic", pe.p, "stack", pe.stack)
	case err != nil && op.done == nil:
		c.log.Warn("activity: "+op.what, "error", err)
	}
	if op.done != nil {
		op.done <- err
	}
}

// wbatch is one transaction's view of the records: each message record
// read at most once, changed by every op in turn, written once at the end
// with its summary; likewise the per-minute counters.
type wbatch struct {
	tx    *bolt.Tx
	recs  map[string]*batchRec
	cells map[string]*seriesCell
}

type batchRec struct {
	rec   *msgRecord // nil: no record
	dirty bool
	now   time.Time // of the last change
}

func newBatch(tx *bolt.Tx) *wbatch {
	return &wbatch{tx: tx, recs: map[string]*batchRec{}, cells: map[string]*seriesCell{}}
}

// record returns the record of message id as the batch has it, or
// ErrNotFound. The caller may change it and then call put.
func (b *wbatch) record(id string) (*msgRecord, error) {
	if e, ok := b.recs[id]; ok {
		if e.rec == nil {
			return nil, ErrNotFound
		}
		return e.rec, nil
	}
	rec, err := getRecord(b.tx, id)
	if err != nil && !errors.Is(err, ErrNotFound) {
		return nil, err
	}
	b.recs[id] = &batchRec{rec: rec}
	return rec, err
}

// put marks rec changed at now: it is written by finish.
func (b *wbatch) put(rec *msgRecord, now time.Time) {
	e := b.recs[rec.ID]
	if e == nil {
		e = &batchRec{}
		b.recs[rec.ID] = e
	}
	e.rec, e.dirty, e.now = rec, true, now
}

// series applies fn to the counters of t's minute.
func (b *wbatch) series(t time.Time, fn func(*seriesCell)) {
	k := string(minuteKey(t))
	c := b.cells[k]
	if c == nil {
		c = &seriesCell{}
		if v := b.tx.Bucket(bSeries).Get([]byte(k)); v != nil {
			_ = json.Unmarshal(v, c) // a broken cell restarts at zero
		}
		b.cells[k] = c
	}
	fn(c)
}

// finish writes the records and counters changed, and merges the id
// index's log when it is full.
func (b *wbatch) finish() error {
	for _, e := range b.recs {
		if e.dirty {
			if err := putRecord(b.tx, e.rec, e.now); err != nil {
				return err
			}
		}
	}
	bk := b.tx.Bucket(bSeries)
	for k, c := range b.cells {
		v, err := json.Marshal(c)
		if err != nil {
			return err
		}
		if err := bk.Put([]byte(k), v); err != nil {
			return err
		}
	}
	return mergeIdxLogFull(b.tx)
}
