package deliver

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/mailhook/mailhook/inbound"
	"github.com/mailhook/mailhook/internal/clip"
)

// Kinds lists every job kind a queue accepts, in a fixed order.
var Kinds = []Kind{KindWebhook, KindRelay, KindMailbox}

// Valid reports whether k is one of Kinds.
func (k Kind) Valid() bool {
	for _, x := range Kinds {
		if k == x {
			return true
		}
	}
	return false
}

// DefaultDedupWindow is how long a queue remembers a committed message's
// CommitKey (queue.dedup_window): a sender's retry within it is a no-op.
const DefaultDedupWindow = 24 * time.Hour

// CommitKey is the key a queue deduplicates commits by: the mail's
// StableID (envelope + content hash, the same for the same message retried
// by the sending MTA), or its ID when it has none.
func CommitKey(m *inbound.Mail) string { return cmp.Or(m.StableID, m.ID) }

// Queue errors.
var (
	// ErrLeaseLost means the caller no longer holds the job's lease: the
	// lease expired and the job went back to the queue (and maybe to another
	// worker), or an operator dropped it. The caller must forget the job.
	ErrLeaseLost = errors.New("deliver: lease lost")
	// ErrNotFound means no such job or message.
	ErrNotFound = errors.New("deliver: not found")
	// ErrNotDead means Replay was asked for a job that is not dead-lettered.
	ErrNotDead = errors.New("deliver: job is not dead-lettered")
	// ErrDuplicateJob means Commit was given a job ID that the queue already
	// holds for another message, or twice in one commit.
	ErrDuplicateJob = errors.New("deliver: duplicate job id")
	// ErrClosed means the queue was closed.
	ErrClosed = errors.New("deliver: queue closed")
)

// The queue's interfaces. A backend (deliver/pebbleq, the embedded default,
// and deliver/redisq) implements all of them (Backend) and passes the
// shared suite in deliver/queuetest, on every interface. Each user takes
// the part it calls: the SMTP listener's committer and the workers take a
// Queue, the operators (the admin API and dashboard, `mailhook queue`) an
// Operator, the process that opened the backend a Backend, to close it.
//
// A job is in exactly one state (see State): ready or scheduled (waiting for
// NextAt), leased (taken by a worker until LeaseUntil), or dead. Delivery is
// at least once: a worker that dies holding a lease loses it when the lease
// expires and the job is taken again.

// Messages reads the messages a queue holds: the workers read a job's
// message to deliver it, the admin server to show it.
type Messages interface {
	// Mail returns a message's stored mail (ErrNotFound once its last job
	// is gone).
	Mail(ctx context.Context, msgID string) (*inbound.Mail, error)
	// OpenRaw opens a message's stored raw bytes.
	OpenRaw(ctx context.Context, msgID string) (io.ReadCloser, error)
}

// Queue is the durable job queue every action goes through, as the
// pipeline uses it: the committer commits messages with their jobs, the
// workers take, settle and read them.
type Queue interface {
	Messages

	// Commit durably records a message and all of its jobs in one
	// transaction; nothing of it is visible to Take before Commit returns
	// nil, and nothing of it remains when Commit fails. The raw message is
	// mail.Raw when set (a small message held in memory, written once, in
	// the commit), else the file at mail.RawPath, of which Commit takes
	// ownership whatever the result: on success the queue holds the raw
	// message (the embedded backend renames the file into its store, the
	// Redis backend stores the bytes and removes it); on failure the file is
	// removed.
	//
	// The commit key is CommitKey(mail), the stable id (envelope + content
	// hash). Committing a key the queue committed within its dedup window
	// (DefaultDedupWindow unless configured), or whose message it still
	// holds, or a message ID it holds, is a no-op that returns nil: the
	// sending MTA retried after a lost 250, or after a 451 for a commit
	// whose replication (Redis WAIT) was not confirmed, and the first copy
	// is queued. Plan derives job IDs from the same key, so a webhook-id
	// stays the same across such a retry.
	Commit(ctx context.Context, mail *inbound.Mail, jobs []*Job) error
	// Take leases up to n due jobs (NextAt <= now) of the given kinds,
	// oldest NextAt first, for the lease duration. Each job's Attempts is
	// incremented and saved before Take returns, so an attempt is counted
	// even if the worker dies during it. The returned jobs carry the lease
	// token that Ack, Retry and Dead check. Take returns leases that expired
	// to the queue first (or a reaper does).
	Take(ctx context.Context, kinds []Kind, n int, lease time.Duration) ([]*Job, error)
	// Ack removes a delivered job. When it was the message's last job the
	// message data (mail and raw) is deleted too.
	Ack(ctx context.Context, job *Job) error
	// Retry records attempt a, saves job.Rcpts (a relay job narrows them
	// after a partial success) and schedules the job for next.
	Retry(ctx context.Context, job *Job, next time.Time, a Attempt) error
	// Dead records attempt a and moves the job to the dead-letter set, where
	// it stays, with its history, until an operator replays or drops it.
	Dead(ctx context.Context, job *Job, a Attempt) error
}

