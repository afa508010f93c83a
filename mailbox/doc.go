// Package mailbox keeps mail for people who read it with a mail client:
// the local store, the users, the login limiter and the IMAP server. The
// POP3 server lives in mailbox/pop3 and uses the same Store, Users and
// Limiter. The package imports nothing else of mailhook.
//
// # Store
//
// A Store lives in one directory (data_dir/mailboxes):
//
//	index.db    bbolt: users → folders → messages (UID, flags, date, size,
//	            MODSEQ), body reference counts, delivery dedup keys
//	blobs/      one file per message body, named by a random 128-bit id
//	tmp/        bodies being written
//
// A body is written to tmp/, fsynced, renamed into blobs/ and the
// directory fsynced BEFORE the index transaction that references it
// commits; an expunge commits first and removes the file after. So a
// kill -9 at any point leaves an index that only points at existing
// files; the orphans it may leave (a body never committed, a body whose
// removal did not happen) are removed by Open. Store.Verify checks all of
// it.
//
// Deliver is idempotent on its dedup key (the queue job id): the key is
// written in the same transaction as the message, so a job retried after
// a crash is appended exactly once. Keys are kept Options.DedupTTL.
//
// Bodies are stored with CRLF line endings: the stored size is what IMAP
// reports as RFC822.SIZE and what POP3 sends. COPY shares the body file
// (reference counted). Every user gets INBOX, Sent, Drafts, Trash and Junk
// (RFC 6154 special use) on first use.
//
// Changes are announced to Watchers (coalesced signals per folder), which
// IMAP IDLE and concurrent sessions on one folder use.
//
// # IMAP
//
// IMAPServer serves the Store with github.com/emersion/go-imap/v2's
// imapserver: IMAP4rev1 and IMAP4rev2 (RFC 3501, RFC 9051), UIDPLUS,
// MOVE, NAMESPACE, SPECIAL-USE, IDLE, LITERAL+, STARTTLS and implicit TLS.
// Passwords are accepted only over TLS, or from loopback, unless
// AllowPlaintextAuth is set.
package mailbox
