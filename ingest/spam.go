package ingest

import (
	"context"
	"crypto/tls"
	"io"

	"github.com/emersion/go-smtp"

	"github.com/mailhook/mailhook/inbound"
	"github.com/mailhook/mailhook/ingest/rspamd"
)

// SpamChecker asks a content filter for its verdict on a message: the
// rspamd client. An error means there is no verdict.
type SpamChecker interface {
	Check(ctx context.Context, req *rspamd.Request, body io.Reader, size int64) (*inbound.Spam, error)
}

var _ SpamChecker = (*rspamd.Client)(nil)

// SpamOptions turn the spam check on (verify.rspamd).
type SpamOptions struct {
	Checker SpamChecker
	// Enforce makes rspamd's action the reply: reject is 550 5.7.1, soft
	// reject and greylist 451 4.7.1. Without it the verdict is only
	// recorded, and a reject flags the message for quarantine.
	Enforce bool
	// DeferOnError answers 451 4.4.3 when rspamd gives no verdict; by
	// default the message is accepted with spam.result "error".
	DeferOnError bool
}

// SpamObserver, when the Options' Observer implements it, is told of every
// verdict (the metrics count actions), refused messages included. It
// must not block.
type SpamObserver interface {
	Spam(r *inbound.Spam)
}

// The replies of the spam check (RFC 3463 §3.8: 5.7.1 delivery not
// authorized, 4.7.1 the same, for now; §3.5: 4.4.3 a directory or
// service we depend on failed).
var (
	// ErrSpamReject: rspamd's action is reject.
	ErrSpamReject = &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 7, 1}, Message: "Message rejected as spam"}
	// ErrSpamDefer: rspamd's action is soft reject or greylist; the
	// sender is to try again later.
	ErrSpamDefer = &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 7, 1}, Message: "Message deferred by the content filter, please try again later"}
	// ErrSpamCheckFailed: rspamd gave no verdict and on_error is defer.
	ErrSpamCheckFailed = &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 4, 3}, Message: "Content filter unavailable, please try again later"}
)

// checkSpam asks rspamd about the message in sp, with the envelope and our
// verification results, records the verdict in m.Spam and returns the
// reply it calls for, or nil to go on; flag says whether the verdict asks
// for the message to be passed on flagged (inbound.Auth.Quarantine, which
// the caller sets). It runs after DKIM and DMARC, so their verdicts go
// with the request, and after a DMARC reject, which needs no content
// check.
func (ss *session) checkSpam(ctx context.Context, sp *spool, m *inbound.Mail) (flag bool, err error) {
	so := ss.s.o.Spam
	if so == nil || so.Checker == nil {
		return false, nil
	}
	req := &rspamd.Request{
		IP: ss.ip, Helo: m.Envelope.Helo, MailFrom: ss.mailFrom, Rcpts: m.Envelope.RcptTo,
		QueueID: m.ID, Hostname: ss.s.o.Hostname, Auth: m.Auth,
	}
	if st, ok := ss.c.TLSConnectionState(); ok {
		req.TLSVersion, req.TLSCipher = tls.VersionName(st.Version), tls.CipherSuiteName(st.CipherSuite)
	}
	res, err := so.Checker.Check(ctx, req, sp.reader(), sp.size)
	if err != nil {
		ss.log.Warn("spam check failed", "msg_id", m.ID, "error", err)
		res = rspamd.Failed(err)
	}
	m.Spam = res
	if obs, ok := ss.s.o.Observer.(SpamObserver); ok {
		obs.Spam(res)
	}
	if !res.OK() {
		if so.DeferOnError {
			return false, ErrSpamCheckFailed
		}
		return false, nil
	}
	switch res.Action {
	// discard would drop the message silently; we refuse it in the
	// dialogue instead, as every rejection (DESIGN.md).
	case inbound.SpamActionReject, inbound.SpamActionDiscard:
		if so.Enforce {
			return false, ErrSpamReject
		}
		return true, nil // not enforced: passed on flagged, as a DMARC reject is
	case inbound.SpamActionSoftReject, inbound.SpamActionGreylist:
		if so.Enforce {
			return false, ErrSpamDefer
		}
	case inbound.SpamActionAddHeader, inbound.SpamActionRewriteSubject, inbound.SpamActionQuarantine:
		return true, nil
	}
	// Any other (custom) action is recorded for the rules, nothing more.
	return false, nil
}
