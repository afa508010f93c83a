package admin

import (
	"context"
	"log/slog"
	"runtime/debug"
	"sync"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
)

// Writer defaults.
const (
	// DefaultWriterWorkers is how many goroutines apply records: one, as
	// a record only prepares its writes and hands them to the activity
	// store's committer, which writes all pending in one transaction
	// (and merges those of one message); one goroutine keeps them in the
	// order given.
	DefaultWriterWorkers = 1
	// DefaultWriterBuffer is how many records may wait for a worker.
	DefaultWriterBuffer = 10000
)

// WriterOptions configures NewWriter. Zero values take the defaults.
type WriterOptions struct {
	Workers int
	Buffer  int
	// Logger is told of each record dropped and each that panicked; nil
	// discards.
	Logger *slog.Logger
}

// Writer is the activity log's asynchronous writer: the SMTP listener and
// the workers hand it records (functions that write to the Activity) and
// go on at once, off the SMTP reply's path and the delivery's.
//
// Records are applied by one goroutine unless WriterOptions.Workers asks
// for more, and then not in the order they were given: the Activity takes
// them in any order (an attempt recorded before its message's acceptance
// makes a stub the acceptance fills in).
// When the writer is more than the buffer behind, a record is dropped (the
// mail is not: the queue has it) and counted; the drops are logged at the
// first and at each doubling of the count. A
// record that panics is logged with its stack and counted; the writer goes
// on with the next. Both counts are also metrics (MetricsOptions.Writer).
type Writer struct {
	log *slog.Logger
	ch  chan func()
	// mu guards closed and sending on ch against Close closing it.
	mu      sync.RWMutex
	closed  bool
	wg      sync.WaitGroup
	dropped atomic.Int64
	panics  atomic.Int64
}

// NewWriter starts a writer's goroutines; Close stops them.
func NewWriter(o WriterOptions) *Writer {
	if o.Workers <= 0 {
		o.Workers = DefaultWriterWorkers
	}
	if o.Buffer <= 0 {
		o.Buffer = DefaultWriterBuffer
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	w := &Writer{log: o.Logger, ch: make(chan func(), o.Buffer)}
	w.wg.Add(o.Workers)
	for range o.Workers {
		go func() {
			defer w.wg.Done()
			for fn := range w.ch {
				w.apply(fn)
			}
		}()
	}
	return w
}

// Go hands the record fn to the writer and returns at once. It reports
// false when fn was dropped: the writer is a whole buffer behind, or
// closed (a session that outlived shutdown).
func (w *Writer) Go(fn func()) bool {
	w.mu.RLock()
	sent := false
	if !w.closed {
		select {
		case w.ch <- fn:
			sent = true
		default:
		}
	}
	w.mu.RUnlock()
	if !sent {
		// Logged at the first drop and at each doubling, with the count:
		// a writer behind drops many, and a line each would flood the log.
		if n := w.dropped.Add(1); n&(n-1) == 0 {
			w.log.Warn("activity log behind or closed: records dropped (the mail is not: the queue has it)", "dropped", n)
		}
	}
	return sent
}

// apply runs fn, recovering a panic: logged with its stack and counted.
func (w *Writer) apply(fn func()) {
	defer func() {
		if p := recover(); p != nil {
			n := w.panics.Add(1)
			w.log.Error("activity record panicked", "panic", p, "panics", n, "stack", string(debug.Stack()))
		}
	}()
	fn()
}

// Dropped returns how many records were dropped.
func (w *Writer) Dropped() int64 { return w.dropped.Load() }

// Panics returns how many records panicked.
func (w *Writer) Panics() int64 { return w.panics.Load() }

// collectors are the writer's counters for /metrics (MetricsOptions.Writer).
func (w *Writer) collectors() []prometheus.Collector {
	return []prometheus.Collector{
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "mailhook_activity_records_dropped_total",
			Help: "Activity log records dropped: the writer was a whole buffer behind, or closed (the mail was not: the queue has it).",
		}, func() float64 { return float64(w.Dropped()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "mailhook_activity_records_panicked_total",
			Help: "Activity log records that panicked (logged with their stack).",
		}, func() float64 { return float64(w.Panics()) }),
	}
}

// Pending returns how many records wait for a goroutine.
func (w *Writer) Pending() int { return len(w.ch) }

// Close stops taking records and waits until those taken are applied, or
// ctx ends: then it returns ctx's error, and the records still waiting
// are left to the goroutines, which go on until they are done. Close may
// be called more than once.
func (w *Writer) Close(ctx context.Context) error {
	w.mu.Lock()
	if !w.closed {
		w.closed = true
		close(w.ch)
	}
	w.mu.Unlock()
	done := make(chan struct{})
	go func() { w.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
