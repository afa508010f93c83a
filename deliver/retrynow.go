package deliver

import (
	"context"
	"errors"
	"time"
)

// Errors of RetryNow.
var (
	// ErrInFlight means the job is leased: an attempt is running now.
	ErrInFlight = errors.New("deliver: an attempt of the job is running now")
	// ErrIsDead means the job is dead-lettered: Replay brings it back.
	ErrIsDead = errors.New("deliver: job is dead-lettered (replay it)")
)

// NowRetrier is a Queue that can bring a job's next attempt forward, so an
// operator who fixed the receiver need not wait for the retry schedule
// (`mailhook queue retry`). Both backends implement it.
type NowRetrier interface {
	// RetryNow makes a waiting job due now, keeping its attempts and
	// history. A job already due is left as it is (nil); a leased job gives
	// ErrInFlight, a dead one ErrIsDead, an unknown one ErrNotFound.
	RetryNow(ctx context.Context, jobID string) error
}

// Waiting reports whether RetryNow has anything to do for j at now: its
// next attempt is still ahead. A dead job gives ErrIsDead, a leased one
// ErrInFlight.
func (j *Job) Waiting(now time.Time) (bool, error) {
	switch {
	case !j.DeadAt.IsZero():
		return false, ErrIsDead
	case j.Lease != "":
		return false, ErrInFlight
	}
	return j.NextAt.After(now), nil
}
