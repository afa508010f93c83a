package deliver

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mailhook/mailhook/inbound"
)

// DefaultSchedule is the retry schedule of the Standard Webhooks guidance:
// the delays after the 1st, 2nd, ... failed attempt.
var DefaultSchedule = []time.Duration{
	5 * time.Second, 5 * time.Minute, 30 * time.Minute, 2 * time.Hour,
	5 * time.Hour, 10 * time.Hour, 14 * time.Hour, 20 * time.Hour, 24 * time.Hour,
}

// Runner defaults.
const (
	DefaultMaxAge       = 96 * time.Hour
	DefaultLease        = 5 * time.Minute
	DefaultConcurrency  = 4
	DefaultJitter       = 0.1
	DefaultPollInterval = time.Second
	DefaultStopTimeout  = 10 * time.Second
)

// cancelGrace is how long Run waits for cancelled attempts to settle their
// jobs before it returns anyway.
const cancelGrace = 5 * time.Second

// RunnerOptions configures a Runner. Zero values take the defaults.
type RunnerOptions struct {
	Queue Queue
	// Handlers perform the attempts; the Runner takes only the kinds it has
	// a handler for.
	Handlers map[Kind]Handler
	// Concurrency is the number of attempts in flight per kind
	// (DefaultConcurrency when absent or <= 0).
	Concurrency map[Kind]int
	// Lease is how long a taken job stays invisible to other workers
	// (DefaultLease).
	Lease time.Duration
	// AttemptTimeout bounds each attempt's context; it is kept below Lease
	// so an attempt ends before another worker can take the job. Default
	// and maximum: 4/5 of Lease.
	AttemptTimeout time.Duration
	// Schedule is the delay before each retry (DefaultSchedule); when it
	// is exhausted the job is dead-lettered.
	Schedule []time.Duration
	// MaxAge dead-letters a job whose next attempt would fall later than
	// MaxAge after its creation or last replay (DefaultMaxAge).
	MaxAge time.Duration
	// Jitter spreads each delay by up to this fraction either way
	// (DefaultJitter); negative disables.
	Jitter float64
	// PollInterval is how often the queue is polled for jobs that became
	// due (DefaultPollInterval); Notify wakes the Runner in between.
	PollInterval time.Duration
	// StopTimeout is how long attempts in flight may run on after Run's
	// context is cancelled (DefaultStopTimeout); then they are cancelled
	// and their jobs released to the queue.
	StopTimeout time.Duration
	// Logger receives one line per job delivered or dead-lettered; nil
	// discards.
	Logger *slog.Logger
	// Now returns the current time; nil means time.Now.
	Now func() time.Time
	// OnAttempt, when set, is told of every settled attempt and how it was
	// settled (metrics, the activity log). It runs on the worker's
	// goroutine and must not block.
	OnAttempt func(job *Job, mail *inbound.Mail, a Attempt, how Settlement)
	// Cache, when set, is the MailCache the Committer of this node fills:
	// a job's mail is taken from it before the queue is asked.
	Cache *MailCache
}

// Runner takes jobs from a Queue and runs their handlers, with retries by
// schedule and dead letters.
type Runner struct {
	opt     RunnerOptions
	log     *slog.Logger
	wake    map[Kind]chan struct{}
	running atomic.Bool
}

