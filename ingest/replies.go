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
)
