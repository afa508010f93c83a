package pebbleq

// What the workers do: take jobs, settle them, read their message.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/cockroachdb/pebble/v2"

	"github.com/mailhook/mailhook/deliver"
	"github.com/mailhook/mailhook/inbound"
)

// Take implements deliver.Queue. The leases it writes are in the log when
// it returns (a killed process loses none) and durable with the next
// fsync; it does not wait for one.
func (q *Queue) Take(ctx context.Context, kinds []deliver.Kind, n int, lease time.Duration) ([]*deliver.Job, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if n <= 0 {
		return nil, nil
	}
	if err := q.enter(); err != nil {
		return nil, err
	}
	defer q.life.RUnlock()
	q.mu.Lock()
	defer q.mu.Unlock()
	now := q.now()
	nowNS := now.UnixNano()
	expired := q.idx.expired(nowNS)
	due := q.idx.due(kinds, n, nowNS)
	if len(expired) == 0 && len(due) == 0 {
		return nil, nil // an idle poll writes nothing
	}
	b := q.db.NewBatch()
	defer b.Close()
	type change struct {
		e *entry
		j *deliver.Job
	}
	var changes []change
	// Return expired leases first (their worker died or hung).
	for _, it := range expired {
		e := q.idx.jobs[it.id]
		j, err := q.job(e)
		if err != nil {
			return nil, fmt.Errorf("pebbleq: take: %w", err)
		}
		j.Lease, j.LeaseUntil = "", time.Time{}
		if err := putJob(b, j); err != nil {
			return nil, fmt.Errorf("pebbleq: take: %w", err)
		}
		changes = append(changes, change{e, j})
	}
	if len(expired) > 0 {
		// What was leased may be due now, and older than what was found.
		for _, c := range changes {
			q.idx.update(c.e, c.j)
			c.e.job = nil
		}
		changes = changes[:0]
		due = q.idx.due(kinds, n, nowNS)
	}
	out := make([]*deliver.Job, 0, len(due))
	for _, it := range due {
		e := q.idx.jobs[it.id]
		j, err := q.job(e)
		if err != nil {
			return nil, fmt.Errorf("pebbleq: take: %w", err)
		}
		j.Attempts++
		j.Lease = deliver.NewToken()
		j.LeaseUntil = now.Add(lease)
		if err := putJob(b, j); err != nil {
			return nil, fmt.Errorf("pebbleq: take: %w", err)
		}
		changes = append(changes, change{e, j})
		c := *j
		out = append(out, &c)
	}
	if err := q.db.Apply(b, pebble.NoSync); err != nil {
		return nil, fmt.Errorf("pebbleq: take: %w", err)
	}
	for _, c := range changes {
		q.idx.update(c.e, c.j)
		c.e.job = c.j
	}
	return out, nil
}

// job returns e's stored job: the copy kept while it is leased, else read
// from the store. The caller holds q.mu and may change the result.
func (q *Queue) job(e *entry) (*deliver.Job, error) {
	if e.job != nil {
		c := *e.job
		c.History = append([]deliver.Attempt(nil), e.job.History...)
		return &c, nil
	}
	v, err := q.get(key(pJob, e.id))
	if err != nil {
		return nil, fmt.Errorf("job %q: %w", e.id, err)
	}
	return decodeJob(v)
}

// settle runs fn on the stored copy of job under job's lease and, when
// durable, waits for the change to be synced. fn returns whether to delete
// the job.
//
// An acknowledgement is not waited for (durable false): delivery is at
// least once, and an Ack that a crash loses only brings the job back to be
// delivered again, under the same webhook-id. Its message's file, when it
// was the last job, goes after the sync that makes the deletion durable.
// Retries, dead letters and the operators' changes are synced.
func (q *Queue) settle(ctx context.Context, op string, job *deliver.Job, durable bool, fn func(j *deliver.Job) (del bool)) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := q.enter(); err != nil {
		return err
	}
	defer q.life.RUnlock()
	stored, remove, err := q.change(job.ID, func(e *entry) error {
		if job.Lease == "" || e.lease != job.Lease || e.dead != 0 {
			return deliver.ErrLeaseLost
		}
		return nil
	}, fn)
	if errors.Is(err, deliver.ErrNotFound) {
		err = deliver.ErrLeaseLost
	}
	if err == nil && durable {
		err = q.sync()
	}
	if err != nil {
		return fmt.Errorf("pebbleq: %s %s: %w", op, job.ID, err)
	}
	if stored != nil {
		*job = *stored
	}
	if durable {
		q.removeFile(remove)
	} else {
		q.removeAfterSync(remove)
	}
	return nil
}