// NewRunner returns a Runner with opts' defaults filled in.
func NewRunner(opts RunnerOptions) (*Runner, error) {
	if opts.Queue == nil {
		return nil, errors.New("deliver: runner without a queue")
	}
	if len(opts.Handlers) == 0 {
		return nil, errors.New("deliver: runner without handlers")
	}
	for k := range opts.Handlers {
		if !k.Valid() {
			return nil, fmt.Errorf("deliver: runner: unknown kind %q", k)
		}
	}
	if opts.Lease <= 0 {
		opts.Lease = DefaultLease
	}
	if max := opts.Lease * 4 / 5; opts.AttemptTimeout <= 0 || opts.AttemptTimeout > max {
		opts.AttemptTimeout = max
	}
	if len(opts.Schedule) == 0 {
		opts.Schedule = DefaultSchedule
	}
	if opts.MaxAge <= 0 {
		opts.MaxAge = DefaultMaxAge
	}
	if opts.Jitter == 0 {
		opts.Jitter = DefaultJitter
	}
	if opts.PollInterval <= 0 {
		opts.PollInterval = DefaultPollInterval
	}
	if opts.StopTimeout <= 0 {
		opts.StopTimeout = DefaultStopTimeout
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	r := &Runner{opt: opts, log: opts.Logger, wake: map[Kind]chan struct{}{}}
	if r.log == nil {
		r.log = slog.New(slog.DiscardHandler)
	}
	for k := range opts.Handlers {
		r.wake[k] = make(chan struct{}, 1)
	}
	return r, nil
}

// Notify wakes the Runner to take jobs now rather than at the next poll;
// call it after a Commit. It never blocks.
func (r *Runner) Notify() {
	for _, c := range r.wake {
		select {
		case c <- struct{}{}:
		default:
		}
	}
}

// Run takes and runs jobs until ctx is cancelled. Then it stops taking
// jobs, lets attempts in flight finish for up to StopTimeout, cancels the
// rest and releases their jobs to the queue, and returns nil.
func (r *Runner) Run(ctx context.Context) error {
	if !r.running.CompareAndSwap(false, true) {
		return errors.New("deliver: runner already running")
	}
	defer r.running.Store(false)
	workCtx, cancelWork := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelWork()
	var fetchers, inflight sync.WaitGroup
	for kind, h := range r.opt.Handlers {
		fetchers.Add(1)
		go func() {
			defer fetchers.Done()
			r.fetch(ctx, workCtx, kind, h, &inflight)
		}()
	}
	fetchers.Wait()
	done := make(chan struct{})
	go func() {
		inflight.Wait()
		close(done)
	}()
	t := time.NewTimer(r.opt.StopTimeout)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
		r.log.Warn("stopping: cancelling attempts still in flight")
		cancelWork()
		// A handler that ignores its context must not hold the process:
		// its job's lease expires and the job is taken again.
		t.Reset(cancelGrace)
		select {
		case <-done:
		case <-t.C:
			r.log.Error("stopping: attempts ignored cancellation; their jobs return when their leases expire")
		}
	}
	return nil
}

// fetch is one kind's loop: take as many jobs as there are free slots,
// start an attempt for each, wait for a slot, a Notify or the poll.
func (r *Runner) fetch(ctx, workCtx context.Context, kind Kind, h Handler, inflight *sync.WaitGroup) {
	defer func() {
		if p := recover(); p != nil {
			r.log.Error("runner fetch loop panicked", "kind", kind, "panic", p, "stack", string(debug.Stack()))
		}
	}()
	conc := r.opt.Concurrency[kind]
	if conc <= 0 {
		conc = DefaultConcurrency
	}
	free := conc
	slotDone := make(chan struct{}, conc)
	poll := time.NewTimer(r.opt.PollInterval)
	defer poll.Stop()
	for {
		if ctx.Err() != nil {
			return
		}
		if free > 0 {
			// Not cancelled with ctx: a reply lost to a cancel would strand
			// the jobs it leased until their lease expires. Jobs taken as
			// the stop begins run like any in flight.
			tctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
			jobs, err := r.opt.Queue.Take(tctx, []Kind{kind}, free, r.opt.Lease)
			cancel()
			if err != nil && ctx.Err() == nil {
				r.log.Error("taking jobs", "kind", kind, "err", err)
			}
			for _, j := range jobs {
				free--
				inflight.Add(1)
				go func() {
					defer inflight.Done()
					defer func() { slotDone <- struct{}{} }()
					r.attempt(workCtx, j, h)
				}()
			}
		}
		poll.Reset(r.opt.PollInterval)
		select {
		case <-ctx.Done():
			return
		case <-slotDone:
			free++
		case <-r.wake[kind]:
		case <-poll.C:
		}
		for drained := false; !drained; {
			select {
			case <-slotDone:
				free++
			default:
				drained = true
			}
		}
	}
}

