// Package relay forwards messages over SMTP: the worker of the `forward`
// route action. A Relayer implements deliver.Handler for jobs of kind
// relay, one job per message and destination domain (Job.Target), with
// the recipients still to deliver in Job.Rcpts.
//
// # Transport
//
// With Options.Smarthost set, every message goes to that host, with AUTH
// PLAIN or LOGIN (RFC 4954) when a username is configured, over STARTTLS
// (RFC 3207; required or opportunistic) or implicit TLS (RFC 8314, port
// 465). Credentials are only sent over TLS whose certificate verifies,
// also in opportunistic mode. Without a smarthost, mail goes straight to the destination's MX
// hosts (RFC 5321 §5.1): in preference order, equal preferences shuffled,
// moving on to the next host when a connection, the TLS handshake, the
// greeting, EHLO or MAIL FROM fails or answers 4xx; the domain itself when
// it has no MX; a permanent failure for a null MX (RFC 7505) or a domain
// with no address. Direct delivery uses opportunistic STARTTLS by default
// (RFC 7435: encrypt when offered, without certificate checks, plaintext
// when TLS cannot be had).
//
// # Outcomes
//
// Each recipient gets its own RCPT reply (RFC 5321 §3.3). 5xx fails that
// recipient for good, 4xx keeps it for a retry on the queue's schedule; the
// message is sent to the recipients that were accepted. Outcome.Rcpts
// carries the recipients to retry, or, when only permanent failures are
// left, those that failed (the job is then dead-lettered, and a replay
// targets only them). A connection lost before the reply to the final dot
// is retried: delivery is at least once. Attempt.Status and
// Attempt.Response hold the remote server's last deciding reply ("550 5.1.1
// no such user"), Attempt.Error the per-recipient story. Our own failures
// (cannot read the message, AUTH refused, TLS required and not available)
// are retried, never turned into bounces.
//
// # Message preparation
//
// The raw message is streamed, never held in memory: it is read once to
// sign it and once to send it. In front of it go our DKIM-Signature (when
// Options.DKIM is set; RFC 6376, rsa-sha256 or ed25519-sha256 per RFC 8463,
// relaxed/relaxed, covering the RFC 6376 §5.4.1 fields and our X-Loop) and
// an "X-Loop: <marker>" field. Nothing of the original is changed, so its
// own DKIM signatures still verify.
//
// # Loop guards
//
// A message that already carries our X-Loop marker, or more than
// Options.MaxReceived Received fields (RFC 5321 §6.3), is refused
// permanently with ErrLoop. ScanHeader, FactsOf and CheckLoop are
// exported so that ingest and the router can refuse such mail in the SMTP
// dialogue instead. Auto-submitted mail (RFC 3834; Auto-Submitted other
// than "no") is not forwarded unless the action sets
// forward_auto_submitted (route.Action.ForwardAutoSubmitted), so that
// auto-replies cannot ping-pong between forwards.
//
// # SRS and bounces
//
// With Options.SRS set, the envelope sender is rewritten (SRS0, or SRS1 for
// an address already rewritten by another forwarder) so SPF (RFC 7208)
// passes at the destination; the null sender stays null. Senders that
// passed SPF or DMARC are rewritten with ForwardVerified, others with
// Forward; the difference is inside the hash.
//
// Bounces come back to the SRS address. Ingest should, at RCPT, recognise
// one of our SRS addresses with SRS.IsSRS and call SRS.HandleBounce:
//
//   - an error (forged, altered or expired address): refuse the recipient
//     with 550 5.1.1, so nothing is accepted for it;
//   - Relay true (a bounce, to an address made for a verified sender):
//     accept and queue a relay job to BounceAction.To with the null
//     envelope sender, through this package like any forward;
//   - Relay false: accept and drop, logging BounceAction.Reason; relaying
//     it would be backscatter to whoever a spammer named in MAIL FROM.
//
// The SRS domain must be one of the domains mailhook receives mail for.
//
// # Not done
//
// ARC sealing (RFC 8617) is left for later: go-msgauth v0.7.0 has no arc
// package and no other maintained Go library is in the module set.
package relay
