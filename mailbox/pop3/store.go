package pop3

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strconv"
	"time"

	"github.com/mailhook/mailhook/internal/loginlimit"
	"github.com/mailhook/mailhook/mailbox"
)

// StoreBackend serves the INBOX of each user of the mailbox store over
// POP3. users checks passwords (a login name or one of the user's
// addresses); limiter is shared with the IMAP server: it throttles failed
// logins (a Server whose Options.Limiter is nil takes it from the backend)
// and bounds concurrent sessions per user. While a POP3 session holds an
// INBOX, the store's folder lock keeps other POP3 sessions out (RFC 1939
// §8); IMAP sessions are not locked out.
//
// The unique-id of UIDL is "UIDVALIDITY.UID" of the INBOX, the same in
// every session and across restarts (RFC 1939 §7).
func StoreBackend(store *mailbox.Store, users *mailbox.Users, limiter *loginlimit.Limiter) Backend {
	if limiter == nil {
		limiter = loginlimit.New(loginlimit.Options{})
	}
	return &storeBackend{store: store, users: users, limiter: limiter}
}

type storeBackend struct {
	store   *mailbox.Store
	users   *mailbox.Users
	limiter *loginlimit.Limiter
}

var (
	_ Backend         = (*storeBackend)(nil)
	_ limiterProvider = (*storeBackend)(nil)
	_ Limiter         = (*loginlimit.Limiter)(nil)
)

// limiterProvider is implemented by a Backend that brings the Limiter the
// Server should use when Options.Limiter is nil.
type limiterProvider interface {
	Limiter() Limiter
}

// Limiter keys the shared limiter on the account rather than its spelling
// (Users.Canonical), as the IMAP server does: "alice", "alice@example.test"
// and "ALICE@example.test" are one user for throttling.
func (b *storeBackend) Limiter() Limiter { return canonLimiter{b.limiter, b.users} }

type canonLimiter struct {
	l     *loginlimit.Limiter
	users *mailbox.Users
}

func (c canonLimiter) Turn(ctx context.Context, ip netip.Addr) (func(), error) {
	return c.l.Turn(ctx, ip)
}

func (c canonLimiter) Check(ip netip.Addr, user string) error {
	return c.l.Check(ip, c.users.Canonical(user))
}

func (c canonLimiter) Failed(ip netip.Addr, user string) time.Duration {
	return c.l.Failed(ip, c.users.Canonical(user))
}

func (c canonLimiter) Succeeded(ip netip.Addr, user string) {
	c.l.Succeeded(ip, c.users.Canonical(user))
}

func (b *storeBackend) Login(ctx context.Context, user, pass string, remote net.Addr) (Maildrop, error) {
	name, err := b.users.Authenticate(user, pass)
	if err != nil {
		if errors.Is(err, mailbox.ErrAuthFailed) {
			return nil, fmt.Errorf("%w: %w", ErrAuthFailed, err)
		}
		return nil, err
	}
	release, err := b.limiter.Acquire(name)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInUse, err)
	}
	unlock, err := b.store.TryLock(ctx, name, mailbox.Inbox)
	if err != nil {
		release()
		if errors.Is(err, mailbox.ErrLocked) {
			return nil, fmt.Errorf("%w: %w", ErrInUse, err)
		}
		return nil, fmt.Errorf("pop3: lock inbox: %w", err)
	}
	return &storeDrop{b: b, user: name, unlock: unlock, release: release}, nil
}

// storeDrop is a user's locked INBOX.
type storeDrop struct {
	b       *storeBackend
	user    string
	unlock  func()
	release func()

	uidValidity uint32
	msgs        []mailbox.Message
	byUID       map[string]uint32
}

// Messages snapshots the INBOX: RFC 1939 §5 keeps the numbering fixed for
// the session, so messages delivered meanwhile show up next time.
func (d *storeDrop) Messages(ctx context.Context) ([]Msg, error) {
	f, msgs, err := d.b.store.Messages(ctx, d.user, mailbox.Inbox)
	if err != nil {
		return nil, fmt.Errorf("pop3: list inbox: %w", err)
	}
	d.uidValidity, d.msgs = f.UIDValidity, msgs
	d.byUID = make(map[string]uint32, len(msgs))
	out := make([]Msg, len(msgs))
	prefix := strconv.FormatUint(uint64(f.UIDValidity), 10) + "."
	for i, m := range msgs {
		uid := prefix + strconv.FormatUint(uint64(m.UID), 10)
		d.byUID[uid] = m.UID
		size, err := d.wireSize(m)
		if err != nil {
			return nil, err
		}
		out[i] = Msg{UID: uid, Size: size}
	}
	return out, nil
}

// wireSize is the size RETR sends (RFC 1939 §11). The store keeps bodies
// with CRLF line ends, so that is the stored size, plus the CRLF that RETR
// adds when the body's last line has no line end (an IMAP APPEND may
// store one like that): one byte read per message tells.
func (d *storeDrop) wireSize(m mailbox.Message) (int64, error) {
	if m.Size == 0 {
		return 0, nil
	}
	body, err := d.b.store.OpenMessage(m)
	if errors.Is(err, mailbox.ErrNoSuchMessage) {
		return m.Size, nil // expunged meanwhile; RETR will say so
	}
	if err != nil {
		return 0, fmt.Errorf("pop3: open body: %w", err)
	}
	defer body.Close()
	var last [1]byte
	if _, err := body.ReadAt(last[:], m.Size-1); err != nil {
		return 0, fmt.Errorf("pop3: read body: %w", err)
	}
	if last[0] != '\n' {
		return m.Size + 2, nil
	}
	return m.Size, nil
}

func (d *storeDrop) Open(ctx context.Context, i int) (io.ReadCloser, error) {
	if i < 0 || i >= len(d.msgs) {
		return nil, fmt.Errorf("pop3: message index %d: %w", i, ErrNoSuchMessage)
	}
	body, err := d.b.store.OpenMessage(d.msgs[i])
	if errors.Is(err, mailbox.ErrNoSuchMessage) {
		return nil, fmt.Errorf("%w: %w", ErrNoSuchMessage, err)
	}
	return body, err
}

// Delete removes the messages at QUIT (RFC 1939 §6) in one store
// transaction. It refuses when the INBOX's UIDVALIDITY changed since the
// snapshot, since its UIDs would then name other messages.
func (d *storeDrop) Delete(ctx context.Context, uids []string) error {
	f, err := d.b.store.Folder(ctx, d.user, mailbox.Inbox)
	if err != nil {
		return fmt.Errorf("pop3: inbox: %w", err)
	}
	if f.UIDValidity != d.uidValidity {
		return fmt.Errorf("pop3: inbox uidvalidity changed from %d to %d during the session", d.uidValidity, f.UIDValidity)
	}
	nums := make([]uint32, 0, len(uids))
	for _, u := range uids {
		n, ok := d.byUID[u]
		if !ok {
			return fmt.Errorf("pop3: unknown unique-id %q", u)
		}
		nums = append(nums, n)
	}
	if _, err := d.b.store.Remove(ctx, d.user, mailbox.Inbox, nums); err != nil {
		return fmt.Errorf("pop3: remove: %w", err)
	}
	return nil
}

func (d *storeDrop) Close() error {
	d.unlock()
	d.release()
	return nil
}