// Operator is the queue as an operator sees it: counting, listing and
// looking up jobs, and acting on one (replay, retry now, drop). The admin
// API serves it, and `mailhook queue` uses it, directly or, while `mailhook
// serve` holds the store, through that API.
type Operator interface {
	// Stats counts jobs by state.
	Stats(ctx context.Context) (Stats, error)
	// List returns jobs ordered by ID, filtered by opts.
	List(ctx context.Context, opts ListOptions) ([]*Job, error)
	// ListDead returns dead-lettered jobs, most recently dead first.
	ListDead(ctx context.Context, opts ListOptions) ([]*Job, error)
	// Get returns one job.
	Get(ctx context.Context, jobID string) (*Job, error)
	// Replay makes a dead job ready now, keeping its history; the retry
	// schedule and maximum age start again from the replay.
	Replay(ctx context.Context, jobID string) error
	// ReplayAll replays every job dead-lettered at or after since and
	// returns how many.
	ReplayAll(ctx context.Context, since time.Time) (int, error)
	// RetryNow brings a waiting job's next attempt forward, so an operator
	// who fixed the receiver need not wait for the retry schedule: it
	// makes the job due now, keeping its attempts and history. A job
	// already due is left as it is (nil); a leased job gives ErrInFlight, a
	// dead one ErrIsDead, an unknown one ErrNotFound.
	RetryNow(ctx context.Context, jobID string) error
	// Drop deletes a job in any state (a worker holding it gets
	// ErrLeaseLost), and its message data if it was the message's last job.
	Drop(ctx context.Context, jobID string) error
}

// Backend is a queue backend as the process that opened it holds it: the
// pipeline's Queue, the Operator, and Close.
type Backend interface {
	Queue
	Operator
	// Close releases the queue's resources. The embedded backend's data
	// directory lock is released; the Redis backend does not close the
	// client it was given.
	Close() error
}

// State is a job's state in the queue.
type State string

// The job states.
const (
	StateReady     State = "ready"     // due now
	StateScheduled State = "scheduled" // due later
	StateLeased    State = "leased"    // taken by a worker
	StateDead      State = "dead"      // dead-lettered
)

// StateAt reports the job's state at now from its fields.
func (j *Job) StateAt(now time.Time) State {
	switch {
	case !j.DeadAt.IsZero():
		return StateDead
	case j.Lease != "":
		return StateLeased
	case j.NextAt.After(now):
		return StateScheduled
	default:
		return StateReady
	}
}

// Stats counts a queue's jobs by state.
type Stats struct {
	Ready     int `json:"ready"`
	Leased    int `json:"leased"`
	Scheduled int `json:"scheduled"`
	Dead      int `json:"dead"`
	// OldestAge is how long the longest-waiting ready job has been due: the
	// queue's lag. Zero when nothing is ready.
	OldestAge time.Duration `json:"oldest_age"`
}

// ListOptions filters List and ListDead.
type ListOptions struct {
	State State  // "" = any (List only)
	Kind  Kind   // "" = any
	MsgID string // "" = any
	// After is a cursor: List returns jobs with IDs after it, ListDead jobs
	// dead-lettered before the job it names.
	After string
	Limit int // <= 0 means 100
}

// Matches reports whether j passes the filter's State, Kind and MsgID.
func (o ListOptions) Matches(j *Job, now time.Time) bool {
	return (o.State == "" || j.StateAt(now) == o.State) &&
		(o.Kind == "" || j.Kind == o.Kind) &&
		(o.MsgID == "" || j.MsgID == o.MsgID)
}

// Lim returns the effective limit.
func (o ListOptions) Lim() int {
	if o.Limit <= 0 {
		return 100
	}
	return o.Limit
}

// MaxHistory bounds a job's recorded attempts; the oldest are dropped.
const MaxHistory = 100

// MaxAttemptText bounds an Attempt's Error and Response as stored.
const MaxAttemptText = 4096

// AddAttempt appends a to j.History, keeps it and a's texts bounded and
// sets LastError.
func (j *Job) AddAttempt(a Attempt) {
	a.Body = nil // for OnAttempt only
	a.Error = clip.UTF8(a.Error, MaxAttemptText, "")
	a.Response = clip.UTF8(a.Response, MaxAttemptText, "")
	j.History = append(j.History, a)
	if len(j.History) > MaxHistory {
		j.History = append([]Attempt(nil), j.History[len(j.History)-MaxHistory:]...)
	}
	j.LastError = a.Error
}

// ValidateCommit checks a Commit's arguments: a mail ID, at least one job,
// known kinds, unique IDs, and fills each job's MsgID, CreatedAt and NextAt
// when zero. Backends call it before writing anything.
func ValidateCommit(mail *inbound.Mail, jobs []*Job, now time.Time) error {
	if mail == nil || mail.ID == "" {
		return errors.New("deliver: commit: mail without id")
	}
	if len(mail.ID) > 512 {
		return errors.New("deliver: commit: mail id too long")
	}
	seen := make(map[string]bool, len(jobs))
	for _, j := range jobs {
		if j.ID == "" {
			return errors.New("deliver: commit: job without id")
		}
		if seen[j.ID] {
			return fmt.Errorf("%w: %q in one commit", ErrDuplicateJob, j.ID)
		}
		seen[j.ID] = true
		if !j.Kind.Valid() {
			return fmt.Errorf("deliver: commit: job %q: unknown kind %q", j.ID, j.Kind)
		}
		if j.MsgID == "" {
			j.MsgID = mail.ID
		} else if j.MsgID != mail.ID {
			return fmt.Errorf("deliver: commit: job %q belongs to message %q, not %q", j.ID, j.MsgID, mail.ID)
		}
		if j.CreatedAt.IsZero() {
			j.CreatedAt = now
		}
		if j.NextAt.IsZero() {
			j.NextAt = now
		}
		j.Lease, j.LeaseUntil, j.DeadAt = "", time.Time{}, time.Time{}
	}
	return nil
}
