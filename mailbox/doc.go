// Package mailbox keeps mail for people who read it with a mail client:
// the local store, the users and the IMAP server. The POP3 server lives in
// mailbox/pop3 and uses the same Store, Users and login limiter
// (internal/loginlimit, which the admin listener uses too). The package
// imports nothing else of mailhook.
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
// Deliver creates the folder a route names if it is missing; IMAP APPEND
// does not (the client gets TRYCREATE). IsPermanent tells the queue which
// Deliver errors to dead-letter (over quota, too large, bad name).
//
// Changes are announced to Watchers (coalesced signals per folder), which
// IMAP IDLE and concurrent sessions on one folder use. Every folder has a
// ModSeq that grows with each change; messages carry the ModSeq of their
// last change (ready for CONDSTORE, which imapserver cannot parse yet).
//
// # Users and limits
//
// Users holds the configured users (bcrypt or argon2id hashes), swapped
// atomically on reload; Lookup maps addresses, plus-addresses included, to
// users. A loginlimit.Limiter, shared by IMAP and POP3, delays then refuses
// logins after failures per client address and per (user, address), never
// per user alone, so that no one can lock a user out from elsewhere; it
// schedules password hashes so that a client from an address that has not
// failed is not queued behind an attacker's; and it bounds sessions per
// user.
//
// # IMAP
//
// IMAPServer serves the Store with github.com/emersion/go-imap/v2's
// imapserver: IMAP4rev1 and IMAP4rev2 (RFC 3501, RFC 9051), UIDPLUS,
// MOVE, NAMESPACE, SPECIAL-USE, ESEARCH, SEARCHRES, LIST-EXTENDED,
// LIST-STATUS, STATUS=SIZE, APPENDLIMIT, IDLE, LITERAL+, ID, STARTTLS and
// implicit TLS. Passwords are accepted only over TLS, or from loopback,
// unless AllowPlaintextAuth is set: imapserver decides that per server,
// so IMAPServer runs three (passwords only over TLS, passwords in clear,
// implicit TLS) and hands each connection to the right one.
//
// Each session keeps its own view of the selected folder (UIDs by
// sequence number, flags sent) and brings it up to date from the store
// after every command and on every Watcher signal during IDLE, so
// deliveries, other IMAP sessions and POP3 are announced with EXISTS,
// EXPUNGE and FETCH FLAGS in order (expunges held back during FETCH,
// STORE and SEARCH, RFC 3501 §7.4.1).
//
// A frontConn reads each connection's commands before imapserver does
// and answers what imapserver gets wrong: ID (RFC 2971; the front adds ID
// to the capability lists imapserver writes, which name only what it
// knows), unknown commands before login (BAD, BYE after 10; imapserver
// says BYE at the first), literals too big for their command (BYE before
// login, NO [TOOBIG] after; imapserver waits for a literal the client
// never sends), command lines over 48 KiB and nesting deeper than 64
// (BAD), mailbox names that are not modified UTF-7 (no such mailbox).
// The front does STARTTLS itself and hands the connection on, as TLS, to
// the implicit-TLS imapserver, so it keeps guarding the session over TLS.
// \Recent (RFC 3501 §2.3.2) is claimed from the store by SELECT, so one
// session sees a message as recent. FETCH ENVELOPE is written by us
// (imapwriter.go), because imapserver writes every source route as NIL.
//
// Limits: 48 KiB per command line, 4 KiB per literal outside APPEND and
// 8 KiB before login, 30 s to send a command before login, 35 min of
// inactivity after (RFC 3501 §5.4 asks for at least 30); APPEND is
// bounded by Options.MaxMessageSize.
//
// Not offered, because imapserver v2.0.0-beta.9 cannot parse them or
// fails Dovecot's imaptest with them (README "Mailboxes" says why, one by
// one): CONDSTORE and QRESYNC (RFC 7162), SORT, ESORT, THREAD,
// MULTIAPPEND, CATENATE, CONTEXT, PARTIAL, NOTIFY, URLAUTH, BINARY.
// TestIMAPTestCompliance runs imaptest; deliberate differences from
// dovecot are listed in TestDifferentialDovecot.
package mailbox
