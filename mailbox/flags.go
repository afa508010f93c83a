package mailbox

import (
	"context"
	"fmt"
	"slices"
	"strings"
)

// canonFlags returns flags deduplicated case-insensitively, system flags
// in their canonical spelling, \Recent and empty strings dropped, sorted.
func canonFlags(flags []string) []string {
	out := make([]string, 0, len(flags))
	for _, f := range flags {
		f = canonFlag(f)
		if f == "" || strings.EqualFold(f, `\Recent`) || strings.ContainsAny(f, "\n\x00") || hasFlag(out, f) {
			continue
		}
		out = append(out, f)
	}
	slices.Sort(out)
	return out
}

func canonFlag(f string) string {
	for _, sys := range []string{FlagSeen, FlagAnswered, FlagFlagged, FlagDeleted, FlagDraft} {
		if strings.EqualFold(f, sys) {
			return sys
		}
	}
	return f
}

func hasFlag(flags []string, f string) bool {
	for _, x := range flags {
		if strings.EqualFold(x, f) {
			return true
		}
	}
	return false
}

// SetFlags changes the flags of the messages with the given UIDs (RFC 3501
// §6.4.6) and returns them with their new flags. UIDs that do not exist
// are skipped.
func (s *Store) SetFlags(ctx context.Context, user, folder string, uids []uint32, op FlagOp, flags []string) ([]Message, error) {
	flags = canonFlags(flags)
	var out []Message
	err := s.writeUser(ctx, user, func(u *userTx) error {
		n, f, err := u.folder(folder)
		if err != nil {
			return err
		}
		changed := false
		for _, uid := range uids {
			m, ok, err := u.get(f, uid)
			if err != nil {
				return err
			}
			if !ok {
				continue
			}
			var nf []string
			switch op {
			case FlagsReplace:
				nf = flags
			case FlagsAdd:
				nf = canonFlags(append(slices.Clone(m.Flags), flags...))
			case FlagsRemove:
				nf = slices.DeleteFunc(slices.Clone(m.Flags), func(x string) bool { return hasFlag(flags, x) })
			}
			if slices.Equal(nf, m.Flags) {
				out = append(out, m)
				continue
			}
			wasSeen := m.HasFlag(FlagSeen)
			m.Flags = nf
			f.ModSeq++
			m.ModSeq = f.ModSeq
			switch isSeen := m.HasFlag(FlagSeen); {
			case wasSeen && !isSeen:
				f.Unseen++
			case !wasSeen && isSeen:
				f.Unseen--
			}
			if err := u.msgBucket(f.ID).Put(u32(uid), encodeMsg(&m)); err != nil {
				return err
			}
			changed = true
			out = append(out, m)
		}
		if !changed {
			return nil
		}
		u.changed[f.ID] = struct{}{}
		return u.putFolder(n, f)
	})
	if err != nil {
		return nil, fmt.Errorf("mailbox: set flags: %w", err)
	}
	return out, nil
}