// attempt runs one attempt of job and settles it.
func (r *Runner) attempt(workCtx context.Context, job *Job, h Handler) {
	defer func() {
		if p := recover(); p != nil {
			r.log.Error("runner attempt panicked", "job_id", job.ID, "panic", p, "stack", string(debug.Stack()))
		}
	}()
	start := r.opt.Now()
	var out Outcome
	mail, err := r.opt.Cache.get(job.MsgID), error(nil)
	if mail == nil {
		mail, err = r.opt.Queue.Mail(workCtx, job.MsgID)
	}
	switch {
	case errors.Is(err, ErrNotFound):
		out = Outcome{Permanent: true, Attempt: Attempt{Error: "message data missing from the queue"}}
	case err != nil:
		out = Outcome{Attempt: Attempt{Error: "loading message: " + err.Error()}}
	default:
		actx, cancel := context.WithTimeout(workCtx, r.opt.AttemptTimeout)
		raw := func() (io.ReadCloser, error) { return r.opt.Queue.OpenRaw(actx, job.MsgID) }
		out = r.call(actx, h, job, mail, raw)
		cancel()
	}
	end := r.opt.Now()
	if out.Attempt.At.IsZero() {
		out.Attempt.At = start
	}
	if out.Attempt.Latency == 0 {
		out.Attempt.Latency = end.Sub(start)
	}
	if !out.Done && len(out.Rcpts) > 0 {
		job.Rcpts = out.Rcpts
	}
	opCtx, cancel := context.WithTimeout(context.WithoutCancel(workCtx), 30*time.Second)
	defer cancel()
	log := r.log.With("msg_id", job.MsgID, "route", job.Route, "attempt", job.Attempts,
		"status", out.Attempt.Status, "job_id", job.ID, "kind", job.Kind, "target", job.Target)
	var what string // the operation, for the log
	var how Settlement
	switch {
	case out.Done:
		what, how, err = "ack", SettleDelivered, r.opt.Queue.Ack(opCtx, job)
		if err == nil {
			log.Info("delivered", "latency", out.Attempt.Latency)
		}
	case workCtx.Err() != nil:
		// Shutting down: give the job back at once for the next process.
		if out.Attempt.Error == "" {
			out.Attempt.Error = "abandoned: mailhook is stopping"
		}
		what, how, err = "release", SettleReleased, r.opt.Queue.Retry(opCtx, job, end, out.Attempt)
		if err == nil {
			log.Info("released on stop")
		}
	default:
		next, reason := r.next(job, out, end)
		if reason != "" {
			what, how, err = "dead-letter", SettleDead, r.opt.Queue.Dead(opCtx, job, out.Attempt)
			if err == nil {
				log.Warn("dead-lettered", "reason", reason, "err", out.Attempt.Error)
			}
		} else {
			what, how, err = "retry", SettleRetry, r.opt.Queue.Retry(opCtx, job, next, out.Attempt)
			if err == nil {
				log.Info("attempt failed; will retry", "err", out.Attempt.Error, "next_at", next)
			}
		}
	}
	if err == nil && (how == SettleDelivered || how == SettleDead) {
		r.opt.Cache.settled(job.MsgID)
	}
	if err == nil && r.opt.OnAttempt != nil {
		r.opt.OnAttempt(job, mail, out.Attempt, how)
	}
	if errors.Is(err, ErrLeaseLost) {
		log.Warn("lease lost before "+what+"; another worker owns the job now", "err", err)
	} else if err != nil {
		// The lease expires and the job is taken again: at least once.
		log.Error(what+" failed", "err", err)
	}
}

// call runs the handler, turning a panic into a failed attempt.
func (r *Runner) call(ctx context.Context, h Handler, job *Job, mail *inbound.Mail, raw RawOpener) (out Outcome) {
	defer func() {
		if p := recover(); p != nil {
			r.log.Error("handler panicked", "job_id", job.ID, "kind", job.Kind, "panic", p, "stack", string(debug.Stack()))
			out = Outcome{Attempt: Attempt{Error: fmt.Sprintf("handler panic: %v", p)}}
		}
	}()
	return h.Handle(ctx, job, mail, raw)
}

// next returns when to retry a failed attempt, or why not to.
func (r *Runner) next(job *Job, out Outcome, now time.Time) (time.Time, string) {
	if out.Permanent {
		return time.Time{}, "permanent failure"
	}
	n := job.Attempts - job.ReplayedAttempts // attempts since creation or replay
	if n < 1 {
		n = 1
	}
	var delay time.Duration
	switch {
	case n > len(r.opt.Schedule):
		return time.Time{}, "retry schedule exhausted"
	case out.RetryAfter > 0:
		delay = out.RetryAfter
	default:
		delay = r.opt.Schedule[n-1]
		if j := r.opt.Jitter; j > 0 {
			delay += time.Duration((rand.Float64()*2 - 1) * j * float64(delay))
		}
	}
	base := job.CreatedAt
	if job.ReplayedAt.After(base) {
		base = job.ReplayedAt
	}
	next := now.Add(delay)
	if next.Sub(base) > r.opt.MaxAge {
		return time.Time{}, "maximum age reached"
	}
	return next, ""
}
