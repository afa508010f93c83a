package deliver

import (
	"errors"
	"time"
)

// Errors of Operator.RetryNow.
var (
	// ErrInFlight means the job is leased: an attempt is running now.
	ErrInFlight = errors.New("deliver: an attempt of the job is running now")
	// ErrIsDead means the job is dead-lettered: Replay brings it back.
	ErrIsDead = errors.New("deliver: job is dead-lettered (replay it)")
)

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
