package boltq

// Export: what the store holds, for moving it to another store.

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/mailhook/mailhook/deliver"
)

// Message is one stored message as Export gives it.
type Message struct {
	ID   string
	Mail json.RawMessage // inbound.Mail JSON
	// File is the raw message's file name under queue/msg, "" when Raw
	// holds it.
	File string
	Raw  []byte
	Jobs []*deliver.Job
}

// CommitKey is one remembered commit key (see deliver.Queue.Commit).
type CommitKey struct {
	Key   string
	MsgID string
	Until time.Time // the end of its dedup window
}

// Export calls msg for every message with its jobs, then key for every
// remembered commit key, in one read transaction. The values passed are
// copies the callbacks may keep.
func (q *Queue) Export(msg func(*Message) error, key func(CommitKey) error) error {
	return q.db.View(func(tx *bolt.Tx) error {
		byMsg := map[string][]*deliver.Job{}
		err := tx.Bucket(bJobs).ForEach(func(k, v []byte) error {
			j, err := decodeJob(v)
			if err != nil {
				return fmt.Errorf("job %q: %w", k, err)
			}
			byMsg[j.MsgID] = append(byMsg[j.MsgID], j)
			return nil
		})
		if err != nil {
			return err
		}
		err = tx.Bucket(bMsgs).ForEach(func(k, _ []byte) error {
			id := string(k)
			rec, err := getMsg(tx, id)
			if err != nil {
				return err
			}
			m := &Message{ID: id, File: rec.File, Jobs: byMsg[id]}
			m.Mail = bytes.Clone(tx.Bucket(bMail).Get(k))
			if m.Mail == nil {
				m.Mail = rec.Mail // the older layout
			}
			if rec.Inline {
				m.Raw = bytes.Clone(tx.Bucket(bRaw).Get(k))
			}
			return msg(m)
		})
		if err != nil {
			return err
		}
		return tx.Bucket(bDedup).ForEach(func(k, v []byte) error {
			if len(v) < 8 {
				return nil
			}
			return key(CommitKey{Key: string(k), MsgID: string(v[8:]), Until: time.Unix(0, int64(binary.BigEndian.Uint64(v[:8])))})
		})
	})
}
