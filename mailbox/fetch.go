package mailbox

import (
	"context"
)

// ClaimRecent hands the folder's \Recent messages to one IMAP session
// (RFC 3501 §2.3.2: only one session sees a message as recent): it
// returns the first recent UID and marks every message up to uidNext as
// seen by a session. Peeking sessions (EXAMINE) read Folder.RecentUID
// instead.
func (s *Store) ClaimRecent(ctx context.Context, user, folder string, uidNext uint32) (uint32, error) {
	var first uint32
	err := s.writeUser(ctx, user, func(u *userTx) error {
		n, f, err := u.folder(folder)
		if err != nil {
			return err
		}
		first = max(f.RecentUID, 1)
		if uidNext <= first {
			return nil
		}
		f.RecentUID = uidNext
		return u.putFolder(n, f)
	})
	return first, err
}

// Messages returns the folder and its messages in UID order.
func (s *Store) Messages(ctx context.Context, user, folder string) (Folder, []Message, error) {
	var (
		out  Folder
		msgs []Message
	)
	err := s.readUser(ctx, user, func(u *userTx) error {
		n, f, err := u.folder(folder)
		if err != nil {
			return err
		}
		out = f.export(n)
		msgs, err = u.messages(f)
		return err
	})
	if err != nil {
		return Folder{}, nil, err
	}
	return out, msgs, nil
}

// Get returns the messages with the given UIDs that exist, in the order
// asked.
func (s *Store) Get(ctx context.Context, user, folder string, uids []uint32) ([]Message, error) {
	var msgs []Message
	err := s.readUser(ctx, user, func(u *userTx) error {
		_, f, err := u.folder(folder)
		if err != nil {
			return err
		}
		msgs, err = u.getUIDs(f, uids)
		return err
	})
	return msgs, err
}
