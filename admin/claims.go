package admin

// One-time link claims (ServerOptions.AttachmentOnce).

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"time"

	bolt "go.etcd.io/bbolt"
)

// ErrClaimed means a one-time link was used already.
var ErrClaimed = errors.New("admin: link already used")

// Claim marks key (a one-time link's signature) as used until exp; it
// returns ErrClaimed when it was claimed before. Purge forgets claims once
// they expire, as the links they guard are dead by then.
func (a *Activity) Claim(key string, exp time.Time) error {
	var used bool
	err := a.db.Batch(func(tx *bolt.Tx) error {
		bk := tx.Bucket(bClaims)
		if used = bk.Get([]byte(key)) != nil; used {
			return nil
		}
		var v [8]byte
		binary.BigEndian.PutUint64(v[:], uint64(exp.Unix()))
		return bk.Put([]byte(key), v[:])
	})
	if err != nil {
		return fmt.Errorf("admin: activity: claim: %w", err)
	}
	if used {
		return ErrClaimed
	}
	return nil
}

// purgeClaims removes claims whose links have expired.
func purgeClaims(bk *bolt.Bucket, now time.Time) error {
	var old [][]byte
	c := bk.Cursor()
	for k, v := c.First(); k != nil; k, v = c.Next() {
		if len(v) != 8 || int64(binary.BigEndian.Uint64(v)) < now.Unix() {
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