// change applies fn to job id's stored copy, after check passes on its
// index entry: it deletes the job when fn says so (and its message with its
// last job), else stores it. It returns the stored job (nil when deleted)
// and the raw file to remove once the change is durable. The caller waits
// for durability.
func (q *Queue) change(id string, check func(*entry) error, fn func(j *deliver.Job) (del bool)) (*deliver.Job, string, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	e := q.idx.jobs[id]
	if e == nil {
		return nil, "", deliver.ErrNotFound
	}
	if err := check(e); err != nil {
		return nil, "", err
	}
	j, err := q.job(e)
	if err != nil {
		return nil, "", err
	}
	b := q.db.NewBatch()
	defer b.Close()
	if !fn(j) {
		if err := putJob(b, j); err != nil {
			return nil, "", err
		}
		if err := q.db.Apply(b, pebble.NoSync); err != nil {
			return nil, "", err
		}
		q.idx.update(e, j)
		e.job = nil
		if j.Lease != "" {
			e.job = j
		}
		c := *j
		return &c, "", nil
	}
	b.Delete(key(pJob, id), nil)
	last := q.idx.msgs[e.msgID] <= 1
	var file string
	if last {
		if v, err := q.get(key(pMsg, e.msgID)); err == nil {
			var rec msgRecord
			if json.Unmarshal(v, &rec) == nil {
				file = rec.File
			}
		}
		deleteMsgData(b, e.msgID)
	}
	if err := q.db.Apply(b, pebble.NoSync); err != nil {
		return nil, "", err
	}
	q.idx.remove(e)
	return nil, file, nil
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
	return q.settle(ctx, "ack", job, false, func(*deliver.Job) bool { return true })
}

// Retry implements deliver.Queue.
func (q *Queue) Retry(ctx context.Context, job *deliver.Job, next time.Time, a deliver.Attempt) error {
	return q.settle(ctx, "retry", job, true, func(j *deliver.Job) bool {
		j.Lease, j.LeaseUntil = "", time.Time{}
		j.NextAt = next
		j.Rcpts = job.Rcpts
		j.AddAttempt(a)
		return false
	})
}

// Dead implements deliver.Queue.
func (q *Queue) Dead(ctx context.Context, job *deliver.Job, a deliver.Attempt) error {
	return q.settle(ctx, "dead", job, true, func(j *deliver.Job) bool {
		j.Lease, j.LeaseUntil = "", time.Time{}
		j.DeadAt = q.now()
		j.Rcpts = job.Rcpts
		j.AddAttempt(a)
		return false
	})
}

// Mail implements deliver.Messages.
func (q *Queue) Mail(ctx context.Context, msgID string) (*inbound.Mail, error) {
	if err := q.enter(); err != nil {
		return nil, err
	}
	defer q.life.RUnlock()
	v, closer, err := q.db.Get(key(pMail, msgID))
	if errors.Is(err, pebble.ErrNotFound) {
		err = deliver.ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("pebbleq: mail %s: %w", msgID, err)
	}
	defer closer.Close()
	// Decoded before the closer releases v; DecodeMail copies what it keeps.
	m, err := deliver.DecodeMail(v)
	if err != nil {
		return nil, fmt.Errorf("pebbleq: mail %s: %w", msgID, err)
	}
	return m, nil
}

// OpenRaw implements deliver.Messages.
func (q *Queue) OpenRaw(ctx context.Context, msgID string) (io.ReadCloser, error) {
	if err := q.enter(); err != nil {
		return nil, err
	}
	defer q.life.RUnlock()
	v, err := q.get(key(pMsg, msgID))
	if err != nil {
		return nil, fmt.Errorf("pebbleq: raw %s: %w", msgID, err)
	}
	var rec msgRecord
	if err := json.Unmarshal(v, &rec); err != nil {
		return nil, fmt.Errorf("pebbleq: raw %s: record: %w", msgID, err)
	}
	if rec.Inline {
		raw, err := q.get(key(pRaw, msgID))
		if err != nil {
			return nil, fmt.Errorf("pebbleq: raw %s: %w", msgID, err)
		}
		return io.NopCloser(bytes.NewReader(raw)), nil
	}
	f, err := os.Open(filepath.Join(q.msgDir, rec.File))
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("pebbleq: raw %s: %w", msgID, deliver.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("pebbleq: raw %s: %w", msgID, err)
	}
	return f, nil
}
