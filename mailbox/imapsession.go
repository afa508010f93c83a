package mailbox

import (
	"context"
	"log/slog"
	"net/netip"
	"sync"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"
)

// imapSession is one IMAP connection. imapserver calls its methods one at
// a time (IDLE included: the reader only waits for DONE meanwhile).
type imapSession struct {
	srv    *IMAPServer
	conn   *imapserver.Conn
	ctx    context.Context
	cancel context.CancelFunc
	ip     netip.Addr
	log    *slog.Logger

	user    string
	release func()

	// mu guards sel between the IDLE goroutine and Poll and Close:
	// imapserver may go on while an IDLE goroutine is still running.
	mu  sync.Mutex
	sel *selected
}

// selected is the session's view of its selected folder: the sequence
// numbers it has announced (RFC 3501 §2.3.1.2) and the flags it has sent.
// It follows the store by diffing on each poll, so changes made by other
// sessions, by deliveries and by POP3 reach it in order.
type selected struct {
	name        string
	readOnly    bool
	uidValidity uint32
	uids        []uint32 // uids[i] has sequence number i+1
	flags       map[uint32][]string
	uidNext     uint32 // first UID not yet announced
	modSeq      uint64 // folder ModSeq at the last complete sync
	pending     bool   // expunges seen but not yet announced
	watcher     *Watcher
	searchRes   imap.UIDSet
	// recent holds the UIDs that are \Recent in this session (RFC 3501
	// §2.3.2): claimed from the store on SELECT and as they arrive, or
	// only peeked at by EXAMINE.
	recent map[uint32]bool
	// keywords are the keywords announced in FLAGS (RFC 3501 §7.2.6);
	// a new one is announced before a message shows it.
	keywords map[string]bool
}

var (
	_ imapserver.SessionIMAP4rev2   = (*imapSession)(nil)
	_ imapserver.SessionAppendLimit = (*imapSession)(nil)
)

func (s *imapSession) Close() error {
	s.mu.Lock()
	s.unselect()
	s.mu.Unlock()
	if s.release != nil {
		s.release()
		s.release = nil
	}
	s.cancel()
	s.srv.mu.Lock()
	delete(s.srv.sessions, s)
	s.srv.mu.Unlock()
	s.log.Debug("imap: closed")
	return nil
}

// Login checks a password (RFC 3501 §6.2.3; AUTHENTICATE PLAIN ends here
// too). Throttled attempts are refused before the password is looked at;
// the hash is computed in the limiter's Turn, so that a client from a
// clean address is not queued behind an attacker's hashes.
func (s *imapSession) Login(username, password string) error {
	lim := s.srv.limiter
	key := s.srv.opts.Users.Canonical(username)
	throttled := func(err error) error {
		s.log.Warn("imap: login throttled", "user", username, "err", err)
		return &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeUnavailable, Text: "Too many failed logins, try again later"}
	}
	if err := lim.Check(s.ip, key); err != nil {
		return throttled(err)
	}
	done, err := lim.Turn(s.ctx, s.ip)
	if err != nil {
		return throttled(err)
	}
	// Failures counted while this attempt waited may have locked it out.
	if err := lim.Check(s.ip, key); err != nil {
		done()
		return throttled(err)
	}
	name, err := s.srv.opts.Users.Authenticate(username, password)
	done()
	if err != nil {
		d := lim.Failed(s.ip, key)
		if f := s.srv.opts.OnFailedLogin; f != nil {
			f()
		}
		s.log.Info("imap: login failed", "user", username, "delay", d)
		if d > 0 {
			t := time.NewTimer(d)
			select {
			case <-t.C:
			case <-s.ctx.Done():
				t.Stop()
			}
		}
		return imapserver.ErrAuthFailed
	}
	lim.Succeeded(s.ip, key)
	release, err := lim.Acquire(name)
	if err != nil {
		s.log.Warn("imap: too many sessions", "user", name)
		return &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeLimit, Text: "Too many connections for this user"}
	}
	if err := s.srv.opts.Store.EnsureUser(s.ctx, name); err != nil {
		release()
		return imapError(err)
	}
	s.user, s.release = name, release
	s.log = s.log.With("user", name)
	s.log.Info("imap: login")
	return nil
}

func (s *imapSession) AppendLimit() uint32 {
	return uint32(min(s.srv.opts.Store.opts.MaxMessageSize, int64(^uint32(0))))
}

func (s *imapSession) store() *Store { return s.srv.opts.Store }
