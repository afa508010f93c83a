package relay

import (
	"github.com/emersion/go-smtp"

	"github.com/mailhook/mailhook/route"
)

// BounceRule is the rule name of the decisions Bounce makes, as the
// activity log and the metrics show it.
const BounceRule = "srs-bounce"

// Bounce decides, at RCPT, about a recipient in our domains that may be one
// of our SRS addresses; it is ingest's bounce hook (ingest.Options.Bounce).
// handled is false for an address that is not SRS in our domain (IsSRS):
// the rules decide about it. For one that is, HandleBounce decides:
//
//   - an address we did not make, or too old: refuse is 550 5.1.1, so the
//     remote keeps the bounce rather than our accepting and losing it;
//   - a bounce (null sender) for a verified sender: d relays it back to the
//     reversed address (a forward action, which the relay sends with the
//     null sender);
//   - anything else: d drops it, accepted and not delivered, so no
//     backscatter goes to whoever a spammer put in MAIL FROM.
func (s *SRS) Bounce(mailFrom, rcpt string) (d *route.Decision, refuse *smtp.SMTPError, handled bool) {
	if !s.IsSRS(rcpt) {
		return nil, nil, false
	}
	act, err := s.HandleBounce(mailFrom, rcpt)
	if err != nil {
		return nil, &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "No such bounce address: " + err.Error()}, true
	}
	if !act.Relay {
		return &route.Decision{Rules: []string{BounceRule}, Actions: []route.Action{{Kind: route.ActDrop, Rule: BounceRule}},
			Why: []string{"bounce to an SRS address dropped: " + act.Reason}}, nil, true
	}
	return &route.Decision{Rules: []string{BounceRule}, Actions: []route.Action{{Kind: route.ActForward, Forward: []string{act.To}, Rule: BounceRule}},
		Why: []string{"bounce to an SRS address relayed back to " + act.To}}, nil, true
}
