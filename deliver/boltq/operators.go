package boltq

// What operators do: count, list, show, replay, drop and retry now.

import (
	"bytes"
	"context"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/mailhook/mailhook/deliver"
)

// Stats implements deliver.Operator.
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

// List implements deliver.Operator.
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
		var err error
		out, err = collect(opts, now, k,
			func() []byte { k, v = c.Next(); return k },
			func([]byte) (*deliver.Job, error) { return decodeJob(v) })
		return err
	})
	return out, err
}

// ListDead implements deliver.Operator.
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
		var err error
		out, err = collect(opts, now, k,
			func() []byte { k, _ = c.Prev(); return k },
			func(k []byte) (*deliver.Job, error) { return getJob(tx, string(k[8:])) })
		return err
	})
	return out, err
}

// collect returns, from key k on and each key step gives next, the jobs
// get reads for them that opts matches, up to opts.Lim().
func collect(opts deliver.ListOptions, now time.Time, k []byte, step func() []byte, get func(k []byte) (*deliver.Job, error)) ([]*deliver.Job, error) {
	var out []*deliver.Job
	for ; k != nil && len(out) < opts.Lim(); k = step() {
		j, err := get(k)
		if err != nil {
			return nil, err
		}
		if opts.Matches(j, now) {
			out = append(out, j)
		}
	}
	return out, nil
}

// Get implements deliver.Operator.
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

// Replay implements deliver.Operator.
func (q *Queue) Replay(ctx context.Context, jobID string) error {
	err := q.db.Update(func(tx *bolt.Tx) error { return q.replay(tx, jobID, q.now()) })
	if err != nil {
		return fmt.Errorf("boltq: replay %s: %w", jobID, err)
	}
	return nil
}

// ReplayAll implements deliver.Operator.
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

// Drop implements deliver.Operator.
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

// RetryNow implements deliver.Operator.
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
