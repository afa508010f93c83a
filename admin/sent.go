package admin

// The webhook bodies sent, one per job, shown with the message.

import (
	"encoding/binary"
	"errors"
	"slices"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/mailhook/mailhook/deliver"
)

// RecordSent keeps the body of the webhook sent for a job (the last one
// sent), cut at the configured maximum size.
// (RecordAttempt keeps an attempt's Body the same way, in the attempt's
// transaction.)
func (a *Activity) RecordSent(jobID string, body []byte) error {
	if jobID == "" {
		return errors.New("admin: activity: record sent: job without id")
	}
	v := a.sentValue(body)
	return a.db.c.add(&writeOp{what: "record sent " + jobID, size: len(v), fn: func(b *wbatch, _ *writeOp) error {
		k := []byte(jobID) // a job not (yet) recorded: the older key
		if msgID := getID(b.tx, idxJob, jobID); msgID != nil {
			k = sentKey(string(msgID), jobID)
		}
		return b.tx.Bucket(bSent).Put(k, v)
	}})
}

// sentKey is the bSent key of a job's body: its message's id, a NUL and
// the job id. Message ids grow with time, so the bodies are appended at
// the end of the tree, where keying them by job id (a hash, as before)
// put each in a random page that every transaction rewrote whole: after
// 2000 messages of 100 KB, 2 KB messages cost serve 27% more CPU and its
// resident memory passed 1 GB. Bodies stored under the job id alone (by
// earlier versions) are still read (sentBody) and purged.
func sentKey(msgID, jobID string) []byte {
	k := make([]byte, 0, len(msgID)+1+len(jobID))
	k = append(k, msgID...)
	k = append(k, 0)
	return append(k, jobID...)
}

// sentBody returns the stored body of job jobID of message msgID.
func sentBody(bk *bolt.Bucket, msgID, jobID string) []byte {
	if v := bk.Get(sentKey(msgID, jobID)); v != nil {
		return v
	}
	return bk.Get([]byte(jobID))
}

// sentValue is what bSent holds for body: the time it was recorded (8
// bytes of Unix nanoseconds, for the purge), then body cut at the maximum,
// packed.
func (a *Activity) sentValue(body []byte) []byte {
	if len(body) > a.maxSent {
		body = body[:a.maxSent]
	}
	v := binary.BigEndian.AppendUint64(nil, uint64(a.now().UnixNano()))
	return deliver.AppendPack(v, body)
}

// purgeSent removes bodies whose job's message record is gone or was never
// made (RecordSent for a job RecordAccepted never saw).
func purgeSent(bk *bolt.Bucket, cutoff time.Time) error {
	var old [][]byte
	c := bk.Cursor()
	for k, v := c.First(); k != nil; k, v = c.Next() {
		if len(v) < 8 || time.Unix(0, int64(binary.BigEndian.Uint64(v))).Before(cutoff) {
			old = append(old, slices.Clone(k))
		}
	}
	for _, k := range old {
		if err := bk.Delete(k); err != nil {
			return err
		}
	}
	return nil
}
