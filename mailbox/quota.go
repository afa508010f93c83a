package mailbox

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/emersion/go-smtp"

	"github.com/mailhook/mailhook/inbound"
	"github.com/mailhook/mailhook/route"
)

// ReplyMailboxFull refuses a message that would not fit a mailbox it goes
// to: 452 4.2.2, mailbox full (RFC 3463 §3.3), a transient failure, so the
// sender retries and the user may have made room by then.
var ReplyMailboxFull = &smtp.SMTPError{Code: 452, EnhancedCode: smtp.EnhancedCode{4, 2, 2}, Message: "Mailbox full, try again later"}

// QuotaReply answers, at end of data, for mail m and its routing decisions,
// the SMTP reply that refuses it because it would not fit the quota of a
// mailbox one of its actions delivers to (ReplyMailboxFull), or nil: the
// sender is told while it still can be, rather than the message bouncing
// later. Any other failure to read a quota is left to the delivery, which
// checks the quota again.
func (s *Store) QuotaReply(ctx context.Context, m *inbound.Mail, ds []route.Decision) *smtp.SMTPError {
	for _, d := range ds {
		for _, act := range d.Actions {
			if act.Kind != route.ActMailbox {
				continue
			}
			if err := s.CheckQuota(ctx, act.Mailbox, m.RawSize); errors.Is(err, ErrOverQuota) {
				return ReplyMailboxFull
			}
		}
	}
	return nil
}

func (u *userTx) used() int64 {
	if v := u.b.Get(kUsed); len(v) == 8 {
		return int64(binary.BigEndian.Uint64(v))
	}
	return 0
}

func (u *userTx) addUsed(d int64) error {
	return u.b.Put(kUsed, u64(uint64(max(u.used()+d, 0))))
}

func (u *userTx) quotaCheck(add int64) error {
	if u.s.opts.Quota == nil || add <= 0 {
		return nil
	}
	q := u.s.opts.Quota(u.name)
	if q > 0 && u.used()+add > q {
		return fmt.Errorf("mailbox: user %s: %d+%d bytes exceeds %d: %w", u.name, u.used(), add, q, ErrOverQuota)
	}
	return nil
}

// CheckQuota reports whether size more bytes fit in the user's quota: nil,
// or an error wrapping ErrOverQuota. The SMTP front end calls it at end of
// data to refuse with 452 4.2.2 while it still can (RFC 3463 §3.3); the
// append itself checks again.
func (s *Store) CheckQuota(ctx context.Context, user string, size int64) error {
	if s.opts.Quota == nil {
		return nil
	}
	return s.readUser(ctx, user, func(u *userTx) error { return u.quotaCheck(size) })
}

// Usage returns the bytes stored for user (what the quota counts).
func (s *Store) Usage(ctx context.Context, user string) (int64, error) {
	var n int64
	err := s.readUser(ctx, user, func(u *userTx) error { n = u.used(); return nil })
	return n, err
}
