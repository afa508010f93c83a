package mailbox

import (
	"errors"
	"io"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Errors returned by the Store. They are wrapped with %w; test them with
// errors.Is.
var (
	// ErrOverQuota means the message would take the user over their quota
	// (RFC 9208 §4.3 "OVERQUOTA"; SMTP 452 4.2.2).
	ErrOverQuota = errors.New("mailbox: over quota")
	// ErrNoSuchFolder means the folder does not exist.
	ErrNoSuchFolder = errors.New("mailbox: no such folder")
	// ErrFolderExists means CREATE or RENAME named a folder that exists.
	ErrFolderExists = errors.New("mailbox: folder already exists")
	// ErrInvalidName means a folder or user name is not acceptable.
	ErrInvalidName = errors.New("mailbox: invalid name")
	// ErrNoSuchMessage means no message has the given UID.
	ErrNoSuchMessage = errors.New("mailbox: no such message")
	// ErrLocked means another session holds the folder's exclusive lock
	// (POP3, RFC 1939 §8).
	ErrLocked = errors.New("mailbox: folder locked")
	// ErrTooLarge means a message exceeds Options.MaxMessageSize.
	ErrTooLarge = errors.New("mailbox: message too large")
	// ErrClosed means the Store was closed.
	ErrClosed = errors.New("mailbox: store closed")
)

// Inbox is the name of every user's inbox (RFC 3501 §5.1: "INBOX" is
// case-insensitive; the Store always reports it in upper case).
const Inbox = "INBOX"

// Delimiter is the hierarchy delimiter of folder names.
const Delimiter = '/'

// System flags (RFC 3501 §2.3.2). Keywords are any other atom. \Recent is
// not stored (it was removed by IMAP4rev2, RFC 9051 §2.3.2).
const (
	FlagSeen     = `\Seen`
	FlagAnswered = `\Answered`
	FlagFlagged  = `\Flagged`
	FlagDeleted  = `\Deleted`
	FlagDraft    = `\Draft`
)

// Special-use attributes (RFC 6154 §2).
const (
	UseSent   = `\Sent`
	UseDrafts = `\Drafts`
	UseTrash  = `\Trash`
	UseJunk   = `\Junk`
)

// DefaultFolders are created, subscribed, for every user on first use.
var DefaultFolders = []struct{ Name, SpecialUse string }{
	{Inbox, ""},
	{"Sent", UseSent},
	{"Drafts", UseDrafts},
	{"Trash", UseTrash},
	{"Junk", UseJunk},
}

// Options configures Open. Zero fields take defaults.
type Options struct {
	// Quota returns the quota in bytes of a user; 0 or less means no
	// limit. Nil means no quotas.
	Quota func(user string) int64
	// DedupTTL is how long Deliver remembers a dedup key (default 7 days).
	DedupTTL time.Duration
	// MaxMessageSize bounds one message in bytes (default 64 MiB).
	MaxMessageSize int64
	// Logger receives the store's events (default: discard).
	Logger *slog.Logger
	// Now is the clock (default time.Now); tests replace it.
	Now func() time.Time
	// OpenTimeout bounds the wait for the index lock held by another
	// process (default 5s).
	OpenTimeout time.Duration

	// noSync skips every fsync; benchmarks use it to fill stores fast.
	noSync bool
}

// Folder describes one folder of a user.
type Folder struct {
	// Name is the full name, levels separated by Delimiter.
	Name string
	// ID identifies the folder in the store; it survives renames.
	ID uint64
	// UIDValidity is the folder's UIDVALIDITY (RFC 3501 §2.3.1.1): a new
	// folder of a name once deleted gets a different one.
	UIDValidity uint32
	// UIDNext is the UID the next message will get.
	UIDNext uint32
	// ModSeq grows with every change to the folder or its messages
	// (RFC 7162 §3.1 HIGHESTMODSEQ).
	ModSeq uint64
	// Subscribed is the LSUB/SUBSCRIBE state.
	Subscribed bool
	// SpecialUse is "", `\Sent`, `\Drafts`, `\Trash` or `\Junk`.
	SpecialUse string
	// Messages, Unseen and Size are counts over the folder's messages.
	Messages, Unseen uint32
	// Size is the total size of the folder's messages in bytes.
	Size int64
	// RecentUID is the first UID that is still \Recent: no IMAP
	// session has selected the folder since it arrived.
	RecentUID uint32
}

// Message describes one stored message (without its body).
type Message struct {
	// UID is the message's IMAP UID in its folder (RFC 3501 §2.3.1.1).
	UID uint32
	// Size is the exact size of the body in bytes (RFC822.SIZE).
	Size int64
	// Date is the internal date (RFC 3501 §2.3.3).
	Date time.Time
	// Flags holds system flags and keywords.
	Flags []string
	// ModSeq is the folder ModSeq of the message's last change.
	ModSeq uint64

	blob [blobIDLen]byte
}

// HasFlag reports whether m carries flag (case-insensitive, RFC 3501 §2.3.2).
func (m *Message) HasFlag(flag string) bool {
	return hasFlag(m.Flags, flag)
}

// Body is an open message body. It is a regular file: an expunge while it
// is open does not disturb the reader.
type Body interface {
	io.Reader
	io.ReaderAt
	io.Seeker
	io.Closer
}

// FlagOp says how SetFlags changes flags (RFC 3501 §6.4.6 STORE).
type FlagOp int

// Flag operations.
const (
	FlagsReplace FlagOp = iota // FLAGS
	FlagsAdd                   // +FLAGS
	FlagsRemove                // -FLAGS
)

// Store is the local mailbox store: users → folders → messages. The index
// is one bbolt database; bodies are files written and synced before the
// index commit that references them. It is safe for concurrent use.
type Store struct {
	dir  string
	opts Options
	db   *bolt.DB
	log  *slog.Logger

	lastPrune atomic.Int64 // unix nano of the last PruneDedup

	mu       sync.Mutex
	watchers map[watchKey]map[*Watcher]struct{}
	locks    map[watchKey]struct{}
	closed   bool
}

// Watcher receives a signal on C when its folder changes: a message
// appended, flags changed, messages expunged, or the folder deleted or
// renamed. Signals are coalesced (C has a buffer of one); after a receive,
// re-read the folder with Messages.
type Watcher struct {
	// C is signalled after each committed change.
	C     <-chan struct{}
	c     chan struct{}
	s     *Store
	key   watchKey
	close sync.Once
}

type watchKey struct {
	user string
	id   uint64
}

// Close stops the watcher. It is safe to call more than once.
func (w *Watcher) Close() {
	w.close.Do(func() {
		w.s.mu.Lock()
		defer w.s.mu.Unlock()
		m := w.s.watchers[w.key]
		delete(m, w)
		if len(m) == 0 {
			delete(w.s.watchers, w.key)
		}
	})
}

// dirs below the store root.
const (
	indexFile = "index.db"
	blobDir   = "blobs"
	tmpDir    = "tmp"
)

// ensure Store's body files satisfy Body.
var _ Body = (*os.File)(nil)

// Close closes the index. Open Bodies stay readable.
func (s *Store) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	s.mu.Unlock()
	return s.db.Close()
}

// Dir returns the store's directory.
func (s *Store) Dir() string { return s.dir }
