package boltq

// The buckets' keys and records, read and written inside transactions.

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/mailhook/mailhook/deliver"
)

// timeKey is an index key: t as 8 big-endian bytes of Unix nanoseconds,
// then id, so that keys sort by time.
func timeKey(t time.Time, id string) []byte {
	k := make([]byte, 8, 8+len(id))
	ns := t.UnixNano()
	if ns < 0 || t.IsZero() {
		ns = 0
	}
	binary.BigEndian.PutUint64(k, uint64(ns))
	return append(k, id...)
}

func keyTime(k []byte) int64 { return int64(binary.BigEndian.Uint64(k[:8])) }

func decodeJob(v []byte) (*deliver.Job, error) {
	j := new(deliver.Job)
	if err := json.Unmarshal(v, j); err != nil {
		return nil, err
	}
	return j, nil
}

func getJob(tx *bolt.Tx, id string) (*deliver.Job, error) {
	v := tx.Bucket(bJobs).Get([]byte(id))
	if v == nil {
		return nil, deliver.ErrNotFound
	}
	return decodeJob(v)
}

func getMsg(tx *bolt.Tx, id string) (*msgRecord, error) {
	v := tx.Bucket(bMsgs).Get([]byte(id))
	if v == nil {
		return nil, deliver.ErrNotFound
	}
	rec := new(msgRecord)
	if err := json.Unmarshal(v, rec); err != nil {
		return nil, fmt.Errorf("message record %q: %w", id, err)
	}
	return rec, nil
}

func putMsg(tx *bolt.Tx, id string, rec *msgRecord) error {
	v, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	return tx.Bucket(bMsgs).Put([]byte(id), v)
}

// indexKey returns the index bucket and key where j is listed.
func indexKey(tx *bolt.Tx, j *deliver.Job) (*bolt.Bucket, []byte) {
	switch {
	case !j.DeadAt.IsZero():
		return tx.Bucket(bDead), timeKey(j.DeadAt, j.ID)
	case j.Lease != "":
		return tx.Bucket(bLeased), timeKey(j.LeaseUntil, j.ID)
	default:
		return tx.Bucket(bReady).Bucket([]byte(j.Kind)), timeKey(j.NextAt, j.ID)
	}
}

// replaceJob stores j, moving its index entry from where old was listed.
func replaceJob(tx *bolt.Tx, old, j *deliver.Job) error {
	if old != nil {
		b, k := indexKey(tx, old)
		if err := b.Delete(k); err != nil {
			return err
		}
	}
	v, err := json.Marshal(j)
	if err != nil {
		return err
	}
	if err := tx.Bucket(bJobs).Put([]byte(j.ID), v); err != nil {
		return err
	}
	b, k := indexKey(tx, j)
	return b.Put(k, nil)
}

// deleteJob removes j and, with its message's last job, the message record;
// it returns the raw file to remove after the transaction commits.
func deleteJob(tx *bolt.Tx, j *deliver.Job) (string, error) {
	b, k := indexKey(tx, j)
	if err := b.Delete(k); err != nil {
		return "", err
	}
	if err := tx.Bucket(bJobs).Delete([]byte(j.ID)); err != nil {
		return "", err
	}
	rec, err := getMsg(tx, j.MsgID)
	if errors.Is(err, deliver.ErrNotFound) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	rec.Jobs--
	if rec.Jobs > 0 {
		return "", putMsg(tx, j.MsgID, rec)
	}
	return rec.File, deleteMsgData(tx, j.MsgID)
}

// deleteMsgData deletes a message's record, mail and inline raw message.
func deleteMsgData(tx *bolt.Tx, id string) error {
	for _, b := range [][]byte{bMsgs, bMail, bRaw} {
		if err := tx.Bucket(b).Delete([]byte(id)); err != nil {
			return err
		}
	}
	return nil
}
