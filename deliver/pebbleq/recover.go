package pebbleq

// Open's recovery: the index rebuilt from the jobs, and what a crash left.

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/cockroachdb/pebble/v2"

	"github.com/mailhook/mailhook/deliver"
	"github.com/mailhook/mailhook/internal/safefile"
)

// recover runs at Open, when no other process can use the store: it indexes
// every job, returns the previous process's leases to the queue,
// dead-letters jobs whose message record or raw message is missing,
// deletes messages without jobs and removes raw files no record names
// (crashes between the rename and the commit, or after the last ack).
func (q *Queue) recover() error {
	now := q.now()
	b := q.db.NewBatch()
	defer b.Close()
	byMsg := map[string][]*deliver.Job{}
	it, err := q.db.NewIter(prefixBounds(pJob))
	if err != nil {
		return err
	}
	for it.First(); it.Valid(); it.Next() {
		j, err := decodeJob(it.Value())
		if err != nil {
			it.Close()
			return fmt.Errorf("job %q: %w", it.Key()[1:], err)
		}
		byMsg[j.MsgID] = append(byMsg[j.MsgID], j)
	}
	if err := it.Close(); err != nil {
		return err
	}
	var requeued, missing, emptied int
	keep := map[string]bool{}
	change := func(j *deliver.Job, err string) error {
		j.AddAttempt(deliver.Attempt{At: now, Error: err})
		return putJob(b, j)
	}
	it, err = q.db.NewIter(prefixBounds(pMsg))
	if err != nil {
		return err
	}
	for it.First(); it.Valid(); it.Next() {
		id := string(it.Key()[1:])
		var rec msgRecord
		if err := json.Unmarshal(it.Value(), &rec); err != nil {
			it.Close()
			return fmt.Errorf("message record %q: %w", id, err)
		}
		jobs := byMsg[id]
		delete(byMsg, id)
		if len(jobs) == 0 {
			emptied++
			deleteMsgData(b, id)
			continue
		}
		var rawMissing bool
		if rec.Inline {
			_, err := q.get(key(pRaw, id))
			rawMissing = err != nil
		} else {
			_, err := os.Stat(filepath.Join(q.msgDir, rec.File))
			rawMissing = err != nil
		}
		if !rawMissing {
			keep[rec.File] = true
		}
		for _, j := range jobs {
			changed := false
			if j.Lease != "" {
				j.Lease, j.LeaseUntil = "", time.Time{}
				j.AddAttempt(deliver.Attempt{At: now, Error: "interrupted: the process stopped during the attempt"})
				requeued++
				changed = true
			}
			if rawMissing && j.DeadAt.IsZero() {
				j.DeadAt = now
				if err := change(j, "raw message file missing from the queue store"); err != nil {
					it.Close()
					return err
				}
				missing++
			} else if changed {
				if err := putJob(b, j); err != nil {
					it.Close()
					return err
				}
			}
			q.idx.add(entryOf(j))
		}
	}
	if err := it.Close(); err != nil {
		return err
	}
	// Jobs without a message record cannot be delivered: dead-letter them,
	// visibly, rather than crash on them later.
	for _, jobs := range byMsg {
		for _, j := range jobs {
			if j.DeadAt.IsZero() {
				j.Lease, j.LeaseUntil, j.DeadAt = "", time.Time{}, now
				if err := change(j, "message record missing from the queue store"); err != nil {
					return err
				}
				missing++
			}
			q.idx.add(entryOf(j))
		}
	}
	if !b.Empty() {
		if err := q.db.Apply(b, pebble.Sync); err != nil {
			return err
		}
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

func decodeJob(v []byte) (*deliver.Job, error) {
	j := new(deliver.Job)
	if err := json.Unmarshal(v, j); err != nil {
		return nil, err
	}
	return j, nil
}

// putJob writes j into b.
func putJob(b *pebble.Batch, j *deliver.Job) error {
	v, err := json.Marshal(j)
	if err != nil {
		return err
	}
	return b.Set(key(pJob, j.ID), v, nil)
}

// deleteMsgData deletes a message's record, mail and inline raw message.
func deleteMsgData(b *pebble.Batch, id string) {
	for _, p := range []byte{pMsg, pMail, pRaw} {
		b.Delete(key(p, id), nil)
	}
}
