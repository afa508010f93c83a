package mailbox

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
)

// Folders lists the user's folders sorted by name.
func (s *Store) Folders(ctx context.Context, user string) ([]Folder, error) {
	var out []Folder
	err := s.readUser(ctx, user, func(u *userTx) error {
		return u.folders.ForEach(func(k, v []byte) error {
			var m folderMeta
			if err := json.Unmarshal(v, &m); err != nil {
				return err
			}
			out = append(out, m.export(string(k)))
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("mailbox: list folders of %s: %w", user, err)
	}
	return out, nil
}

// Folder returns one folder's description and counts (IMAP STATUS).
func (s *Store) Folder(ctx context.Context, user, name string) (Folder, error) {
	var out Folder
	err := s.readUser(ctx, user, func(u *userTx) error {
		n, f, err := u.folder(name)
		if err != nil {
			return err
		}
		out = f.export(n)
		return nil
	})
	return out, err
}

// CreateFolder creates a folder (RFC 3501 §6.3.3), not subscribed.
// Missing parent levels are created too, as selectable folders.
func (s *Store) CreateFolder(ctx context.Context, user, name string) error {
	return s.writeUser(ctx, user, func(u *userTx) error {
		n, err := normFolder(name)
		if err != nil {
			return err
		}
		if err := u.createParents(n, false); err != nil {
			return err
		}
		_, err = u.create(n, "", false)
		return err
	})
}

// DeleteFolder deletes a folder and its messages (RFC 3501 §6.3.4). INBOX
// cannot be deleted; a folder with children cannot either.
func (s *Store) DeleteFolder(ctx context.Context, user, name string) error {
	return s.writeUser(ctx, user, func(u *userTx) error {
		n, f, err := u.folder(name)
		if err != nil {
			return err
		}
		if n == Inbox {
			return fmt.Errorf("mailbox: cannot delete INBOX: %w", ErrInvalidName)
		}
		c := u.folders.Cursor()
		prefix := []byte(n + string(Delimiter))
		if k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix) {
			return fmt.Errorf("mailbox: %q has children: %w", n, ErrInvalidName)
		}
		msgs, err := u.messages(f)
		if err != nil {
			return err
		}
		for i := range msgs {
			if err := u.removeMsg(f, &msgs[i]); err != nil {
				return err
			}
		}
		if err := u.msgs.DeleteBucket(u64(f.ID)); err != nil {
			return err
		}
		u.changed[f.ID] = struct{}{}
		if f.Subscribed {
			// RFC 3501 §6.3.4: DELETE does not unsubscribe.
			subs, err := u.b.CreateBucketIfNotExists(bSubs)
			if err != nil {
				return err
			}
			if err := subs.Put([]byte(n), []byte{}); err != nil {
				return err
			}
		}
		return u.folders.Delete([]byte(n))
	})
}

// RenameFolder renames a folder and its children (RFC 3501 §6.3.5). The
// UIDVALIDITY is kept. Renaming INBOX moves its messages to a new folder
// and leaves INBOX empty, as RFC 3501 requires.
func (s *Store) RenameFolder(ctx context.Context, user, from, to string) error {
	return s.writeUser(ctx, user, func(u *userTx) error {
		fromN, f, err := u.folder(from)
		if err != nil {
			return err
		}
		toN, err := normFolder(to)
		if err != nil {
			return err
		}
		if u.folders.Get([]byte(toN)) != nil {
			return fmt.Errorf("mailbox: %q: %w", toN, ErrFolderExists)
		}
		if toN == fromN || strings.HasPrefix(toN, fromN+string(Delimiter)) {
			return fmt.Errorf("mailbox: rename %q into itself: %w", fromN, ErrInvalidName)
		}
		if fromN == Inbox {
			nf, err := u.create(toN, "", false)
			if err != nil {
				return err
			}
			msgs, err := u.messages(f)
			if err != nil {
				return err
			}
			for i := range msgs {
				if _, err := u.copyMsg(toN, nf, msgs[i]); err != nil {
					return err
				}
				if err := u.removeMsg(f, &msgs[i]); err != nil {
					return err
				}
			}
			f.ModSeq++
			return u.putFolder(Inbox, f)
		}
		// Children first: collect every name under fromN/.
		type ren struct{ old, new string }
		renames := []ren{{fromN, toN}}
		c := u.folders.Cursor()
		prefix := []byte(fromN + string(Delimiter))
		for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
			renames = append(renames, ren{string(k), toN + string(k[len(fromN):])})
		}
		// Missing parents of the new name.
		parts := strings.Split(toN, string(Delimiter))
		for i := 1; i < len(parts); i++ {
			p := strings.Join(parts[:i], string(Delimiter))
			if u.folders.Get([]byte(p)) == nil {
				if _, err := u.create(p, "", false); err != nil {
					return err
				}
			}
		}
		for _, r := range renames {
			v := bytes.Clone(u.folders.Get([]byte(r.old)))
			var m folderMeta
			if err := json.Unmarshal(v, &m); err != nil {
				return err
			}
			u.changed[m.ID] = struct{}{}
			if err := u.folders.Delete([]byte(r.old)); err != nil {
				return err
			}
			if err := u.folders.Put([]byte(r.new), v); err != nil {
				return err
			}
		}
		return nil
	})
}

// Subscribe sets the subscription state of a folder (RFC 3501 §6.3.6-7).
func (s *Store) Subscribe(ctx context.Context, user, name string, subscribed bool) error {
	return s.writeUser(ctx, user, func(u *userTx) error {
		n, f, err := u.folder(name)
		if errors.Is(err, ErrNoSuchFolder) {
			// RFC 3501 §6.3.6: a name may be subscribed without a
			// folder (deleted, or not created yet).
			if n, err = normFolder(name); err != nil {
				return err
			}
			if !subscribed {
				subs := u.b.Bucket(bSubs)
				if subs == nil || subs.Get([]byte(n)) == nil {
					return fmt.Errorf("mailbox: %q is not subscribed: %w", n, ErrNoSuchFolder)
				}
				return subs.Delete([]byte(n))
			}
			subs, err := u.b.CreateBucketIfNotExists(bSubs)
			if err != nil {
				return err
			}
			return subs.Put([]byte(n), []byte{})
		}
		if err != nil {
			return err
		}
		f.Subscribed = subscribed
		return u.putFolder(n, f)
	})
}

// Subscriptions returns the subscribed names that have no folder (RFC
// 3501 §6.3.6; LIST-EXTENDED answers them \NonExistent, RFC 5258 §3.4).
func (s *Store) Subscriptions(ctx context.Context, user string) ([]string, error) {
	var out []string
	err := s.readUser(ctx, user, func(u *userTx) error {
		subs := u.b.Bucket(bSubs)
		if subs == nil {
			return nil
		}
		return subs.ForEach(func(k, _ []byte) error {
			out = append(out, string(k))
			return nil
		})
	})
	return out, err
}
