// Package inbound holds the one value that flows through mailhook's
// pipeline, ingest → route → deliver: the message (Mail), its SMTP
// envelope, and the verdicts given on it at acceptance (Auth for SPF, DKIM
// and DMARC; Spam for rspamd).
//
// Each stage fills its part and leaves it read-only after: the Mail doc
// comment says which stage fills which field. Every stage may import this
// package; it imports only the standard library and leaf libraries (parse,
// replyaddr), so that no stage reaches into another's internals for a
// result type. The JSON forms are stable: queues store Mail, and the
// webhook payload of DESIGN.md carries Envelope, Auth and Spam as they are.
package inbound
