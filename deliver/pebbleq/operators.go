package pebbleq

// What operators do: count, list, show, replay, drop and retry now.

import (
	"context"
	"fmt"
	"time"

	"github.com/cockroachdb/pebble/v2"

	"github.com/mailhook/mailhook/deliver"
)

// Stats implements deliver.Operator.
func (q *Queue) Stats(ctx context.Context) (deliver.Stats, error) {
	if err := q.enter(); err != nil {
		return deliver.Stats{}, err
	}
	defer q.life.RUnlock()
	q.mu.Lock()
	defer q.mu.Unlock()
	var st deliver.Stats
	now := q.now().UnixNano()
	oldest := int64(0)
	for _, t := range q.idx.ready {
		first := true
		t.Ascend(func(it item) bool {
			if it.t > now {
				return false
			}
			st.Ready++
			if first && (oldest == 0 || it.t < oldest) {
				oldest = it.t
			}
			first = false
			return true
		})
		st.Scheduled += t.Len()
	}
	st.Scheduled -= st.Ready
	if oldest != 0 {
		st.OldestAge = time.Duration(now - oldest)
	}
	st.Leased = q.idx.leased.Len()
	st.Dead = q.idx.dead.Len()
	return st, nil
}

// List implements deliver.Operator.
func (q *Queue) List(ctx context.Context, opts deliver.ListOptions) ([]*deliver.Job, error) {
	if err := q.enter(); err != nil {
		return nil, err
	}
	defer q.life.RUnlock()
	it, err := q.db.NewIter(prefixBounds(pJob))
	if err != nil {
		return nil, err
	}
	defer it.Close()
	now := q.now()
	var out []*deliver.Job
	ok := it.First()
	if opts.After != "" {
		after := key(pJob, opts.After)
		ok = it.SeekGE(after)
		if ok && string(it.Key()) == string(after) {
			ok = it.Next()
		}
	}
	for ; ok && len(out) < opts.Lim(); ok = it.Next() {
		j, err := decodeJob(it.Value())
		if err != nil {
			return nil, fmt.Errorf("pebbleq: list: job %q: %w", it.Key()[1:], err)
		}
		if opts.Matches(j, now) {
			out = append(out, j)
		}
	}
	return out, it.Error()
}

// ListDead implements deliver.Operator.
func (q *Queue) ListDead(ctx context.Context, opts deliver.ListOptions) ([]*deliver.Job, error) {
	if err := q.enter(); err != nil {
		return nil, err
	}
	defer q.life.RUnlock()
	var ids []string
	q.mu.Lock()
	pick := func(it item) bool {
		e := q.idx.jobs[it.id]
		if (opts.Kind == "" || e.kind == opts.Kind) && (opts.MsgID == "" || e.msgID == opts.MsgID) {
			ids = append(ids, it.id)
		}
		return len(ids) < opts.Lim()
	}
	if opts.After == "" {
		q.idx.dead.Descend(pick)
	} else if e := q.idx.jobs[opts.After]; e == nil {
		q.mu.Unlock()
		return nil, fmt.Errorf("pebbleq: list dead after %s: %w", opts.After, deliver.ErrNotFound)
	} else {
		q.idx.dead.DescendLessOrEqual(item{e.dead, e.id}, func(it item) bool {
			return it.id == e.id && it.t == e.dead || pick(it)
		})
	}
	q.mu.Unlock()
	out := make([]*deliver.Job, 0, len(ids))
	for _, id := range ids {
		v, err := q.get(key(pJob, id))
		if err != nil {
			continue // dropped or replayed meanwhile
		}
		j, err := decodeJob(v)
		if err != nil {
			return nil, fmt.Errorf("pebbleq: list dead: job %q: %w", id, err)
		}
		if !j.DeadAt.IsZero() {
			out = append(out, j)
		}
	}
	return out, nil
}

