package route

import (
	"fmt"
	"slices"
	"strings"

	"github.com/mailhook/mailhook/inbound"
	"github.com/mailhook/mailhook/replyaddr"
)

// Signed reply addresses (package replyaddr). The matcher
//
//	match: {reply: valid | invalid | expired | none}
//
// (comma-separated for alternatives) looks at the recipient being decided:
// "none" when it is not a reply address, "valid" when its MAC verifies and
// it has not expired, "invalid" when it is a reply address that does not
// verify or has expired, "expired" for the latter only. It needs only the
// envelope, so a rule whose matchers are all envelope matchers (rcpt,
// mail_from, reply) and that has a reject action refuses the recipient at
// RCPT (see RejectAtRcpt), not at end of data.

// ReplyVerifier verifies reply addresses; *replyaddr.Signer is one.
type ReplyVerifier interface {
	Verify(addr string) (replyaddr.Result, bool)
}

var _ ReplyVerifier = (*replyaddr.Signer)(nil)

// The reply states a rule can match.
const (
	ReplyValid   = "valid"
	ReplyInvalid = "invalid"
	ReplyExpired = "expired"
	ReplyNone    = "none"
)

var replyStates = []string{ReplyValid, ReplyInvalid, ReplyExpired, ReplyNone}

// WithReply returns a copy of t that verifies reply addresses with v (nil:
// every recipient's reply state is "none").
func (t *Table) WithReply(v ReplyVerifier) *Table {
	c := *t
	c.replyV = v
	return &c
}

// replyOf verifies rcpt; nil when it is not a reply address.
func (t *Table) replyOf(rcpt string) *replyaddr.Result {
	if t.replyV == nil {
		return nil
	}
	r, ok := t.replyV.Verify(rcpt)
	if !ok {
		return nil
	}
	return &r
}

// replyStateOf names r's state for the matcher.
func replyStateOf(r *replyaddr.Result) string {
	switch {
	case r == nil:
		return ReplyNone
	case r.Valid:
		return ReplyValid
	case r.Expired:
		return ReplyExpired
	default:
		return ReplyInvalid
	}
}

// compileReply checks a reply matcher's alternatives.
func compileReply(add addFunc, key, v string) []string {
	if strings.TrimSpace(v) == "" {
		return nil
	}
	var want []string
	for _, s := range strings.Split(v, ",") {
		s = strings.ToLower(strings.TrimSpace(s))
		if !slices.Contains(replyStates, s) {
			add(key, "%q is not a reply state; want valid, invalid, expired or none (comma-separated for alternatives)", s)
			continue
		}
		want = append(want, s)
	}
	return want
}

// matchReply reports whether the reply matcher of r (if any) matches
// state; "invalid" takes expired addresses too.
func (r *rule) matchReply(state string) bool {
	if len(r.reply) == 0 {
		return true
	}
	return slices.Contains(r.reply, state) || state == ReplyExpired && slices.Contains(r.reply, ReplyInvalid)
}

func (r *rule) explainReply(state string) string {
	return fmt.Sprintf("reply address is %s (matched %s)", state, strings.Join(r.reply, ","))
}

// RejectAtRcpt reports whether rcpt is refused at RCPT by a rule with a
// reply matcher and a reject action, and the reject. Rules are walked as
// Decide walks them: a rule whose other matchers need the message (headers,
// auth…) stops the walk, since only end of data can tell whether it
// matches; so does a matching rule without continue.
func (t *Table) RejectAtRcpt(rcpt, mailFrom string) (Action, bool) {
	in := input{m: &inbound.Mail{Envelope: inbound.Envelope{MailFrom: mailFrom}}, rcpt: splitAddr(rcpt), mailFrom: splitAddr(mailFrom),
		from: addr{opaque: true}, reply: t.replyOf(rcpt)}
	state := replyStateOf(in.reply)
	for _, r := range t.rules {
		if matchGlobs(r.rcpt, in.rcpt) < 0 || matchGlobs(r.mailFrom, in.mailFrom) < 0 || !r.matchReply(state) {
			continue
		}
		if !r.match(&in) {
			return Action{}, false // depends on the data
		}
		if len(r.reply) > 0 {
			for _, a := range r.actions {
				if a.Kind == ActReject {
					a.Rule = r.name
					return a, true
				}
			}
		}
		if !r.cont {
			return Action{}, false
		}
	}
	return Action{}, false
}

// ReplyOf returns the reply address verdict of the first recipient among
// decisions that is a reply address, and that recipient; nil when none is.
// Ingest puts them in Mail.Reply and Mail.ReplyRcpt.
func ReplyOf(decisions []Decision) (*replyaddr.Result, string) {
	for i := range decisions {
		if decisions[i].Reply != nil {
			return decisions[i].Reply, decisions[i].Rcpt
		}
	}
	return nil, ""
}
