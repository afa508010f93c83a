package admin

// The webhook bodies sent, one per job, shown with the message.

import (
	"encoding/binary"
	"errors"
	"slices"
	"time"

	bolt "go.etcd.io/bbolt"
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
		return b.tx.Bucket(bSent).Put([]byte(jobID), v)
	}})
}

// sentValue is what bSent holds for body: the time it was recorded (8
// bytes of Unix nanoseconds, for the purge), then body cut at the maximum.
func (a *Activity) sentValue(body []byte) []byte {
	if len(body) > a.maxSent {
		body = body[:a.maxSent]
	}
	v := make([]byte, 8+len(body))
	binary.BigEndian.PutUint64(v, uint64(a.now().UnixNano()))
	copy(v[8:], body)
	return v
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
