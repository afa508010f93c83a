package mailbox

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	bolt "go.etcd.io/bbolt"
)

// userTx is one user's buckets inside a transaction.
type userTx struct {
	tx      *bolt.Tx
	s       *Store
	name    string
	b       *bolt.Bucket
	folders *bolt.Bucket
	msgs    *bolt.Bucket
	changed map[uint64]struct{}
	freed   [][blobIDLen]byte
}

// user opens the user's buckets, creating the user and the default
// folders in a writable tx. In a read-only tx it returns a nil *userTx for
// a user never seen.
func (s *Store) user(tx *bolt.Tx, name string) (*userTx, error) {
	if err := checkUser(name); err != nil {
		return nil, err
	}
	users := tx.Bucket(bUsers)
	b := users.Bucket([]byte(name))
	if b == nil {
		if !tx.Writable() {
			return nil, nil
		}
		var err error
		if b, err = users.CreateBucket([]byte(name)); err != nil {
			return nil, err
		}
		if _, err = b.CreateBucket(bF); err != nil {
			return nil, err
		}
		if _, err = b.CreateBucket(bM); err != nil {
			return nil, err
		}
		u := &userTx{tx: tx, s: s, name: name, b: b, folders: b.Bucket(bF), msgs: b.Bucket(bM), changed: map[uint64]struct{}{}}
		for _, d := range DefaultFolders {
			if _, err := u.create(d.Name, d.SpecialUse, true); err != nil {
				return nil, err
			}
		}
		return u, nil
	}
	return &userTx{tx: tx, s: s, name: name, b: b, folders: b.Bucket(bF), msgs: b.Bucket(bM), changed: map[uint64]struct{}{}}, nil
}

