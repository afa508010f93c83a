package mailbox

import (
	"context"
	"fmt"
	"slices"
)

// Expunge removes the messages flagged \Deleted (RFC 3501 §6.4.3), only
// those among uids when uids is not nil (RFC 4315 UID EXPUNGE). It returns
// the UIDs removed.
func (s *Store) Expunge(ctx context.Context, user, folder string, uids []uint32) ([]uint32, error) {
	return s.remove(ctx, user, folder, uids, true)
}

// Remove removes the messages with the given UIDs whatever their flags
// (POP3 DELE applied at QUIT, RFC 1939 §6). It returns the UIDs removed.
func (s *Store) Remove(ctx context.Context, user, folder string, uids []uint32) ([]uint32, error) {
	if uids == nil {
		return nil, nil
	}
	return s.remove(ctx, user, folder, uids, false)
}

func (s *Store) remove(ctx context.Context, user, folder string, uids []uint32, onlyDeleted bool) ([]uint32, error) {
	var out []uint32
	err := s.writeUser(ctx, user, func(u *userTx) error {
		n, f, err := u.folder(folder)
		if err != nil {
			return err
		}
		var msgs []Message
		if uids == nil {
			msgs, err = u.messages(f)
		} else {
			msgs, err = u.getUIDs(f, uids)
		}
		if err != nil {
			return err
		}
		for i := range msgs {
			if onlyDeleted && !msgs[i].HasFlag(FlagDeleted) {
				continue
			}
			if err := u.removeMsg(f, &msgs[i]); err != nil {
				return err
			}
			out = append(out, msgs[i].UID)
		}
		if len(out) == 0 {
			return nil
		}
		f.ModSeq++
		return u.putFolder(n, f)
	})
	if err != nil {
		return nil, fmt.Errorf("mailbox: expunge: %w", err)
	}
	slices.Sort(out)
	return out, nil
}
