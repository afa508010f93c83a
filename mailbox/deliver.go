package mailbox

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	bolt "go.etcd.io/bbolt"
)

// PruneDedup forgets dedup keys older than Options.DedupTTL. Open runs it;
// a long-running process may call it now and then. It returns the number
// of keys removed.
func (s *Store) PruneDedup(ctx context.Context) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	s.lastPrune.Store(s.opts.Now().UnixNano())
	limit := s.opts.Now().Add(-s.opts.DedupTTL).UnixNano()
	n := 0
	err := s.db.Update(func(tx *bolt.Tx) error {
		bt, bd := tx.Bucket(bDedupT), tx.Bucket(bDedup)
		c := bt.Cursor()
		var del [][]byte
		for k, _ := c.First(); k != nil && len(k) >= 8; k, _ = c.Next() {
			if int64(binary.BigEndian.Uint64(k)) >= limit {
				break
			}
			del = append(del, bytes.Clone(k))
		}
		for _, k := range del {
			if err := bt.Delete(k); err != nil {
				return err
			}
			if err := bd.Delete(k[8:]); err != nil {
				return err
			}
		}
		n = len(del)
		return nil
	})
	return n, err
}

// EnsureUser creates the user and the default folders if they do not
// exist yet.
func (s *Store) EnsureUser(ctx context.Context, user string) error {
	return s.writeUser(ctx, user, func(*userTx) error { return nil })
}

// Deliver appends the message read from r to the user's folder ("" means
// INBOX) with internal date date (zero means now) and returns its UID.
//
// Deliver is idempotent on dedupKey (the queue job id): when a Deliver
// with the same non-empty key committed within Options.DedupTTL, it
// returns that UID and appends nothing. The key is recorded in the same
// index transaction as the message, so a crash at any point either
// delivered the message and recorded the key, or did neither.
//
// A folder that does not exist is created (subscribed). Over quota it
// returns an error wrapping ErrOverQuota; IsPermanent tells the queue
// whether to retry.
func (s *Store) Deliver(ctx context.Context, user, folder string, r io.Reader, date time.Time, dedupKey string) (uint32, error) {
	if folder == "" {
		folder = Inbox
	}
	if date.IsZero() {
		date = s.opts.Now()
	}
	if len(dedupKey) > 1024 {
		return 0, fmt.Errorf("mailbox: dedup key of %d bytes: %w", len(dedupKey), ErrInvalidName)
	}
	if dedupKey != "" {
		// Cheap early answer for a retried job: no body write at all.
		var uid uint32
		var found bool
		err := s.db.View(func(tx *bolt.Tx) error {
			rec, ok, err := getDedup(tx, dedupKey)
			uid, found = rec.UID, ok
			return err
		})
		if err != nil {
			return 0, fmt.Errorf("mailbox: deliver: %w", err)
		}
		if found {
			return uid, nil
		}
	}
	uid, _, err := s.appendBody(ctx, user, folder, r, date, nil, dedupKey, true)
	if err == nil && s.opts.Now().UnixNano()-s.lastPrune.Load() > int64(time.Hour) {
		// Keys older than DedupTTL go about hourly, not only at Open.
		if _, perr := s.PruneDedup(ctx); perr != nil {
			s.log.Warn("mailbox: prune dedup keys", "err", perr)
		}
	}
	return uid, err
}

// Append adds a message like IMAP APPEND (RFC 3501 §6.3.11) and returns
// the folder's UIDVALIDITY and the new UID (RFC 4315 APPENDUID).
func (s *Store) Append(ctx context.Context, user, folder string, r io.Reader, date time.Time, flags []string) (uidValidity, uid uint32, err error) {
	if date.IsZero() {
		date = s.opts.Now()
	}
	uid, uidValidity, err = s.appendBody(ctx, user, folder, r, date, flags, "", false)
	return uidValidity, uid, err
}

// IsPermanent reports whether a Deliver error will not go away by
// retrying: over quota, too large, an invalid user or folder name. The
// queue dead-letters those with the reason; anything else (disk, index)
// is retried.
func IsPermanent(err error) bool {
	return errors.Is(err, ErrOverQuota) || errors.Is(err, ErrTooLarge) || errors.Is(err, ErrInvalidName)
}

func getDedup(tx *bolt.Tx, key string) (dedupRecord, bool, error) {
	var rec dedupRecord
	v := tx.Bucket(bDedup).Get([]byte(key))
	if v == nil {
		return rec, false, nil
	}
	if err := json.Unmarshal(v, &rec); err != nil {
		return rec, false, err
	}
	return rec, true, nil
}

func (s *Store) appendBody(ctx context.Context, user, folder string, r io.Reader, date time.Time, flags []string, dedupKey string, create bool) (uid, uidv uint32, err error) {
	if err := ctx.Err(); err != nil {
		return 0, 0, err
	}
	if err := checkUser(user); err != nil {
		return 0, 0, err
	}
	if _, err := normFolder(folder); err != nil {
		return 0, 0, err
	}
	// Refuse before writing the body what the commit would refuse anyway:
	// a folder APPEND may not create, a user already at quota.
	err = s.readUser(ctx, user, func(u *userTx) error {
		if _, _, err := u.folder(folder); err != nil && !(create && errors.Is(err, ErrNoSuchFolder)) {
			return err
		}
		return u.quotaCheck(1)
	})
	if err != nil {
		return 0, 0, fmt.Errorf("mailbox: append to %s/%s: %w", user, folder, err)
	}
	id, size, err := s.writeBlob(r)
	if err != nil {
		return 0, 0, err
	}
	committed := false
	defer func() {
		if !committed {
			os.Remove(s.blobPath(id))
		}
	}()
	dup := false
	err = s.writeUser(ctx, user, func(u *userTx) error {
		if dedupKey != "" {
			rec, ok, err := getDedup(u.tx, dedupKey)
			if err != nil {
				return err
			}
			if ok {
				dup, uid, uidv = true, rec.UID, rec.UIDValidity
				return nil
			}
		}
		name, f, err := u.folder(folder)
		if errors.Is(err, ErrNoSuchFolder) && create {
			// A delivery (not an IMAP APPEND, which answers TRYCREATE)
			// creates the folder a route names, like Sieve's
			// fileinto :create (RFC 5228, RFC 5490 §3.2).
			if f, err = u.create(name, "", true); err == nil {
				err = u.createParents(name, true)
			}
		}
		if err != nil {
			return err
		}
		if err := u.quotaCheck(size); err != nil {
			return err
		}
		m := &Message{Size: size, Date: date, Flags: canonFlags(flags), blob: id}
		if err := u.appendMsg(name, f, m); err != nil {
			return err
		}
		if _, err := blobRef(u.tx, id, +1); err != nil {
			return err
		}
		if err := u.addUsed(size); err != nil {
			return err
		}
		uid, uidv = m.UID, f.UIDValidity
		if dedupKey != "" {
			now := s.opts.Now().UnixNano()
			v, _ := json.Marshal(dedupRecord{User: user, FolderID: f.ID, UIDValidity: f.UIDValidity, UID: m.UID, At: now})
			if err := u.tx.Bucket(bDedup).Put([]byte(dedupKey), v); err != nil {
				return err
			}
			tk := append(u64(uint64(now)), dedupKey...)
			if err := u.tx.Bucket(bDedupT).Put(tk, nil); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return 0, 0, fmt.Errorf("mailbox: append to %s/%s: %w", user, folder, err)
	}
	committed = !dup
	return uid, uidv, nil
}