// writeUser runs fn on the user in a write transaction, then signals the
// watchers of changed folders and removes the bodies freed by the commit.
func (s *Store) writeUser(ctx context.Context, name string, fn func(u *userTx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	var u *userTx
	err := s.db.Update(func(tx *bolt.Tx) error {
		var err error
		if u, err = s.user(tx, name); err != nil {
			return err
		}
		return fn(u)
	})
	if err != nil {
		return err
	}
	s.afterCommit(u)
	return nil
}

func (s *Store) afterCommit(u *userTx) {
	for id := range u.changed {
		s.notify(watchKey{u.name, id})
	}
	if len(u.freed) > 0 {
		for _, id := range u.freed {
			if err := os.Remove(s.blobPath(id)); err != nil && !errors.Is(err, os.ErrNotExist) {
				s.log.Warn("mailbox: remove body", "err", err)
			}
		}
		// A crash before this sync leaves orphans that Open removes.
		s.syncDir(filepath.Join(s.dir, blobDir))
	}
}

// readUser runs fn on the user in a read transaction. A user never seen is
// created first (with its default folders).
func (s *Store) readUser(ctx context.Context, name string, fn func(u *userTx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	var missing bool
	err := s.db.View(func(tx *bolt.Tx) error {
		u, err := s.user(tx, name)
		if err != nil {
			return err
		}
		if u == nil {
			missing = true
			return nil
		}
		return fn(u)
	})
	if err != nil || !missing {
		return err
	}
	if err := s.EnsureUser(ctx, name); err != nil {
		return err
	}
	return s.db.View(func(tx *bolt.Tx) error {
		u, err := s.user(tx, name)
		if err != nil {
			return err
		}
		return fn(u)
	})
}

func (u *userTx) folder(name string) (string, *folderMeta, error) {
	name, err := normFolder(name)
	if err != nil {
		return "", nil, err
	}
	v := u.folders.Get([]byte(name))
	if v == nil {
		return name, nil, fmt.Errorf("mailbox: %q: %w", name, ErrNoSuchFolder)
	}
	var m folderMeta
	if err := json.Unmarshal(v, &m); err != nil {
		return name, nil, fmt.Errorf("mailbox: folder %q: %w", name, err)
	}
	return name, &m, nil
}

func (u *userTx) putFolder(name string, m *folderMeta) error {
	v, err := json.Marshal(m)
	if err != nil {
		return err
	}
	return u.folders.Put([]byte(name), v)
}

func (u *userTx) msgBucket(id uint64) *bolt.Bucket {
	return u.msgs.Bucket(u64(id))
}

// create makes a folder. Only the default folders start subscribed: CREATE
// does not subscribe (RFC 3501 §6.3.3, §6.3.6); clients subscribe
// themselves, and dovecot behaves the same.
func (u *userTx) create(name, specialUse string, subscribed bool) (*folderMeta, error) {
	name, err := normFolder(name)
	if err != nil {
		return nil, err
	}
	if u.folders.Get([]byte(name)) != nil {
		return nil, fmt.Errorf("mailbox: %q: %w", name, ErrFolderExists)
	}
	id, err := u.folders.NextSequence()
	if err != nil {
		return nil, err
	}
	// UIDVALIDITY must differ from any earlier folder of the same name
	// (RFC 3501 §2.3.1.1): a store-wide counter, never below the clock.
	meta := u.tx.Bucket(bMeta)
	var last uint32
	if v := meta.Get(kUIDV); len(v) == 4 {
		last = binary.BigEndian.Uint32(v)
	}
	uidv := max(last+1, uint32(u.s.opts.Now().Unix()))
	if err := meta.Put(kUIDV, u32(uidv)); err != nil {
		return nil, err
	}
	if _, err := u.msgs.CreateBucket(u64(id)); err != nil {
		return nil, err
	}
	// A subscription outlives its folder (RFC 3501 §6.3.6): a folder
	// created again under that name is subscribed again.
	if subs := u.b.Bucket(bSubs); subs != nil && subs.Get([]byte(name)) != nil {
		subscribed = true
		if err := subs.Delete([]byte(name)); err != nil {
			return nil, err
		}
	}
	m := &folderMeta{ID: id, UIDValidity: uidv, UIDNext: 1, ModSeq: 1, Subscribed: subscribed, SpecialUse: specialUse}
	return m, u.putFolder(name, m)
}

// createParents creates the missing parent levels of name as selectable
// folders (RFC 3501 §6.3.3 lets the server create them).
func (u *userTx) createParents(name string, subscribed bool) error {
	parts := strings.Split(name, string(Delimiter))
	for i := 1; i < len(parts); i++ {
		p := strings.Join(parts[:i], string(Delimiter))
		if u.folders.Get([]byte(p)) == nil {
			if _, err := u.create(p, "", subscribed); err != nil {
				return err
			}
		}
	}
	return nil
}

// appendMsg adds a message whose blob reference the caller accounts for.
func (u *userTx) appendMsg(name string, f *folderMeta, m *Message) error {
	m.UID = f.UIDNext
	f.UIDNext++
	f.ModSeq++
	m.ModSeq = f.ModSeq
	f.Messages++
	f.Size += m.Size
	if !m.HasFlag(FlagSeen) {
		f.Unseen++
	}
	if err := u.msgBucket(f.ID).Put(u32(m.UID), encodeMsg(m)); err != nil {
		return err
	}
	u.changed[f.ID] = struct{}{}
	return u.putFolder(name, f)
}

// removeMsg deletes a message record and drops its blob reference.
func (u *userTx) removeMsg(f *folderMeta, m *Message) error {
	if err := u.msgBucket(f.ID).Delete(u32(m.UID)); err != nil {
		return err
	}
	f.Messages--
	f.Size -= m.Size
	if !m.HasFlag(FlagSeen) {
		f.Unseen--
	}
	left, err := blobRef(u.tx, m.blob, -1)
	if err != nil {
		return err
	}
	if left == 0 {
		u.freed = append(u.freed, m.blob)
	}
	u.changed[f.ID] = struct{}{}
	return u.addUsed(-m.Size)
}

// messages returns every message of the folder in UID order.
func (u *userTx) messages(f *folderMeta) ([]Message, error) {
	msgs := make([]Message, 0, f.Messages)
	err := u.msgBucket(f.ID).ForEach(func(k, v []byte) error {
		m, err := decodeMsg(binary.BigEndian.Uint32(k), v)
		msgs = append(msgs, m)
		return err
	})
	return msgs, err
}

// getUIDs returns the messages of the folder with the given UIDs, in that
// order; UIDs that do not exist are skipped.
func (u *userTx) getUIDs(f *folderMeta, uids []uint32) ([]Message, error) {
	var msgs []Message
	for _, uid := range uids {
		m, ok, err := u.get(f, uid)
		if err != nil {
			return nil, err
		}
		if ok {
			msgs = append(msgs, m)
		}
	}
	return msgs, nil
}

// copyMsg appends a copy of m to dst, sharing its body (one more blob
// reference) and counting its size against the user's usage. It returns
// the copy's UID. Quota checks are the caller's.
func (u *userTx) copyMsg(dstN string, dst *folderMeta, m Message) (uint32, error) {
	if _, err := blobRef(u.tx, m.blob, +1); err != nil {
		return 0, err
	}
	if err := u.addUsed(m.Size); err != nil {
		return 0, err
	}
	if err := u.appendMsg(dstN, dst, &m); err != nil {
		return 0, err
	}
	return m.UID, nil
}

func (u *userTx) get(f *folderMeta, uid uint32) (Message, bool, error) {
	v := u.msgBucket(f.ID).Get(u32(uid))
	if v == nil {
		return Message{}, false, nil
	}
	m, err := decodeMsg(uid, v)
	return m, err == nil, err
}
