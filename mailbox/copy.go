package mailbox

import (
	"context"
	"fmt"
)

// CopyResult is the outcome of Copy and Move (RFC 4315 COPYUID).
type CopyResult struct {
	// UIDValidity is the destination folder's UIDVALIDITY.
	UIDValidity uint32
	// Source and Dest pair the UIDs copied, in order.
	Source, Dest []uint32
}

// Copy copies messages to dest (RFC 3501 §6.4.7). Bodies are shared, not
// duplicated, but count against the quota again.
func (s *Store) Copy(ctx context.Context, user, folder string, uids []uint32, dest string) (CopyResult, error) {
	return s.copyMove(ctx, user, folder, uids, dest, false)
}

// Move moves messages to dest (RFC 6851): copy and expunge in one
// transaction.
func (s *Store) Move(ctx context.Context, user, folder string, uids []uint32, dest string) (CopyResult, error) {
	return s.copyMove(ctx, user, folder, uids, dest, true)
}

func (s *Store) copyMove(ctx context.Context, user, folder string, uids []uint32, dest string, move bool) (CopyResult, error) {
	var res CopyResult
	err := s.writeUser(ctx, user, func(u *userTx) error {
		srcN, src, err := u.folder(folder)
		if err != nil {
			return err
		}
		dstN, dst, err := u.folder(dest)
		if err != nil {
			return err
		}
		if src.ID == dst.ID {
			// COPY into the same folder duplicates (RFC 3501 §6.4.7
			// does not forbid it; dovecot allows it), MOVE gives the
			// messages new UIDs (RFC 6851 §3.3, as dovecot): one meta to
			// update.
			dst = src
		}
		msgs, err := u.getUIDs(src, uids)
		if err != nil {
			return err
		}
		if !move {
			var total int64
			for _, m := range msgs {
				total += m.Size
			}
			if err := u.quotaCheck(total); err != nil {
				return err
			}
		}
		res.UIDValidity = dst.UIDValidity
		for _, m := range msgs {
			uid, err := u.copyMsg(dstN, dst, m)
			if err != nil {
				return err
			}
			res.Source = append(res.Source, m.UID)
			res.Dest = append(res.Dest, uid)
			if move {
				if err := u.removeMsg(src, &m); err != nil {
					return err
				}
			}
		}
		if move && len(msgs) > 0 {
			src.ModSeq++
			return u.putFolder(srcN, src)
		}
		return nil
	})
	if err != nil {
		return CopyResult{}, fmt.Errorf("mailbox: copy to %s: %w", dest, err)
	}
	return res, nil
}
