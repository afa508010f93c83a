package route

import (
	"errors"

	"github.com/mailhook/mailhook/replyaddr"
)

// ActionKind names what an action does.
type ActionKind string

// The action kinds.
const (
	ActWebhook ActionKind = "webhook"
	ActMailbox ActionKind = "mailbox"
	ActForward ActionKind = "forward"
	ActReject  ActionKind = "reject"
	ActDrop    ActionKind = "drop"
)

// Action is a compiled action.
type Action struct {
	Kind ActionKind `json:"kind"`
	// Rule is the name of the rule the action belongs to (set by Decide).
	Rule    string   `json:"rule,omitempty"`
	Webhook string   `json:"webhook,omitempty"` // endpoint name
	Mailbox string   `json:"mailbox,omitempty"` // user name
	Folder  string   `json:"folder,omitempty"`
	Forward []string `json:"forward,omitempty"`
	// Reject is the SMTP reply for ActReject.
	RejectCode     int    `json:"reject_code,omitempty"`
	RejectEnhanced [3]int `json:"reject_enhanced,omitempty"`
	RejectText     string `json:"reject_text,omitempty"`
	// ForwardAutoSubmitted lets a forward action relay auto-submitted mail
	// (RFC 3834 Auto-Submitted other than "no"); by default the relay
	// refuses it, so auto-replies cannot bounce between forwards.
	ForwardAutoSubmitted bool `json:"forward_auto_submitted,omitempty"`
}

// Decision is what the rules decided for one recipient of one message.
type Decision struct {
	Rcpt string `json:"rcpt"`
	// Rules are the names of the rules that matched, in order.
	Rules []string `json:"rules"`
	// Actions are the actions of the matching rules, in order. Empty when no
	// rule matched (the message is refused for that recipient).
	Actions []Action `json:"actions"`
	// Why explains each matching rule's match, for `route test` and the
	// dashboard.
	Why []string `json:"why,omitempty"`
	// Reply is the verdict on the recipient as a signed reply address; nil
	// when it is not one.
	Reply *replyaddr.Result `json:"reply,omitempty"`
}

// Matched reports whether any rule matched.
func (d *Decision) Matched() bool { return len(d.Rules) > 0 }

// ErrNoRoute means no rule accepts the recipient or message.
var ErrNoRoute = errors.New("route: no rule matches")

// Known lists the names that actions may refer to, so that Compile can
// report a rule naming an undefined webhook or mailbox user.
type Known struct {
	Webhooks map[string]bool
	Users    map[string]bool
}
