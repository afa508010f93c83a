package pop3

import (
	"context"
	"errors"
	"io"
	"net"
)

// Backend authenticates POP3 users and hands out their maildrops.
//
// Login is called in the AUTHORIZATION state for USER/PASS and for AUTH
// PLAIN. It returns a locked Maildrop: while the session holds it no other
// POP3 session may open the same maildrop (RFC 1939 §8, "exclusive-access
// lock"). Errors are mapped onto RFC 2449/RFC 3206 response codes:
// ErrAuthFailed → [AUTH], ErrInUse → [IN-USE], anything else → [SYS/TEMP].
type Backend interface {
	Login(ctx context.Context, user, pass string, remote net.Addr) (Maildrop, error)
}

// Msg describes one message of a maildrop as a POP3 session sees it.
type Msg struct {
	// UID is the unique-id listed by UIDL (RFC 1939 §7): 1 to 70
	// characters in 0x21..0x7E, the same for the same message in every
	// session.
	UID string
	// Size is the size of the message in octets as it is sent by RETR,
	// without the byte-stuffing and the terminating ".".
	Size int64
}

// Maildrop is one user's locked mailbox for the length of a session.
//
// Messages is called once, at the start of the TRANSACTION state; the
// session numbers the messages 1..n in that order and keeps the numbering
// until it ends, as RFC 1939 §5 requires. Open and Delete address messages
// by their index in that slice (0-based) and by UID.
type Maildrop interface {
	// Messages lists the messages of the maildrop.
	Messages(ctx context.Context) ([]Msg, error)
	// Open returns the content of message i (0-based index into the
	// slice Messages returned).
	Open(ctx context.Context, i int) (io.ReadCloser, error)
	// Delete removes the messages with the given UIDs. It is called only
	// in the UPDATE state, after QUIT (RFC 1939 §6).
	Delete(ctx context.Context, uids []string) error
	// Close releases the maildrop lock. It is called exactly once, at the
	// end of every session that got the maildrop, whether the session
	// ended with QUIT or not.
	Close() error
}

// Errors a Backend returns from Login; wrap them with %w to add detail.
var (
	// ErrAuthFailed means the user name or password is wrong.
	ErrAuthFailed = errors.New("pop3: invalid credentials")
	// ErrInUse means another session holds the maildrop lock.
	ErrInUse = errors.New("pop3: maildrop in use")
	// ErrThrottled means too many failed logins came from the client or
	// for the user; the attempt was refused without checking the password.
	ErrThrottled = errors.New("pop3: too many failed logins")
)

// ErrNoSuchMessage is returned (wrapped) by Maildrop.Open when the message
// was removed by another session (an IMAP EXPUNGE) since Messages.
var ErrNoSuchMessage = errors.New("pop3: no such message")
