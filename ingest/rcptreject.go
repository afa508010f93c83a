package ingest

import (
	"github.com/emersion/go-smtp"

	"github.com/mailhook/mailhook/route"
)

// RcptRejecter is an optional method of a Router: a rule that can refuse
// a recipient from the envelope alone (a signed reply address that does not
// verify, see route.RejectAtRcpt) refuses it at RCPT, so the sender learns
// at once and only that recipient is refused (RFC 5321 §3.3).
type RcptRejecter interface {
	RejectAtRcpt(rcpt, mailFrom string) (route.Action, bool)
}

var _ RcptRejecter = (*route.Table)(nil)

// rejectAtRcpt returns the reply refusing rcpt at RCPT, or nil.
func rejectAtRcpt(r Router, rcpt, mailFrom string) *smtp.SMTPError {
	rr, ok := r.(RcptRejecter)
	if !ok {
		return nil
	}
	a, ok := rr.RejectAtRcpt(rcpt, mailFrom)
	if !ok {
		return nil
	}
	return &smtp.SMTPError{Code: a.RejectCode, EnhancedCode: smtp.EnhancedCode(a.RejectEnhanced), Message: a.RejectText}
}
