package ingest

import "github.com/emersion/go-smtp"

// The replies mailhook gives, with their enhanced status codes (RFC 3463).
// Our own transient failures are 4xx and bare *smtp.SMTPError values: go-smtp
// turns any other error returned from Data into "554 5.0.0", a permanent
// failure that would make the sender bounce mail it should have retried.
var (
	// ErrRelayDenied: the recipient is not in one of our domains, or uses a
	// form that would make us relay (user%other@ours, "a@b"@ours).
	ErrRelayDenied = &smtp.SMTPError{Code: 554, EnhancedCode: smtp.EnhancedCode{5, 7, 1}, Message: "Relay access denied"}
	// ErrUnknownUser: our domain, but no rule accepts the address.
	ErrUnknownUser = &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "No such user here"}
	// ErrBadAddress: the address is not a valid mailbox.
	ErrBadAddress = &smtp.SMTPError{Code: 553, EnhancedCode: smtp.EnhancedCode{5, 1, 3}, Message: "Bad address syntax"}
	// ErrNeedSMTPUTF8: a non-ASCII address without SMTPUTF8 (RFC 6531 §3.5).
	ErrNeedSMTPUTF8 = &smtp.SMTPError{Code: 553, EnhancedCode: smtp.EnhancedCode{5, 6, 7}, Message: "Non-ASCII address requires SMTPUTF8"}
	// ErrBareLineEnding: a bare CR or LF in DATA; refused so that no
	// SMTP smuggling variant can hide a second message in this one.
	ErrBareLineEnding = &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 5, 2}, Message: "Bare CR or LF in message; lines must end with CRLF"}
	// ErrLineTooLong: a line in DATA over the limit.
	ErrLineTooLong = &smtp.SMTPError{Code: 500, EnhancedCode: smtp.EnhancedCode{5, 5, 6}, Message: "Line too long"}
	// ErrTempFailure: our store, queue or Redis failed; the sender retries.
	ErrTempFailure = &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "Temporary local problem, please try again later"}
	// ErrDNSTempFailure: verification hit a DNS temporary error and the
	// configuration says to defer.
	ErrDNSTempFailure = &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 4, 3}, Message: "Temporary DNS failure verifying the sender, please try again later"}
	// ErrDMARCReject: DMARC failed under p=reject (RFC 7489 §6.3).
	ErrDMARCReject = &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 7, 1}, Message: "Rejected by the sender domain's DMARC policy"}
	// ErrNoRoute: no rule takes the message for a recipient.
	ErrNoRoute = &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 7, 1}, Message: "No route accepts this message"}
	// ErrTooManyConns is sent at connect when a limit on connections is hit.
	ErrTooManyConns = &smtp.SMTPError{Code: 421, EnhancedCode: smtp.EnhancedCode{4, 7, 0}, Message: "Too many connections, try again later"}
	// ErrNULInData: a NUL byte in DATA (RFC 5322 §2.1: never in a message).
	ErrNULInData = &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 6, 0}, Message: "NUL byte in message"}
	// ErrHeaderTooBig: the header section is larger than the limit; no
	// part of it is judged by itself (a From could lie past a cut).
	ErrHeaderTooBig = &smtp.SMTPError{Code: 552, EnhancedCode: smtp.EnhancedCode{5, 3, 4}, Message: "Header section too large"}
	// ErrAuthor: under verify.multiple_from: reject, a From that does not
	// give exactly one author address (RFC 5322 §3.6.2, RFC 7489 §6.6.1).
	ErrAuthor = &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 7, 1}, Message: "Message must have one From field with exactly one author address"}
	// ErrMailLoop: a message for a forwarding route already carries our
	// X-Loop marker or too many Received fields (RFC 5321 §6.3).
	ErrMailLoop = &smtp.SMTPError{Code: 554, EnhancedCode: smtp.EnhancedCode{5, 4, 6}, Message: "Mail loop detected"}
	// ErrBadSender: a reverse-path with NUL or control bytes.
	ErrBadSender = &smtp.SMTPError{Code: 553, EnhancedCode: smtp.EnhancedCode{5, 1, 7}, Message: "Bad sender address: control characters"}
	// ErrSenderNotForwardable: at RCPT, for a route that forwards, a
	// sender SRS cannot rewrite (an address literal, RFC 5321 §4.1.3, or
	// a quoted local part).
	ErrSenderNotForwardable = &smtp.SMTPError{Code: 553, EnhancedCode: smtp.EnhancedCode{5, 1, 7},
		Message: "This recipient forwards mail, and a sender with an address literal or a quoted local part cannot be rewritten for forwarding (SRS)"}
)
