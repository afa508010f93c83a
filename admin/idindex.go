package admin

// The id index: a job's id (a webhook delivery's webhook-id) and a
// message's stable id (the webhook JSON's id), each to its message's id,
// in bJobs and bAlias. Both ids are hashes, so each new entry lands in a
// random leaf of its tree, and every transaction rewrote one page of each
// per message: with this log a 2 KB message at 20 sessions costs the store
// 11.4 KB of writes instead of 16 (strace), and more is spared as the
// buckets grow. New entries are appended to bIdxLog
// instead, in the record's own transaction, and moved into bJobs and
// bAlias in key order, all at once (mergeIdxLog): by the transaction that
// finds idxMergeAt entries in the log, and at each purge. A lookup reads
// the log, newest first, then the bucket: at most idxMergeAt entries
// (lookups are the API's and an operator's replay or drop, not the
// path of the mail).

import (
	"bytes"
	"encoding/binary"
	"slices"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
)

// idxMergeAt is how many log entries a transaction merges at: a batch
// large enough that entries share leaves, small enough to scan.
const idxMergeAt = 8192

// The indexes an entry belongs to.
const (
	idxJob   byte = 'j' // bJobs
	idxAlias byte = 'a' // bAlias
)

func idxBucket(kind byte) []byte {
	if kind == idxJob {
		return bJobs
	}
	return bAlias
}

// putID records id -> msgID in the index of kind. An empty id is refused,
// as the bucket would refuse it.
func putID(tx *bolt.Tx, kind byte, id, msgID string) error {
	if id == "" {
		return bolterrors.ErrKeyRequired
	}
	lb := tx.Bucket(bIdxLog)
	seq, err := lb.NextSequence()
	if err != nil {
		return err
	}
	var k [8]byte
	binary.BigEndian.PutUint64(k[:], seq)
	v := make([]byte, 0, 1+binary.MaxVarintLen32+len(id)+len(msgID))
	v = append(v, kind)
	v = binary.AppendUvarint(v, uint64(len(id)))
	v = append(v, id...)
	v = append(v, msgID...)
	return lb.Put(k[:], v)
}

// idxEntry reads a log value: its index, id and message id.
func idxEntry(v []byte) (kind byte, id, msgID []byte, ok bool) {
	if len(v) < 2 {
		return 0, nil, nil, false
	}
	n, w := binary.Uvarint(v[1:])
	if w <= 0 || n > uint64(len(v)-1-w) {
		return 0, nil, nil, false
	}
	rest := v[1+w:]
	return v[0], rest[:n], rest[n:], true
}

// getID returns the message id that id names in the index of kind, or nil.
// The log is read first, newest entry first: an id recorded again (the
// same message sent again after the dedup window has the same job and
// stable ids) names its latest message, as a Put over the old entry did.
func getID(tx *bolt.Tx, kind byte, id string) []byte {
	c := tx.Bucket(bIdxLog).Cursor()
	for k, v := c.Last(); k != nil; k, v = c.Prev() {
		if kd, eid, msgID, ok := idxEntry(v); ok && kd == kind && string(eid) == id {
			return msgID
		}
	}
	return tx.Bucket(idxBucket(kind)).Get([]byte(id))
}

// mergeIdxLog moves the log's entries into bJobs and bAlias, in key order,
// and empties the log. A broken entry is dropped.
func mergeIdxLog(tx *bolt.Tx) error {
	type entry struct {
		kind      byte
		id, msgID []byte
	}
	lb := tx.Bucket(bIdxLog)
	if lb.Sequence() == 0 {
		return nil
	}
	var es []entry
	err := lb.ForEach(func(_, v []byte) error {
		if kind, id, msgID, ok := idxEntry(v); ok && len(id) > 0 {
			// Copied: the log is deleted below, in this transaction.
			es = append(es, entry{kind, slices.Clone(id), slices.Clone(msgID)})
		}
		return nil
	})
	if err != nil {
		return err
	}
	// By index, then id; the latest of equal ids last, so it is the one
	// that stays (a stable sort keeps the log's order among equals).
	slices.SortStableFunc(es, func(a, b entry) int {
		if a.kind != b.kind {
			return int(a.kind) - int(b.kind)
		}
		return bytes.Compare(a.id, b.id)
	})
	for _, e := range es {
		if err := tx.Bucket(idxBucket(e.kind)).Put(e.id, e.msgID); err != nil {
			return err
		}
	}
	if err := tx.DeleteBucket(bIdxLog); err != nil {
		return err
	}
	_, err = tx.CreateBucket(bIdxLog)
	return err
}

// mergeIdxLogFull merges the log once it holds idxMergeAt entries.
func mergeIdxLogFull(tx *bolt.Tx) error {
	if tx.Bucket(bIdxLog).Sequence() < idxMergeAt {
		return nil
	}
	return mergeIdxLog(tx)
}
