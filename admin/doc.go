// Package admin is mailhook's admin listener (admin.listen): Prometheus
// metrics, health and readiness probes, a JSON API over the queue and the
// message history, a web dashboard, and signed URLs for attachments too
// large to inline in a webhook.
//
// # Pieces
//
//   - Activity is the message history: every accepted message (envelope,
//     verification results, parsed message, which rule matched and why, its
//     jobs), every refusal, every delivery attempt, the webhook bodies sent,
//     a copy of each raw message (hard-linked, so free while the queue
//     still holds it), and per-minute counters for the charts. It lives in
//     its own bbolt file and keeps records for a retention period (7 days
//     by default); Purge deletes older ones. It never touches the queue or
//     mailboxes, and a failing write to it must never fail mail acceptance:
//     callers log the errors of its Record methods and go on.
//   - Metrics holds the Prometheus collectors in their own registry, with a
//     method per event for the hooks in ingest, the delivery runner and the
//     mailbox servers. A nil *Metrics records nothing.
//   - Server is the http.Handler of the listener, with Serve and Shutdown.
//
// # Endpoints
//
//	GET  /healthz                      alive (no auth)
//	GET  /readyz                       200, or 503 with the failing check (no auth)
//	GET  /metrics                      Prometheus text exposition (no auth)
//	GET  /api/session                  200 when the token or dashboard session is valid
//	GET  /api/messages                 ?q= (sender, subject, Message-ID, ids) &rcpt= &route= &status= (dead includes partial) &since= &until= (RFC 3339) &cursor= &limit= (<= 500)
//	GET  /api/messages/{id}            any of its ids (msg_id, stable id, webhook-id, job id): envelope, auth verdicts, decisions, jobs with every attempt, timeline
//	GET  /api/messages/{id}/raw        the raw source, message/rfc822
//	GET  /api/refused                  recent refusals (?q= &stage= &class=4xx|5xx)
//	GET  /api/queue/stats              job counts by state and the queue's lag
//	GET  /api/queue/dead               dead letters, newest first (?cursor= &limit= &kind=)
//	GET  /api/jobs                     ?state= &kind= &msg_id=
//	GET  /api/jobs/{id}                one job
//	POST /api/jobs/{id}/retry          attempt a waiting job now
//	POST /api/queue/retry              attempt every waiting job now
//	POST /api/jobs/{id}/replay         replay one dead job
//	POST /api/queue/replay?since=T     replay every job dead-lettered at or after T
//	DELETE /api/jobs/{id}              drop a job
//	GET  /api/series?hours=N           per-step counters for the charts
//	POST /api/reply-addresses          mint a signed reply address ({"thread", "ttl"})
//	POST /api/config/diff              which keys of a config fingerprint differ from the running one
//	GET  /attachments/{msgid}/{index}  ?exp= &sig= (signed, see AttachmentKey)
//	GET  /                             the dashboard (login with the token)
//	/debug/pprof/                      only with EnablePprof, behind the token
//
// # Security
//
// /healthz, /readyz and /metrics answer without authentication, so
// admin.listen belongs on loopback (the default, 127.0.0.1:8025) or behind a
// firewall that lets only the monitoring system in. The API and dashboard
// need the admin token: as "Authorization: Bearer <token>" (RFC 6750 §2.1),
// compared in constant time, or as the dashboard's session cookie. With no
// token configured they are disabled (403), never open.
//
// Every token presented is checked (a constant-time compare of SHA-256
// digests costs nothing), so the right token is never refused because
// other clients behind the same address failed. After ten failed logins
// (bearer or dashboard) from one address within a minute, that address's
// wrong tokens are answered 429 with Retry-After for the rest of the
// minute instead of 401; failures are counted in
// mailhook_failed_logins_total{proto="admin"}. The limiter is the
// loginlimit.Limiter IMAP and POP3 use (see login.go).
//
// The dashboard's login sets an HttpOnly, SameSite=Strict cookie holding a
// random session id (never the token); the server keeps the session and
// logging out deletes it, so a copied cookie is worthless afterwards. A
// restart or a new token ends every session. Writes authenticated by
// the cookie must also carry the X-Mailhook-Request header, which a
// cross-site page cannot send without a CORS preflight the server never
// grants. Pages are served with a strict Content-Security-Policy; every
// value is put into the page as text.
//
// Attachments and raw messages are served as downloads
// (Content-Disposition: attachment) with "Content-Security-Policy:
// sandbox" and nosniff, so hostile content can never run in the admin
// origin.
//
// # Wiring
//
// cmd/mailhook builds the pieces and calls, from its hooks:
//
//	act.KeepRaw(mail.ID, mail.RawPath)            // before Queue.Commit moves the file (none when mail.Raw is set)
//	act.RecordAccepted(mail, decisions, jobs)     // after Commit succeeds; keeps mail.Raw, if set
//	act.RecordRefused(admin.Refused{...})         // on each 4xx/5xx that ends a message or recipient
//	act.RecordAttempt(job, attempt, settlement)   // after each attempt: delivered, retry, dead or released;
//	                                              // attempt.Body, the webhook body sent, is kept as the job's
//	go act.Purge(ctx); go act.SampleQueueEvery(ctx, 15*time.Second, q.Stats)
//
// RecordAccepted and RecordAttempt may arrive in either order for a fast
// delivery; the record merges them. A Record call prepares its writes and
// hands them to the store's committer, which writes all pending records in
// one bbolt transaction, not fsync'd (history, not the queue: a crash may
// lose the last records), each message's record once however many of its
// records are pending; reads wait for the records handed in before them.
// Still call them after the SMTP reply is written rather than before the
// 250: a Writer does (w.Go(func() { act.RecordAccepted(...) })), dropping
// and counting records when it falls a whole buffer behind.
//
// A job's webhook body shows once it was sent: it is the attempt's
// (RecordSent keeps one given otherwise, and older stores' bodies).
//
// Attachment URLs: ingest has AttachmentLinker.Link sign them (or note in
// the parse warnings that there is none) right after parsing, so they are
// in the queued payload; serve them from this listener, or mount
// Server.PublicHandler on a listener that the webhook receivers can reach
// while admin.listen stays private. A URL works until its expiry (410
// after), for any number of fetches, so a receiver whose download broke off
// can fetch again; ServerOptions.AttachmentOnce makes each URL work once.
// The URL names the attachment by its index in the webhook's list: the
// server lists the kept raw message again with parse.Parse, given
// ServerOptions.Parse (the options ingest parsed with, so the index means
// the same attachment), and streams that attachment's Part with
// parse.OpenPart, the same walker, so the bytes served are those the
// webhook's size and sha256 describe.
package admin
