package webhook

import (
	"slices"
	"strings"

	"github.com/mailhook/mailhook/deliver"
	"github.com/mailhook/mailhook/inbound"
)

// addParity fills the fields the hosted services send that are per
// delivery: msg_id, message.rcpt_tag and reply. ev.Message is ev's own copy.
func addParity(ev *Event, job *deliver.Job, mail *inbound.Mail) {
	ev.MsgID = mail.ID
	rcpts := job.Rcpts
	if len(rcpts) == 0 {
		rcpts = mail.Envelope.RcptTo
	}
	// The verdict on a reply address goes to the deliveries for it, not
	// to those for the message's other recipients.
	if mail.Reply != nil && (mail.ReplyRcpt == "" || slices.Contains(rcpts, mail.ReplyRcpt)) {
		ev.Reply = mail.Reply
	}
	ev.Message.RcptTag = rcptTag(rcpts)
}

// rcptTag is the +tag of the first of rcpts that has one (Postmark's
// MailboxHash): what follows the first '+' of the local part.
func rcptTag(rcpts []string) string {
	for _, r := range rcpts {
		at := strings.LastIndexByte(r, '@')
		if at < 0 {
			continue
		}
		if _, tag, ok := strings.Cut(r[:at], "+"); ok && tag != "" {
			return tag
		}
	}
	return ""
}
