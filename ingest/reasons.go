package ingest

import (
	"errors"

	"github.com/emersion/go-smtp"
)

// Reason says why the listener refused a recipient or a message, in a
// short fixed word (the metrics' reason label; never from the client's
// input). Each reply the listener gives has its reason where it is given;
// nothing is guessed from the reply's text.
type Reason string

// The reasons of refusals.
const (
	ReasonRelayDenied     Reason = "relay_denied"      // ErrRelayDenied
	ReasonUnknownUser     Reason = "unknown_user"      // ErrUnknownUser; a bad or expired bounce address
	ReasonBadAddress      Reason = "bad_address"       // ErrBadAddress, ErrNeedSMTPUTF8, ErrBadSender
	ReasonNotForwardable  Reason = "not_forwardable"   // ErrSenderNotForwardable
	ReasonRejectedByRule  Reason = "rejected_by_rule"  // a rule's reject action, at RCPT or end of data
	ReasonNoRoute         Reason = "no_route"          // ErrNoRoute
	ReasonDMARCReject     Reason = "dmarc_reject"      // ErrDMARCReject
	ReasonAuthor          Reason = "author"            // ErrAuthor
	ReasonSpamReject      Reason = "spam_reject"       // ErrSpamReject
	ReasonSpamDefer       Reason = "spam_defer"        // ErrSpamDefer
	ReasonSpamCheckFailed Reason = "spam_check_failed" // ErrSpamCheckFailed
	ReasonSize            Reason = "size"              // the message or its header over the limit
	ReasonBareLineEnding  Reason = "bare_line_ending"  // ErrBareLineEnding
	ReasonMalformed       Reason = "malformed"         // ErrLineTooLong, ErrNULInData
	ReasonMailLoop        Reason = "mail_loop"         // ErrMailLoop
	ReasonMailboxFull     Reason = "mailbox_full"      // Options.BeforeCommit's refusal for a full mailbox
	ReasonSyncWebhook     Reason = "sync_webhook"      // a synchronous webhook refused or deferred the message
	ReasonTempFailure     Reason = "temp_failure"      // ErrTempFailure, ErrDNSTempFailure: ours, the sender retries
	ReasonOther           Reason = "other"             // a reply from a hook that gave no reason
)

// Refusal is an error that refuses with Reply for Reason. The hooks
// (Options.BeforeCommit, the committer) return one to give their reason;
// the listener sends Reply, bare, as go-smtp needs.
type Refusal struct {
	Reply  *smtp.SMTPError
	Reason Reason
}

// Refuse returns the error that refuses with reply for why.
func Refuse(reply *smtp.SMTPError, why Reason) error { return &Refusal{Reply: reply, Reason: why} }

func (r *Refusal) Error() string { return r.Reply.Error() }

// Unwrap returns the reply.
func (r *Refusal) Unwrap() error { return r.Reply }

// reasons gives the reason of each of the listener's own replies, by
// identity.
var reasons = map[*smtp.SMTPError]Reason{
	ErrRelayDenied:          ReasonRelayDenied,
	ErrUnknownUser:          ReasonUnknownUser,
	ErrBadAddress:           ReasonBadAddress,
	ErrNeedSMTPUTF8:         ReasonBadAddress,
	ErrBadSender:            ReasonBadAddress,
	ErrSenderNotForwardable: ReasonNotForwardable,
	ErrNoRoute:              ReasonNoRoute,
	ErrDMARCReject:          ReasonDMARCReject,
	ErrAuthor:               ReasonAuthor,
	ErrSpamReject:           ReasonSpamReject,
	ErrSpamDefer:            ReasonSpamDefer,
	ErrSpamCheckFailed:      ReasonSpamCheckFailed,
	ErrHeaderTooBig:         ReasonSize,
	smtp.ErrDataTooLarge:    ReasonSize,
	ErrBareLineEnding:       ReasonBareLineEnding,
	ErrLineTooLong:          ReasonMalformed,
	ErrNULInData:            ReasonMalformed,
	ErrMailLoop:             ReasonMailLoop,
	ErrTempFailure:          ReasonTempFailure,
	ErrDNSTempFailure:       ReasonTempFailure,
}

// refusalOf returns the refusal err is: a *Refusal, or one of the
// listener's replies with its reason, or another bare reply (a hook's)
// with ReasonOther. ok is false when err is no reply at all (our own
// failure: a 451).
func refusalOf(err error) (r Refusal, ok bool) {
	var rf *Refusal
	if errors.As(err, &rf) {
		return *rf, true
	}
	var se *smtp.SMTPError
	if !errors.As(err, &se) {
		return Refusal{}, false
	}
	return Refusal{Reply: se, Reason: reasonOf(se)}, true
}

// reasonOf is the reason of reply e: one of the listener's own replies'
// reason, else ReasonOther.
func reasonOf(e *smtp.SMTPError) Reason {
	if why, ok := reasons[e]; ok {
		return why
	}
	return ReasonOther
}
