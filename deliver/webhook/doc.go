// Package webhook sends mailhook's webhook deliveries: one HTTP POST of a
// "message.received" event (see Event and DESIGN.md, "Webhooks") per job of
// kind deliver.KindWebhook. Sender implements deliver.Handler; the queue and
// its runner in package deliver decide when to call it again.
//
// # Signing
//
// Every request is signed per the Standard Webhooks specification
// (https://www.standardwebhooks.com, version 1.0.0):
//
//	webhook-id:        the job id, the same on every retry (an idempotency key)
//	webhook-timestamp: the attempt's time, Unix seconds
//	webhook-signature: "v1,<base64 HMAC-SHA256(secret, id + "." + timestamp + "." + body)>"
//
// Secrets are "whsec_" + base64 (ParseSecret). During a rotation an
// endpoint has several secrets and the header carries one signature per
// secret, space-separated, so a receiver holding either verifies. Optional
// ed25519 keys ("whsk_", see ParseSigningKey) add asymmetric "v1a"
// signatures, verified with the "whpk_" public key (PublicKey).
//
// # Outcomes
//
// Classify is the one place that turns a response or an error into a
// deliver.Outcome: 2xx is done, 410 Gone stops at once, 429 and 503 honour
// Retry-After, redirects are failures and are never followed, everything
// else (other statuses, timeouts, refused and reset connections) is retried.
// A job for an endpoint no longer configured is dead-lettered at once.
//
// # Synchronous endpoints
//
// An endpoint with Mode ModeSync is POSTed during DATA by SyncStep, which
// the commit step runs before the queue commit (deliver.Committer.Sync):
// its answer is the SMTP reply (SyncVerdict: 2xx accepted, 4xx refused
// with 550 5.7.1 and the text of the response, anything else 451 or, with
// OnFailureQueue, queued). The request is the one Handle sends, signed the
// same way, bounded by SyncTimeout.
//
// # Safety
//
// Unless an endpoint sets allow_private, the dialer refuses loopback,
// private, link-local (the cloud metadata service included), unspecified,
// multicast, carrier-grade NAT and other special-purpose addresses. The
// check runs after DNS, on the address being connected to, so a hostname
// resolving to such an address is refused as well (see CheckAddr). No HTTP
// proxy is used. Each attempt is bounded by the endpoint's timeout, the
// response body recorded is its first bytes (1 KiB by default), and at most
// a further 64 KiB are drained before the connection is dropped instead.
//
// # Memory
//
// An endpoint with raw: true gets the whole message base64-encoded in
// "raw". With HMAC secrets only, the message is streamed twice from its
// stored file (once through the HMACs, once onto the wire with a known
// Content-Length), never held in memory. Ed25519 signatures are not
// streaming, so with signing keys and raw: true the body is built in memory.
package webhook
