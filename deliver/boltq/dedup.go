package boltq

import (
	"bytes"
	"encoding/binary"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Commit deduplication (deliver.Queue.Commit): each committed message's
// commit key is remembered until the end of its window.
var (
	bDedup    = []byte("dedup")    // commit key -> 8-byte window end (ns) + msg id
	bDedupExp = []byte("dedupexp") // timeKey(window end, commit key) -> nil
)

// dedupPrune bounds the expired entries pruned per commit, so a commit's
// transaction stays small however many expired at once.
const dedupPrune = 20

// seen reports whether key was committed within its window, or its message
// is still held (a retry of a message still being delivered is a duplicate
// whatever the window).
func seen(tx *bolt.Tx, key string, now time.Time) bool {
	v := tx.Bucket(bDedup).Get([]byte(key))
	if len(v) < 8 {
		return false
	}
	return int64(binary.BigEndian.Uint64(v[:8])) > now.UnixNano() ||
		tx.Bucket(bMsgs).Get(v[8:]) != nil
}

// remember records key as committed for msgID until now+window, and prunes
// up to dedupPrune entries whose window ended; an entry whose message is
// still held gets a new window instead.
func remember(tx *bolt.Tx, key, msgID string, now time.Time, window time.Duration) error {
	d, x := tx.Bucket(bDedup), tx.Bucket(bDedupExp)
	var expired [][]byte
	c := x.Cursor()
	for k, _ := c.First(); k != nil && len(expired) < dedupPrune && keyTime(k) <= now.UnixNano(); k, _ = c.Next() {
		expired = append(expired, bytes.Clone(k))
	}
	put := func(key []byte, msgID []byte) error {
		end := now.Add(window)
		v := binary.BigEndian.AppendUint64(nil, uint64(end.UnixNano()))
		if err := d.Put(key, append(v, msgID...)); err != nil {
			return err
		}
		return x.Put(timeKey(end, string(key)), nil)
	}
	for _, k := range expired {
		if err := x.Delete(k); err != nil {
			return err
		}
		ck := k[8:]
		v := d.Get(ck)
		if len(v) >= 8 && keyTime(v) > now.UnixNano() {
			continue // recommitted since: a newer index entry names it
		}
		if len(v) >= 8 && tx.Bucket(bMsgs).Get(v[8:]) != nil {
			if err := put(ck, bytes.Clone(v[8:])); err != nil {
				return err
			}
			continue
		}
		if err := d.Delete(ck); err != nil {
			return err
		}
	}
	if v := d.Get([]byte(key)); len(v) >= 8 {
		if err := x.Delete(timeKey(time.Unix(0, keyTime(v)), key)); err != nil {
			return err
		}
	}
	return put([]byte(key), []byte(msgID))
}
