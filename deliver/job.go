// Package deliver holds the durable queue every action goes through, the
// workers that take jobs from it (webhook, relay, mailbox), retries and dead
// letters.
package deliver

import (
	"context"
	"io"
	"time"

	"github.com/mailhook/mailhook/inbound"
	"github.com/mailhook/mailhook/route"
)

// Kind is the type of a job; each kind has its own worker.
type Kind string

// The job kinds.
const (
	KindWebhook Kind = "webhook"
	KindRelay   Kind = "relay"
	KindMailbox Kind = "mailbox"
)

// Job is one action for one message: a webhook POST to one endpoint, a relay
// to the recipients of one destination domain, or an append to one mailbox.
// Its JSON form is what the queues store.
type Job struct {
	ID    string `json:"id"`     // unique job id; also the webhook-id of a webhook delivery
	MsgID string `json:"msg_id"` // inbound.Mail.ID
	Kind  Kind   `json:"kind"`
	// Target is the webhook endpoint name, the mailbox user, or the relay
	// destination domain.
	Target string       `json:"target"`
	Route  string       `json:"route"` // the rule name that produced the job
	Action route.Action `json:"action"`
	// Rcpts are the recipients still to deliver to (relay), or the envelope
	// recipient that routed to the mailbox.
	Rcpts     []string  `json:"rcpts,omitempty"`
	Attempts  int       `json:"attempts"` // attempts started, saved before each attempt
	CreatedAt time.Time `json:"created_at"`
	NextAt    time.Time `json:"next_at"`
	// LeaseUntil is when a taken job returns to the queue if its worker has
	// not acked, retried or dead-lettered it.
	LeaseUntil time.Time `json:"lease_until,omitzero"`
	History    []Attempt `json:"history,omitempty"`
	// DeadAt is set when the job is dead-lettered.
	DeadAt    time.Time `json:"dead_at,omitzero"`
	LastError string    `json:"last_error,omitempty"`
	// Lease is the token of the lease a worker holds, set by Take; Ack,
	// Retry and Dead succeed only while the queue still holds this token.
	Lease string `json:"lease,omitempty"`
	// ReplayedAt is when an operator last replayed the job out of the dead
	// letters; the retry schedule and maximum age count from it.
	ReplayedAt time.Time `json:"replayed_at,omitzero"`
	// ReplayedAttempts is Attempts at the last replay.
	ReplayedAttempts int `json:"replayed_attempts,omitempty"`
}

// Attempt records one delivery attempt.
type Attempt struct {
	At      time.Time     `json:"at"`
	Status  int           `json:"status,omitempty"` // HTTP status, or SMTP reply code
	Latency time.Duration `json:"latency"`
	Error   string        `json:"error,omitempty"`
	// Response holds the first bytes of the response body, or the remote
	// SMTP server's last reply.
	Response string `json:"response,omitempty"`
	// Body is what the attempt sent, as the activity history shows it (a
	// webhook's JSON, without the raw message): for OnAttempt, never
	// stored in the queue.
	Body []byte `json:"-"`
}

// Outcome is what a handler reports for one attempt.
type Outcome struct {
	Attempt Attempt
	// Done means delivered: the job is acked.
	Done bool
	// Permanent means never retry: the job is dead-lettered at once
	// (410 Gone, a 5xx SMTP reply, a user that does not exist).
	Permanent bool
	// RetryAfter, when non-zero, overrides the schedule's next delay
	// (Retry-After on 429/503).
	RetryAfter time.Duration
	// Rcpts, for a relay job that succeeded for some recipients only, are
	// the recipients still to retry.
	Rcpts []string
}

// Settlement is how the Runner settled an attempt, as OnAttempt is told:
// its values are the words the activity log and the metrics show.
type Settlement string

// Settlements of an attempt.
const (
	SettleDelivered Settlement = "delivered" // acked: the job is done
	SettleRetry     Settlement = "retry"     // failed, due again by the schedule
	SettleDead      Settlement = "dead"      // dead-lettered
	// SettleReleased is an attempt abandoned because mailhook is stopping:
	// the job is given back to the queue, due at once, for the next
	// process. It is neither a delivery nor a failure.
	SettleReleased Settlement = "released"
)

// Settlements lists every Settlement, for consumers that must handle each.
var Settlements = []Settlement{SettleDelivered, SettleRetry, SettleDead, SettleReleased}

// Handler performs one attempt of a job. It must honour ctx and must not
// return before the attempt is finished or abandoned.
type Handler interface {
	Handle(ctx context.Context, job *Job, mail *inbound.Mail, raw RawOpener) Outcome
}

// RawOpener opens the stored raw message of a job's mail.
type RawOpener func() (io.ReadCloser, error)
