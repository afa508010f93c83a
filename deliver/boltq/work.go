package boltq

// What the workers do: take jobs, settle them, read their message.

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/mailhook/mailhook/deliver"
	"github.com/mailhook/mailhook/inbound"
)

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
			j.Lease = deliver.NewToken()
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

// Mail implements deliver.Messages.
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

// OpenRaw implements deliver.Messages.
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
