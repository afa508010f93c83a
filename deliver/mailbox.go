package deliver

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/mailhook/mailhook/inbound"
)

// Appender stores a message in a local mailbox: the mailbox store
// implements it and cmd/mailhook wires it in. Deliver must be idempotent on
// dedupKey: a second call with the same key appends nothing, so a job
// retried after a crash between the append and the ack is not appended
// twice.
type Appender interface {
	Deliver(ctx context.Context, user, folder string, r io.Reader, date time.Time, dedupKey string) (uint32, error)
}

// MailboxHandler is the worker of mailbox jobs: it appends the raw message
// to the job's user and folder (INBOX by default).
type MailboxHandler struct {
	Store Appender
	// Permanent reports errors that retrying cannot fix (over quota, a
	// message too large, a bad folder name): the job is dead-lettered at
	// once with the reason. Nil treats every error as transient.
	Permanent func(error) bool
	// Now is the clock; nil is time.Now.
	Now func() time.Time
}

var _ Handler = (*MailboxHandler)(nil)

// Handle implements Handler.
func (h *MailboxHandler) Handle(ctx context.Context, job *Job, mail *inbound.Mail, raw RawOpener) Outcome {
	now := time.Now
	if h.Now != nil {
		now = h.Now
	}
	start := now()
	out := Outcome{Attempt: Attempt{At: start}}
	err := h.append(ctx, job, mail, raw)
	out.Attempt.Latency = now().Sub(start)
	switch {
	case err == nil:
		out.Done = true
	case h.Permanent != nil && h.Permanent(err):
		out.Permanent = true
		out.Attempt.Error = err.Error()
	default:
		out.Attempt.Error = err.Error()
	}
	return out
}

func (h *MailboxHandler) append(ctx context.Context, job *Job, mail *inbound.Mail, raw RawOpener) error {
	if job.Target == "" {
		return errors.New("mailbox job without a user")
	}
	folder := job.Action.Folder
	if folder == "" {
		folder = "INBOX"
	}
	r, err := raw()
	if err != nil {
		return fmt.Errorf("open raw message: %w", err)
	}
	defer r.Close()
	date := mail.ReceivedAt
	if date.IsZero() {
		date = job.CreatedAt
	}
	if _, err := h.Store.Deliver(ctx, job.Target, folder, r, date, job.ID); err != nil {
		return fmt.Errorf("mailbox %s/%s: %w", job.Target, folder, err)
	}
	return nil
}
