package pebbleq

// Commit: a message and its jobs in one batch, durable with the log's next
// shared fsync.

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/cockroachdb/pebble/v2"

	"github.com/mailhook/mailhook/deliver"
	"github.com/mailhook/mailhook/inbound"
	"github.com/mailhook/mailhook/internal/safefile"
)

// Commit implements deliver.Queue.
func (q *Queue) Commit(ctx context.Context, mail *inbound.Mail, jobs []*deliver.Job) (err error) {
	rawPath := ""
	if mail != nil {
		rawPath = mail.RawPath
	}
	stored := ""
	defer func() {
		if err != nil && rawPath != "" {
			os.Remove(rawPath)
		}
		if err != nil && stored != "" {
			os.Remove(stored)
		}
	}()
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := q.enter(); err != nil {
		return err
	}
	defer q.life.RUnlock()
	now := q.now()
	if err := deliver.ValidateCommit(mail, jobs, now); err != nil {
		return err
	}
	if rawPath == "" && mail.Raw == nil {
		return errors.New("pebbleq: commit: mail without raw message")
	}
	if len(jobs) == 0 {
		if rawPath != "" {
			os.Remove(rawPath)
		}
		return nil
	}
	ckey := deliver.CommitKey(mail)
	var inline []byte
	switch {
	case mail.Raw != nil && q.inlineMax > 0 && int64(len(mail.Raw)) <= q.inlineMax:
		// Held in memory since the socket: written once, in the batch.
		inline = mail.Raw
	case rawPath != "" && q.inlineMax > 0:
		b, err := safefile.ReadUpTo(rawPath, q.inlineMax)
		if err == nil {
			inline = b
		} else if !errors.Is(err, safefile.ErrTooLarge) {
			return fmt.Errorf("pebbleq: commit %s: %w", mail.ID, err)
		}
	}
	rec := msgRecord{Inline: inline != nil}
	if inline == nil {
		// A duplicate is found again under the lock; looking first only
		// spares a large retried message its fsync'd move.
		if q.isDup(mail.ID, ckey, now) {
			if rawPath != "" {
				os.Remove(rawPath)
			}
			return q.sync()
		}
		rec.File = deliver.RawFileName(mail.ID)
		stored = filepath.Join(q.msgDir, rec.File)
		if mail.Raw != nil {
			err = safefile.Write(stored, bytes.NewReader(mail.Raw))
		} else {
			err = safefile.Move(rawPath, stored)
			rawPath = ""
		}
		if err != nil {
			return fmt.Errorf("pebbleq: commit %s: %w", mail.ID, err)
		}
	}
	b := q.db.NewBatch()
	defer b.Close()
	if err := q.commitBatch(b, mail, &rec, inline, jobs); err != nil {
		return fmt.Errorf("pebbleq: commit %s: %w", mail.ID, err)
	}

	q.mu.Lock()
	dup, seen := q.isDupLocked(mail.ID, ckey, now)
	if !dup {
		err = q.applyCommit(b, mail.ID, ckey, seen, jobs, now)
	}
	q.mu.Unlock()
	if err != nil {
		return fmt.Errorf("pebbleq: commit %s: %w", mail.ID, err)
	}
	if dup && stored != "" {
		os.Remove(stored)
		stored = ""
	}
	if rawPath != "" {
		os.Remove(rawPath) // stored inline
		rawPath = ""
	}
	// A duplicate waits too: the first copy may be applied but not yet
	// durable, and the sender's 250 must wait for it.
	if err := q.sync(); err != nil {
		return fmt.Errorf("pebbleq: commit %s: %w", mail.ID, err)
	}
	return nil
}

// commitBatch writes a message's record, mail, inline raw and jobs into b.
func (q *Queue) commitBatch(b *pebble.Batch, mail *inbound.Mail, rec *msgRecord, inline []byte, jobs []*deliver.Job) error {
	recJSON, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	mailJSON, err := deliver.EncodeMail(mail)
	if err != nil {
		return err
	}
	b.Set(key(pMsg, mail.ID), recJSON, nil)
	b.Set(key(pMail, mail.ID), mailJSON, nil)
	if inline != nil {
		b.Set(key(pRaw, mail.ID), inline, nil)
	}
	for _, j := range jobs {
		if err := putJob(b, j); err != nil {
			return err
		}
	}
	return nil
}

