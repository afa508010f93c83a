package parse

import "strings"

// Message is a parsed mail message. Its JSON form is the "message" object of
// the webhook contract in DESIGN.md; field names are a contract and are only
// ever added to, never renamed. Queues store it, so it must round-trip through
// encoding/json unchanged.
type Message struct {
	MessageID  string   `json:"message_id"`
	InReplyTo  string   `json:"in_reply_to"`
	References []string `json:"references"`
	// Date is the Date header as RFC 3339; empty when absent or unparseable.
	Date    string    `json:"date"`
	Subject string    `json:"subject"`
	From    *Address  `json:"from"`
	To      []Address `json:"to"`
	Cc      []Address `json:"cc"`
	ReplyTo []Address `json:"reply_to"`
	// Headers are all top-level header fields in message order, decoded
	// values, as [name, value] pairs.
	Headers      [][2]string `json:"headers"`
	Text         string      `json:"text"`
	HTML         string      `json:"html"`
	StrippedText string      `json:"stripped_text"`
	// StrippedSignature is the signature cut from the reply's text (from
	// its "-- " separator or "Sent from my …" line up to the quote);
	// StrippedHTML is the HTML body without the quoted message and the
	// signature blocks (signature.go).
	StrippedSignature string `json:"stripped_signature"`
	StrippedHTML      string `json:"stripped_html"`
	// RcptTag is the +tag of the envelope recipient the delivery is for
	// ("billing" for support+billing@example.test); parse leaves it empty,
	// the webhook sender fills it per delivery.
	RcptTag       string       `json:"rcpt_tag"`
	AutoSubmitted bool         `json:"auto_submitted"`
	Attachments   []Attachment `json:"attachments"`
	// DSN is set for delivery status notifications (multipart/report).
	DSN *DSN `json:"dsn,omitempty"`
	// Warnings lists what could not be parsed or was cut at a limit; the
	// message is still delivered with what was parsed.
	Warnings []string `json:"parse_warnings,omitempty"`
}

// Address is a mailbox with its decoded display name. A broken address is
// kept as text in Address with Name empty rather than dropped, except in
// Message.From, whose Address is always the author DMARC judged (package
// header): a From without any address keeps its text in Name.
type Address struct {
	Name    string `json:"name"`
	Address string `json:"address"`
}

// Attachment describes one non-body part.
type Attachment struct {
	Filename    string `json:"filename"`
	ContentType string `json:"content_type"`
	// Charset is the charset a text/* part declared. Its content has been
	// converted to UTF-8 like the bodies (size and sha256 are of the
	// converted bytes), unless the charset is unknown.
	Charset     string `json:"charset,omitempty"`
	Size        int64  `json:"size"`
	Disposition string `json:"disposition"`
	ContentID   string `json:"content_id"`
	SHA256      string `json:"sha256"`
	// Part is the part's number in the MIME tree, numbered as IMAP numbers
	// body sections (RFC 3501 §6.4.5): "2" is the second part of the
	// top-level multipart, "3.1" the first part inside the third (or, when
	// the third is an attached message, the first part of that message);
	// a message that is not multipart has its body at "1". OpenPart opens
	// the part by it.
	Part string `json:"part,omitempty"`
	// Content is the base64 of the decoded part, absent when over the inline
	// limit (the size and hash are always set).
	Content string `json:"content,omitempty"`
	// URL is where the content can be fetched when it is not inline: set by
	// ingest right after parsing (admin.AttachmentLinker), served by the
	// admin listener.
	URL string `json:"url,omitempty"`
}

// DSN holds the parsed parts of a delivery status notification (RFC 3464).
type DSN struct {
	ReportingMTA string         `json:"reporting_mta,omitempty"`
	Recipients   []DSNRecipient `json:"recipients"`
}

// DSNRecipient is one per-recipient block of a DSN.
type DSNRecipient struct {
	FinalRecipient string `json:"final_recipient"`
	Action         string `json:"action"`
	Status         string `json:"status"`
	Diagnostic     string `json:"diagnostic,omitempty"`
}

// Header returns the first value of the named header field
// (case-insensitive), or "".
func (m *Message) Header(name string) string {
	for _, h := range m.Headers {
		if strings.EqualFold(h[0], name) {
			return h[1]
		}
	}
	return ""
}