// Get implements deliver.Operator.
func (q *Queue) Get(ctx context.Context, jobID string) (*deliver.Job, error) {
	if err := q.enter(); err != nil {
		return nil, err
	}
	defer q.life.RUnlock()
	v, err := q.get(key(pJob, jobID))
	if err != nil {
		return nil, fmt.Errorf("pebbleq: get %s: %w", jobID, err)
	}
	return decodeJob(v)
}

// operate changes one job for an operator and waits for it to be durable.
func (q *Queue) operate(op, jobID string, check func(*entry) error, fn func(*deliver.Job) bool) error {
	if err := q.enter(); err != nil {
		return err
	}
	defer q.life.RUnlock()
	_, remove, err := q.change(jobID, check, fn)
	if err == nil {
		err = q.sync()
	}
	if err != nil {
		return fmt.Errorf("pebbleq: %s %s: %w", op, jobID, err)
	}
	q.removeFile(remove)
	return nil
}

func isDead(e *entry) error {
	if e.dead == 0 {
		return deliver.ErrNotDead
	}
	return nil
}

func (q *Queue) replay(now time.Time) func(j *deliver.Job) bool {
	return func(j *deliver.Job) bool {
		j.DeadAt = time.Time{}
		j.NextAt = now
		j.ReplayedAt = now
		j.ReplayedAttempts = j.Attempts
		return false
	}
}

// Replay implements deliver.Operator.
func (q *Queue) Replay(ctx context.Context, jobID string) error {
	return q.operate("replay", jobID, isDead, q.replay(q.now()))
}

// ReplayAll implements deliver.Operator.
func (q *Queue) ReplayAll(ctx context.Context, since time.Time) (int, error) {
	if err := q.enter(); err != nil {
		return 0, err
	}
	defer q.life.RUnlock()
	q.mu.Lock()
	now := q.now()
	var es []*entry
	q.idx.dead.AscendGreaterOrEqual(item{ns(since), ""}, func(it item) bool {
		es = append(es, q.idx.jobs[it.id])
		return true
	})
	b := q.db.NewBatch()
	defer b.Close()
	jobs := make([]*deliver.Job, len(es))
	for i, e := range es {
		j, err := q.job(e)
		if err != nil {
			q.mu.Unlock()
			return 0, fmt.Errorf("pebbleq: replay all: %w", err)
		}
		q.replay(now)(j)
		if err := putJob(b, j); err != nil {
			q.mu.Unlock()
			return 0, fmt.Errorf("pebbleq: replay all: %w", err)
		}
		jobs[i] = j
	}
	err := q.db.Apply(b, pebble.NoSync)
	if err == nil {
		for i, e := range es {
			q.idx.update(e, jobs[i])
		}
	}
	q.mu.Unlock()
	if err == nil {
		err = q.sync()
	}
	if err != nil {
		return 0, fmt.Errorf("pebbleq: replay all: %w", err)
	}
	return len(es), nil
}

// Drop implements deliver.Operator.
func (q *Queue) Drop(ctx context.Context, jobID string) error {
	return q.operate("drop", jobID, func(*entry) error { return nil }, func(*deliver.Job) bool { return true })
}

// RetryNow implements deliver.Operator.
func (q *Queue) RetryNow(ctx context.Context, jobID string) error {
	now := q.now()
	var due bool
	err := q.operate("retry now", jobID, func(e *entry) error {
		var j deliver.Job
		j.DeadAt, j.Lease, j.NextAt = time.Unix(0, e.dead), e.lease, time.Unix(0, e.next)
		if e.dead == 0 {
			j.DeadAt = time.Time{}
		}
		waiting, err := j.Waiting(now)
		if err == nil && !waiting {
			due = true
			return errAlreadyDue
		}
		return err
	}, func(j *deliver.Job) bool {
		j.NextAt = now
		return false
	})
	if due {
		return nil
	}
	return err
}

// errAlreadyDue stops RetryNow's change for a job already due.
var errAlreadyDue = fmt.Errorf("already due")