// applyCommit checks the jobs' IDs, remembers the commit key (seen is its
// stored value, from isDupLocked), applies b and indexes the jobs. The
// caller holds q.mu.
func (q *Queue) applyCommit(b *pebble.Batch, msgID, ckey string, seen []byte, jobs []*deliver.Job, now time.Time) error {
	for _, j := range jobs {
		if _, ok := q.idx.jobs[j.ID]; ok {
			return fmt.Errorf("%w: %q", deliver.ErrDuplicateJob, j.ID)
		}
	}
	if err := q.remember(b, ckey, msgID, seen, now); err != nil {
		return err
	}
	if err := q.db.Apply(b, pebble.NoSync); err != nil {
		return err
	}
	for _, j := range jobs {
		q.idx.add(entryOf(j))
	}
	return nil
}

// isDup reports whether a message is already committed (its ID held, or
// its commit key seen).
func (q *Queue) isDup(msgID, ckey string, now time.Time) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	dup, _ := q.isDupLocked(msgID, ckey, now)
	return dup
}

// isDupLocked is isDup; it also returns the commit key's stored value
// (nil when there is none), which remember needs, so that a commit looks
// the key up once. The caller holds q.mu.
func (q *Queue) isDupLocked(msgID, ckey string, now time.Time) (dup bool, seen []byte) {
	if q.idx.msgs[msgID] > 0 {
		return true, nil
	}
	v, err := q.lookup(key(pDedup, ckey))
	if err != nil || len(v) < 8 {
		return false, nil
	}
	// Seen within its window, or its message still held (a retry of a
	// message still being delivered is a duplicate whatever the window).
	return int64(binary.BigEndian.Uint64(v[:8])) > now.UnixNano() || q.idx.msgs[string(v[8:])] > 0, v
}

// dedupPrune bounds the expired commit keys pruned per commit.
const dedupPrune = 100

// remember records ckey as committed for msgID until now+window, in b, and
// at most once a second prunes up to dedupPrune keys whose window ended; a
// key whose message is still held gets a new window instead. seen is
// ckey's stored value (nil when none): its expiry entry is replaced. The
// caller holds q.mu.
func (q *Queue) remember(b *pebble.Batch, ckey, msgID string, seen []byte, now time.Time) error {
	put := func(ck, msgID string) {
		end := now.Add(q.dedup).UnixNano()
		v := binary.BigEndian.AppendUint64(nil, uint64(end))
		b.Set(key(pDedup, ck), append(v, msgID...), nil)
		b.Set(expKey(end, ck), nil, nil)
	}
	if !now.Before(q.nextPrune) {
		n, err := q.prune(b, now, put)
		if err != nil {
			return err
		}
		if n < dedupPrune {
			q.nextPrune = now.Add(time.Second)
		}
	}
	if len(seen) >= 8 {
		b.Delete(expKey(int64(binary.BigEndian.Uint64(seen[:8])), ckey), nil)
	}
	put(ckey, msgID)
	return nil
}

// prune deletes, into b, up to dedupPrune commit keys whose window ended by
// now, and reports how many expiry entries it went through.
func (q *Queue) prune(b *pebble.Batch, now time.Time, put func(ck, msgID string)) (int, error) {
	lower := q.pruneFrom
	if lower == nil {
		lower = []byte{pDedupExp}
	}
	it, err := q.db.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: []byte{pDedupExp + 1}})
	if err != nil {
		return 0, err
	}
	defer it.Close()
	n := 0
	for it.First(); it.Valid() && n < dedupPrune; it.Next() {
		k := it.Key()
		end := int64(binary.BigEndian.Uint64(k[1:9]))
		if end > now.UnixNano() {
			break
		}
		n++
		ck := string(k[9:])
		b.Delete(k, nil)
		q.pruneFrom = append(q.pruneFrom[:0], k...)
		v, err := q.lookup(key(pDedup, ck))
		if err != nil || len(v) < 8 {
			continue
		}
		if int64(binary.BigEndian.Uint64(v[:8])) > now.UnixNano() {
			continue // recommitted since: a newer expiry entry names it
		}
		if q.idx.msgs[string(v[8:])] > 0 {
			put(ck, string(v[8:]))
			continue
		}
		b.Delete(key(pDedup, ck), nil)
	}
	return n, it.Error()
}

// expKey is a commit key's expiry entry: the window's end, then the key.
func expKey(end int64, ckey string) []byte {
	k := make([]byte, 9, 9+len(ckey))
	k[0] = pDedupExp
	binary.BigEndian.PutUint64(k[1:], uint64(end))
	return append(k, ckey...)
}
