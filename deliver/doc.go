// Package deliver runs every action of every accepted message through one
// durable queue.
//
// # Flow
//
// At end of data the SMTP listener calls Committer.Commit: Plan turns the
// routing decisions into jobs (one webhook job per rule and endpoint, one
// mailbox job per user and folder, one relay job per destination domain)
// and Queue.Commit records the message, its raw bytes and all its jobs in
// one transaction. Only then does the listener answer 250; if Commit fails
// it answers 451 4.3.0 and the sender retries (DESIGN.md, "The durability
// contract").
//
// A Runner takes due jobs for the kinds it has a Handler for, leases them,
// runs one attempt each and then acks the job (delivered), retries it later
// (by Schedule with jitter, or the handler's RetryAfter) or dead-letters it
// (a permanent failure, the schedule exhausted, or MaxAge reached). Every
// attempt is recorded in the job's History. The attempt count is saved by
// Take, before the attempt, so a crash mid-attempt still counts it.
//
// # Leases and at-least-once
//
// A taken job carries a lease token and is invisible to other workers until
// LeaseUntil. A worker that dies loses its lease when it expires and the
// job is taken again; a worker that comes back late gets ErrLeaseLost from
// Ack, Retry or Dead and must forget the job. Delivery is therefore at least
// once, and a webhook job's ID, stable across retries and derived from the
// message's stable id (deliver.CommitKey), is its webhook-id so receivers
// can drop duplicates.
//
// # Message identity
//
// A message has two ids: inbound.Mail.ID, unique to one acceptance (the id
// in "250 queued as ID"), and StableID, a hash of the envelope and the
// content, the same when the sending MTA retries after a lost 250 or after
// a 451 for an unconfirmed commit. StableID is the commit key: Queue.Commit
// of a key committed within the dedup window, or whose message is still
// queued, is a no-op, so the retry is delivered once.
//
// # Backends
//
// deliver/pebbleq is the embedded backend (a Pebble store under data_dir,
// large raw messages as files beside it, single node); deliver/redisq is
// the Redis backend (several nodes share one queue). deliver/boltq, the
// embedded backend before Pebble (bbolt), stays for the stores it wrote:
// pebbleq imports one at Open; and as the benchmark pebbleq was chosen
// against. Each is a Backend: the pipeline's Queue
// (Commit for the listener; Take, Ack, Retry, Dead, Mail and OpenRaw for
// the workers) and the Operator (Stats, List, ListDead, Get, Replay,
// ReplayAll, RetryNow, Drop for the admin API and `mailhook queue`). Both
// pass the suite in deliver/queuetest, on both interfaces (boltq too).
// Message data is deleted with the message's last job (acked or dropped);
// dead letters keep theirs until replayed and delivered, or dropped.
package deliver
