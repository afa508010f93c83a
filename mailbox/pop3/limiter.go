package pop3

import (
	"context"
	"net/netip"
	"time"
)

// Limiter throttles failed logins (RFC 1939 §13 leaves password guessing
// to the server): failures slow down, then refuse for a while, per client
// address and per (user, address). The server calls Check before every
// login attempt, holds a Turn while the Backend checks the password, then
// calls Failed or Succeeded with the outcome. *loginlimit.Limiter
// implements it, shared with the IMAP server.
type Limiter interface {
	// Check returns an error (wrapping loginlimit.ErrThrottled) when
	// attempts for user from ip are refused for now.
	Check(ip netip.Addr, user string) error
	// Turn waits until a password from ip may be checked; done ends the
	// turn.
	Turn(ctx context.Context, ip netip.Addr) (done func(), err error)
	// Failed records a failed attempt and returns how long the server
	// waits before it answers.
	Failed(ip netip.Addr, user string) time.Duration
	// Succeeded records a successful login.
	Succeeded(ip netip.Addr, user string)
}
