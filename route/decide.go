package route

import (
	"fmt"
	"slices"
	"strings"

	"github.com/mailhook/mailhook/inbound"
	"github.com/mailhook/mailhook/internal/clip"
	"github.com/mailhook/mailhook/replyaddr"
)

// Accepts reports whether any rule could accept mail for rcpt, looking only
// at envelope-recipient matchers; it is asked at RCPT TO, before the rest of
// the message is known. A rule whose rcpt matcher is empty, or matches,
// could accept. A rule whose only action is reject still accepts here: the
// reject is given at end of data, when Decide runs, because the rule's other
// matchers (headers, auth) may not match and a later rule may take the mail.
func (t *Table) Accepts(rcpt string) bool {
	return t.accepts(splitAddr(rcpt), nil, replyStateOf(t.replyOf(rcpt)))
}

// AcceptsEnvelope is Accepts that also uses the mail_from matchers, for when
// the reverse-path is known (it always is at RCPT in SMTP). ingest refuses a
// recipient for which it is false with 550 5.1.1.
func (t *Table) AcceptsEnvelope(rcpt, mailFrom string) bool {
	f := splitAddr(mailFrom)
	return t.accepts(splitAddr(rcpt), &f, replyStateOf(t.replyOf(rcpt)))
}

// MayForward reports whether a rule that could take rcpt from mailFrom
// forwards it (a forward action): ingest then refuses at RCPT a sender
// the relay could not rewrite, instead of a bounce later.
func (t *Table) MayForward(rcpt, mailFrom string) bool {
	ra, fa := splitAddr(rcpt), splitAddr(mailFrom)
	for _, r := range t.rules {
		if matchGlobs(r.rcpt, ra) < 0 || matchGlobs(r.mailFrom, fa) < 0 {
			continue
		}
		for _, a := range r.actions {
			if a.Kind == ActForward {
				return true
			}
		}
	}
	return false
}

// accepts reports whether a rule's rcpt matchers, and its mail_from
// matchers unless mailFrom is nil, match, and its reply matcher matches
// the recipient's reply state.
func (t *Table) accepts(rcpt addr, mailFrom *addr, reply string) bool {
	for _, r := range t.rules {
		if matchGlobs(r.rcpt, rcpt) >= 0 && (mailFrom == nil || matchGlobs(r.mailFrom, *mailFrom) >= 0) && r.matchReply(reply) {
			return true
		}
	}
	return false
}

// Decide runs the rules in order for one recipient of m, at end of data. The
// first rule that matches wins, unless it has continue: true, in which case
// later rules are tried too and their actions added. A Decision with no
// actions means no rule matched and the recipient must be refused.
//
// Matchers that need the parsed message (from, header, subject,
// auto_submitted) do not match when m.Message is nil, and those that need
// verification results (auth, quarantine) do not match when m.Auth is nil.
func (t *Table) Decide(m *inbound.Mail, rcpt string) Decision {
	if m == nil {
		m = &inbound.Mail{}
	}
	in := input{m: m, rcpt: splitAddr(rcpt), mailFrom: splitAddr(m.Envelope.MailFrom), reply: t.replyOf(rcpt)}
	if m.Message != nil && m.Message.From != nil {
		in.from = splitAddr(m.Message.From.Address)
	} else {
		in.from = addr{opaque: true}
	}
	d := Decision{Rcpt: rcpt, Reply: in.reply}
	for _, r := range t.rules {
		if !r.match(&in) {
			continue
		}
		d.Rules = append(d.Rules, r.name)
		for _, a := range r.actions {
			a.Forward = slices.Clone(a.Forward)
			a.Rule = r.name
			d.Actions = append(d.Actions, a)
		}
		d.Why = append(d.Why, r.explain(&in, rcpt))
		if !r.cont {
			break
		}
	}
	return d
}

// Reject returns the first reject action of the decision, if any. A reject
// wins over the other actions: the message is refused for that recipient.
func (d *Decision) Reject() (Action, bool) {
	for _, a := range d.Actions {
		if a.Kind == ActReject {
			return a, true
		}
	}
	return Action{}, false
}

// input is what one Decide call matches against.
type input struct {
	m                    *inbound.Mail
	rcpt, mailFrom, from addr
	auth                 map[string]string // m.Auth.Summary(), computed on first use
	reply                *replyaddr.Result // the recipient's reply address verdict; nil: none
}

