// Package pop3 is mailhook's POP3 server: RFC 1939 with the CAPA extension
// mechanism and response codes of RFC 2449 and RFC 3206, STLS (RFC 2595 §4),
// implicit TLS (RFC 8314) and AUTH PLAIN (RFC 5034, RFC 4616).
//
// A session moves through the states of RFC 1939 §3, AUTHORIZATION →
// TRANSACTION → UPDATE. Logging in (USER/PASS or AUTH PLAIN) locks the
// user's maildrop through a Backend; a second session for the same user
// gets "-ERR [IN-USE]". DELE only marks a message; the marked messages are
// removed when the client sends QUIT in the TRANSACTION state, and never
// when a connection drops, times out or is closed by Shutdown.
//
// Passwords are accepted only over TLS or from a loopback client unless
// Options.AllowPlaintextAuth is set; CAPA lists USER and SASL PLAIN only
// where they may be used, and STLS until TLS is on. APOP is not offered
// (the greeting carries no timestamp).
//
// Limits: a command line is at most Options.MaxLineLength octets (512 by
// default, twice RFC 2449's 255, then -ERR and close); a session that sends
// Options.MaxErrors bad commands is closed; an idle session is closed after
// Options.IdleTimeout (RFC 1939 §3: ten minutes); failed logins are delayed
// and then refused for a while ("-ERR [SYS/TEMP]") by a Limiter, per
// client address and (user, address): the loginlimit.Limiter the IMAP
// server shares. A lockout never reaches a user logging in from an address
// that has not failed.
//
// StoreBackend adapts the mailbox store: a user's INBOX is the maildrop,
// and the unique-id of UIDL is "UIDVALIDITY.UID", so it stays the same
// across sessions and restarts.
package pop3
