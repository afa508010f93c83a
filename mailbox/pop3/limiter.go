package pop3

import (
	"net/netip"
	"time"
)

// Limiter throttles failed logins (RFC 1939 §13 leaves password guessing
// to the server; the issue asks that failures slow down, then refuse for a
// while). The server calls Check before every login attempt, then Failed
// or Succeeded with the outcome. *mailbox.Limiter implements it, shared
// with the IMAP server.
type Limiter interface {
	// Check returns an error (wrapping mailbox.ErrThrottled) when
	// attempts for user from ip are refused for now.
	Check(ip netip.Addr, user string) error
	// Failed records a failed attempt and returns how long the server
	// waits before it answers.
	Failed(ip netip.Addr, user string) time.Duration
	// Succeeded records a successful login.
	Succeeded(ip netip.Addr, user string)
}