func (in *input) authSummary() map[string]string {
	if in.auth == nil {
		in.auth = in.m.Auth.Summary()
	}
	return in.auth
}

// matchGlobs returns the index of the first glob matching a, len(gs) (a
// non-negative value) when gs is empty, or -1 when none matches.
func matchGlobs(gs []glob, a addr) int {
	if len(gs) == 0 {
		return 0
	}
	for i := range gs {
		if gs[i].match(a) {
			return i
		}
	}
	return -1
}

// match reports whether every matcher of r matches (AND).
func (r *rule) match(in *input) bool {
	if matchGlobs(r.rcpt, in.rcpt) < 0 || matchGlobs(r.mailFrom, in.mailFrom) < 0 || !r.matchReply(replyStateOf(in.reply)) {
		return false
	}
	msg := in.m.Message
	needMsg := len(r.from) > 0 || len(r.header) > 0 || r.subject != nil || r.autoSub != nil
	if needMsg && msg == nil {
		return false
	}
	if matchGlobs(r.from, in.from) < 0 {
		return false
	}
	for i := range r.header {
		if r.header[i].value(in) < 0 {
			return false
		}
	}
	if r.subject != nil && !r.subject.MatchString(msg.Subject) {
		return false
	}
	if r.autoSub != nil && msg.AutoSubmitted != *r.autoSub {
		return false
	}
	if (len(r.auth) > 0 || r.quar != nil) && in.m.Auth == nil {
		return false
	}
	for _, am := range r.auth {
		if !am.match(in.authSummary()[am.key]) {
			return false
		}
	}
	if r.quar != nil && in.m.Auth.Quarantine != *r.quar {
		return false
	}
	if r.spam != nil && !r.spam.match(in.m.Spam) {
		return false
	}
	return true
}

// value returns the index in the message headers of the first value of the
// header that matches, or -1. Every value of a repeated header is tried.
func (h *headerMatcher) value(in *input) int {
	for i, kv := range in.m.Message.Headers {
		if strings.EqualFold(kv[0], h.name) && h.re.MatchString(kv[1]) {
			return i
		}
	}
	return -1
}

// match reports whether got is one of the wanted results. An empty result
// (nothing was checked or recorded) counts as "none".
func (am *authMatcher) match(got string) bool {
	got = strings.ToLower(got)
	if got == "" {
		got = "none"
	}
	return slices.Contains(am.want, got)
}

// explain writes the human sentence for a rule that matched, for
// `mailhook route test` and the dashboard.
func (r *rule) explain(in *input, rcpt string) string {
	var parts []string
	glob := func(what string, gs []glob, a addr, shown string) {
		if i := matchGlobs(gs, a); len(gs) > 0 && i >= 0 {
			if a.null {
				shown = "<>"
			}
			parts = append(parts, fmt.Sprintf("%s %s matched glob %s", what, shown, gs[i].src))
		}
	}
	glob("rcpt", r.rcpt, in.rcpt, rcpt)
	glob("mail_from", r.mailFrom, in.mailFrom, in.m.Envelope.MailFrom)
	if len(r.from) > 0 {
		glob("from", r.from, in.from, in.m.Message.From.Address)
	}
	for i := range r.header {
		h := &r.header[i]
		v := in.m.Message.Headers[h.value(in)][1]
		parts = append(parts, fmt.Sprintf("header %s %q matched %s", h.name, clip.UTF8(v, 60, "…"), h.re))
	}
	if r.subject != nil {
		parts = append(parts, fmt.Sprintf("subject matched %s", r.subject))
	}
	for _, am := range r.auth {
		got := in.authSummary()[am.key]
		if got == "" {
			got = "none"
		}
		parts = append(parts, fmt.Sprintf("auth %s=%s matched %s", am.key, got, am.src))
	}
	if r.autoSub != nil {
		parts = append(parts, fmt.Sprintf("auto_submitted is %t", *r.autoSub))
	}
	if r.quar != nil {
		parts = append(parts, fmt.Sprintf("quarantine is %t", *r.quar))
	}
	if len(r.reply) > 0 {
		parts = append(parts, r.explainReply(replyStateOf(in.reply)))
	}
	if r.spam != nil {
		parts = append(parts, r.spam.explain(in.m.Spam)...)
	}
	if len(parts) == 0 {
		return "rule " + r.name + ": no matchers, matches everything"
	}
	return "rule " + r.name + ": " + strings.Join(parts, "; ")
}
