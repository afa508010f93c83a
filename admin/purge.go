package admin

// Purging what is older than the retention.

import (
	"context"
	"errors"
	"fmt"
	"os"
	"runtime/debug"
	"slices"
	"time"

	bolt "go.etcd.io/bbolt"
)

// PurgeInterval is how often Purge runs its sweep.
const PurgeInterval = 10 * time.Minute

// Purge deletes, every PurgeInterval until ctx is done, the records and raw
// copies older than the retention (PurgeOnce). It touches only the
// activity store: never mailboxes, never the queue. It returns ctx's error.
func (a *Activity) Purge(ctx context.Context) error {
	t := time.NewTicker(PurgeInterval)
	defer t.Stop()
	for {
		a.purgeSafely()
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}

func (a *Activity) purgeSafely() {
	defer func() {
		if v := recover(); v != nil {
			a.log.Error("activity purge panicked", "panic", v, "stack", string(debug.Stack()))
		}
	}()
	n, err := a.PurgeOnce()
	if err != nil {
		a.log.Error("activity purge failed", "err", err)
		return
	}
	if n > 0 {
		a.log.Info("activity purged", "messages", n, "retention", a.retention.String())
	}
}

// purgeBatch bounds the records deleted in one transaction, so a purge
// never holds the write lock for long.
const purgeBatch = 500

// PurgeOnce deletes everything older than the retention and returns how
// many messages went.
func (a *Activity) PurgeOnce() (int, error) {
	now := a.now()
	cutoff := now.Add(-a.retention)
	total := 0
	// The index entries of the messages to go are looked for (and
	// deleted) in bJobs and bAlias: merge the log's first.
	if err := a.db.Update(mergeIdxLog); err != nil {
		return 0, err
	}
	for {
		var raws []string
		n := 0
		err := a.db.Update(func(tx *bolt.Tx) error {
			raws, n = nil, 0
			limit := timeKey(cutoff, "")
			c := tx.Bucket(bIndex).Cursor()
			var keys [][]byte
			for k, _ := c.First(); k != nil && string(k) < string(limit) && len(keys) < purgeBatch; k, _ = c.Next() {
				keys = append(keys, slices.Clone(k))
			}
			for _, k := range keys {
				id := string(k[8:])
				if rec, err := getRecord(tx, id); err == nil {
					for _, j := range rec.Jobs {
						tx.Bucket(bJobs).Delete([]byte(j.ID))
						tx.Bucket(bSent).Delete(sentKey(id, j.ID))
						tx.Bucket(bSent).Delete([]byte(j.ID)) // an earlier version's key
					}
					if rec.StableID != "" {
						tx.Bucket(bAlias).Delete([]byte(rec.StableID))
					}
				}
				if err := tx.Bucket(bMsgs).Delete([]byte(id)); err != nil {
					return err
				}
				if err := tx.Bucket(bParsed).Delete([]byte(id)); err != nil {
					return err
				}
				if err := tx.Bucket(bRawMsg).Delete([]byte(id)); err != nil {
					return err
				}
				if err := tx.Bucket(bIndex).Delete(k); err != nil {
					return err
				}
				raws = append(raws, a.rawPath(id))
				n++
			}
			if n < purgeBatch {
				// The last batch: sweep the smaller buckets too.
				if err := deleteBefore(tx.Bucket(bRefused), limit); err != nil {
					return err
				}
				if err := deleteBefore(tx.Bucket(bSeries), minuteKey(cutoff)); err != nil {
					return err
				}
				if err := purgeClaims(tx.Bucket(bClaims), now); err != nil {
					return err
				}
				return purgeSent(tx.Bucket(bSent), cutoff)
			}
			return nil
		})
		if err != nil {
			return total, fmt.Errorf("admin: activity: purge: %w", err)
		}
		for _, p := range raws {
			if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
				a.log.Warn("activity purge: remove raw copy", "path", p, "err", err)
			}
		}
		total += n
		if n < purgeBatch {
			break
		}
	}
	a.sweepRaw(cutoff)
	return total, nil
}

func deleteBefore(bk *bolt.Bucket, limit []byte) error {
	c := bk.Cursor()
	for k, _ := c.First(); k != nil && string(k) < string(limit); k, _ = c.First() {
		if err := c.Delete(); err != nil {
			return err
		}
	}
	return nil
}
