package inbound

import (
	"time"

	"github.com/mailhook/mailhook/parse"
	"github.com/mailhook/mailhook/replyaddr"
)

// Envelope is the SMTP envelope of one message. Its JSON form is the
// "envelope" object of the webhook contract in DESIGN.md.
type Envelope struct {
	MailFrom string   `json:"mail_from"`
	RcptTo   []string `json:"rcpt_to"`
	ClientIP string   `json:"client_ip"`
	Helo     string   `json:"helo"`
	TLS      bool     `json:"tls"`
}

// Mail is the one value that flows from ingest through route to deliver.
// Ingest fills every field, in the order of its DATA step, before the
// queue's commit; after the commit, nothing writes to it. Its JSON form is
// stable because queues store it.
//
// Within ingest, each field has one writer: the session sets ID, StableID,
// ReceivedAt and Envelope; the verifier (ingest/auth) sets Auth, which
// ingest completes with Quarantine once the spam verdict is in; rspamd
// (ingest/rspamd) sets Spam; the parser (parse) sets Message, which ingest
// completes at once, before routing, with the URLs of the attachments left
// out of the payload (its Attachments hook: admin signs them and serves
// them), and after routing, when the spool is finalized, with the header
// fields it prepends; routing sets Reply and ReplyRcpt; the spool sets
// RawPath, Raw and RawSize.
type Mail struct {
	// ID is unique to this acceptance: the id in "250 queued as ID" and
	// the key the queue stores the message under.
	ID string `json:"id"`
	// StableID is the same for the same message retried by the sending MTA
	// after a lost 250 (derived from the envelope and a hash of the data,
	// which holds the Message-ID). It is the webhook payload's "id", so
	// receivers can drop duplicates.
	StableID   string         `json:"stable_id"`
	ReceivedAt time.Time      `json:"received_at"`
	Envelope   Envelope       `json:"envelope"`
	Auth       *Auth          `json:"auth"`
	Message    *parse.Message `json:"message"`
	// Reply is the verdict on the first recipient that is a signed reply
	// address (see route.ReplyOf); nil when none is. Ingest sets it after
	// routing.
	Reply *replyaddr.Result `json:"reply,omitempty"`
	// ReplyRcpt is the recipient Reply is about.
	ReplyRcpt string `json:"reply_rcpt,omitempty"`
	// Spam is rspamd's verdict (ingest/rspamd), nil when rspamd is not
	// configured.
	Spam *Spam `json:"spam,omitempty"`
	// RawPath is the file holding the whole message as received, with the
	// Received and Authentication-Results fields mailhook prepended. The
	// commit step takes ownership of it. Not part of the JSON.
	RawPath string `json:"-"`
	// Raw is the whole message, as RawPath would hold it, when it is small
	// enough to stay in memory from the socket to the queue's commit (no
	// file is created for it; RawPath is then empty). The commit step
	// stores it; nothing may change it. Not part of the JSON.
	Raw []byte `json:"-"`
	// RawSize is the size of the raw message in bytes.
	RawSize int64 `json:"raw_size"`
}
