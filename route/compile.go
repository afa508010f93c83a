package route

import (
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"unicode"

	"github.com/mailhook/mailhook/config"
)

// Table is a compiled, immutable set of ordered rules. It is safe for
// concurrent use.
type Table struct {
	rules  []*rule
	replyV ReplyVerifier // nil: no reply addresses (see WithReply)
}

// rule is a compiled config.Rule.
type rule struct {
	name     string
	rcpt     []glob
	mailFrom []glob
	from     []glob
	header   []headerMatcher // sorted by name for a stable Why
	subject  *regexp.Regexp
	auth     []authMatcher // sorted by key
	autoSub  *bool
	quar     *bool
	reply    []string     // reply states, any may match (reply.go)
	spam     *spamMatcher // nil: no spam or spam_score matcher
	actions  []Action
	cont     bool
}

type headerMatcher struct {
	name string // as written
	re   *regexp.Regexp
}

type authMatcher struct {
	key  string   // spf, dkim, dmarc, dmarc_policy
	want []string // alternatives, lower-cased
	src  string   // as written
}

// authResults lists, per auth key, the results inbound.Auth can hold.
var authResults = map[string][]string{
	"spf":          {"pass", "fail", "softfail", "neutral", "none", "temperror", "permerror", "policy"},
	"dkim":         {"pass", "fail", "neutral", "none", "temperror", "permerror", "policy"},
	"dmarc":        {"pass", "fail", "none", "temperror", "permerror"},
	"dmarc_policy": {"none", "quarantine", "reject"},
}

// maxRegexLen bounds a regex's source; Go regexps run in linear time, this
// only keeps compiled programs small.
const maxRegexLen = 4096

// Compile checks rules against known and compiles them into a Table. It
// reports every problem at once: the error is a config.ValidationErrors. A nil map
// in known skips the check of that kind of name.
func Compile(rules []config.Rule, known Known) (*Table, error) {
	var errs config.ValidationErrors
	add := func(key, format string, args ...any) {
		errs = append(errs, config.FieldError{Key: key, Reason: fmt.Sprintf(format, args...)})
	}
	t := &Table{}
	names := map[string]int{}
	for i, rc := range rules {
		key := fmt.Sprintf("routes[%d]", i)
		r := &rule{name: strings.TrimSpace(rc.Name), cont: rc.Continue}
		switch {
		case r.name == "":
			add(key+".name", "required: every route needs a name (it is logged and sent to webhooks)")
		case strings.ContainsFunc(r.name, func(c rune) bool { return !unicode.IsPrint(c) || unicode.IsSpace(c) }):
			add(key+".name", "%q must not contain spaces or control characters", r.name)
		default:
			if j, dup := names[strings.ToLower(r.name)]; dup {
				add(key+".name", "%q is already the name of routes[%d]", r.name, j)
			} else {
				names[strings.ToLower(r.name)] = i
			}
		}
		m := rc.Match
		mk := key + ".match."
		r.rcpt = compileGlobs(add, mk+"rcpt", m.Rcpt, false)
		r.mailFrom = compileGlobs(add, mk+"mail_from", m.MailFrom, true)
		r.from = compileGlobs(add, mk+"from", m.From, false)
		for _, name := range sortedKeys(m.Header) {
			hk := mk + "header." + name
			if !validFieldName(name) {
				add(hk, "%q is not a header field name (RFC 5322 §3.6.8)", name)
				continue
			}
			if re, err := compileRegex(m.Header[name]); err != nil {
				add(hk, "%v", err)
			} else {
				r.header = append(r.header, headerMatcher{name: name, re: re})
			}
		}
		if m.Subject != "" {
			if re, err := compileRegex(m.Subject); err != nil {
				add(mk+"subject", "%v", err)
			} else {
				r.subject = re
			}
		}
		for _, k := range sortedKeys(m.Auth) {
			ak := mk + "auth." + k
			allowed, ok := authResults[strings.ToLower(k)]
			if !ok {
				add(ak, "unknown auth key %q; want spf, dkim, dmarc or dmarc_policy", k)
				continue
			}
			am := authMatcher{key: strings.ToLower(k), src: m.Auth[k]}
			for _, v := range strings.Split(m.Auth[k], ",") {
				v = strings.ToLower(strings.TrimSpace(v))
				if !slices.Contains(allowed, v) {
					add(ak, "%q is not a %s result; want one of %s (comma-separated for alternatives)",
						v, k, strings.Join(allowed, ", "))
					continue
				}
				am.want = append(am.want, v)
			}
			r.auth = append(r.auth, am)
		}
		r.autoSub, r.quar = m.AutoSubmitted, m.Quarantine
		r.reply = compileReply(add, mk+"reply", m.Reply)
		r.spam = compileSpam(add, mk, m)

		if len(rc.Actions) == 0 {
			add(key+".actions", "at least one action is required (webhook, mailbox, forward, reject or drop)")
		}
		for j, ac := range rc.Actions {
			if a, ok := compileAction(add, fmt.Sprintf("%s.actions[%d]", key, j), ac, known); ok {
				r.actions = append(r.actions, a)
			}
		}
		t.rules = append(t.rules, r)
	}
	if len(errs) > 0 {
		return nil, errs
	}
	return t, nil
}

type addFunc func(key, format string, args ...any)

// compileGlobs compiles a config.StringList of address globs. A single glob is
// reported under the key itself, as it is usually written as a plain string.
func compileGlobs(add addFunc, key string, list config.StringList, allowNull bool) []glob {
	var out []glob
	for i, s := range list {
		k := key
		if len(list) > 1 {
			k = fmt.Sprintf("%s[%d]", key, i)
		}
		g, err := compileGlob(s, allowNull)
		if err != nil {
			add(k, "bad glob: %v", err)
			continue
		}
		out = append(out, g)
	}
	return out
}

func compileRegex(s string) (*regexp.Regexp, error) {
	if len(s) > maxRegexLen {
		return nil, fmt.Errorf("bad regex: longer than %d bytes", maxRegexLen)
	}
	re, err := regexp.Compile(s)
	if err != nil {
		return nil, fmt.Errorf("bad regex: %w", err)
	}
	return re, nil
}

// validFieldName reports whether s is a header field name: printable US-ASCII
// except ':' (RFC 5322 §3.6.8).
func validFieldName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < 33 || s[i] > 126 || s[i] == ':' {
			return false
		}
	}
	return true
}

// compileAction checks one action. ok is false when it has a problem.
func compileAction(add addFunc, key string, ac config.RuleAction, known Known) (Action, bool) {
	var kinds []string
	if ac.Webhook != "" {
		kinds = append(kinds, "webhook")
	}
	if ac.Mailbox != "" {
		kinds = append(kinds, "mailbox")
	}
	if ac.Forward != nil {
		kinds = append(kinds, "forward")
	}
	if ac.Reject != "" {
		kinds = append(kinds, "reject")
	}
	if ac.Drop {
		kinds = append(kinds, "drop")
	}
	bad := false
	if ac.Folder != "" && ac.Mailbox == "" {
		add(key+".folder", "folder needs mailbox in the same action")
		bad = true
	}
	if ac.ForwardAutoSubmitted && ac.Forward == nil {
		add(key+".forward_auto_submitted", "forward_auto_submitted needs forward in the same action")
		bad = true
	}
	switch len(kinds) {
	case 0:
		add(key, "set one of webhook, mailbox, forward, reject or drop")
		return Action{}, false
	case 1:
	default:
		add(key, "sets %s; an action does exactly one thing (write one action per list item)", strings.Join(kinds, " and "))
		return Action{}, false
	}
	var a Action
	switch kinds[0] {
	case "webhook":
		a = Action{Kind: ActWebhook, Webhook: ac.Webhook}
		if known.Webhooks != nil && !known.Webhooks[ac.Webhook] {
			add(key+".webhook", "webhook %q is not defined under webhooks", ac.Webhook)
			bad = true
		}
	case "mailbox":
		a = Action{Kind: ActMailbox, Mailbox: ac.Mailbox, Folder: ac.Folder}
		if known.Users != nil && !known.Users[ac.Mailbox] {
			add(key+".mailbox", "user %q is not defined under mailbox.users", ac.Mailbox)
			bad = true
		}
		if strings.ContainsFunc(ac.Folder, unicode.IsControl) {
			add(key+".folder", "must not contain control characters")
			bad = true
		}
	case "forward":
		a = Action{Kind: ActForward, ForwardAutoSubmitted: ac.ForwardAutoSubmitted}
		if len(ac.Forward) == 0 {
			add(key+".forward", "list at least one address to forward to")
			bad = true
		}
		for i, s := range ac.Forward {
			s = strings.TrimSpace(s)
			if err := checkForward(s); err != nil {
				add(fmt.Sprintf("%s.forward[%d]", key, i), "%v", err)
				bad = true
				continue
			}
			a.Forward = append(a.Forward, s)
		}
	case "reject":
		code, enh, text, err := ParseReply(ac.Reject)
		if err != nil {
			add(key+".reject", "%v", err)
			bad = true
		}
		a = Action{Kind: ActReject, RejectCode: code, RejectEnhanced: enh, RejectText: text}
	case "drop":
		a = Action{Kind: ActDrop}
	}
	return a, !bad
}

// checkForward checks a forward destination: a plain local@domain address
// (RFC 5321 §4.1.2 Mailbox) with none of the routing syntax that could make
// the relay send elsewhere than it says.
func checkForward(s string) error {
	a := splitAddr(s)
	if a.null || a.opaque || strings.ContainsAny(s, "<>") {
		return fmt.Errorf("%q is not a valid address (want user@example.org)", s)
	}
	for _, label := range strings.Split(a.domain, ".") {
		if label == "" || strings.HasPrefix(label, "-") || strings.HasSuffix(label, "-") || len(label) > 63 {
			return fmt.Errorf("%q: %q is not a valid domain", s, a.domain)
		}
	}
	return nil
}

// ParseReply parses an SMTP reply as a reject action writes it: a code 4xx or
// 5xx (RFC 5321 §4.2, second digit 0-5), an enhanced status code whose class
// agrees with it (RFC 3463 §2, RFC 2034), and a text, like
// "550 5.1.1 no such user". The text must be printable: it goes on the wire.
func ParseReply(s string) (code int, enhanced [3]int, text string, err error) {
	fail := func(format string, args ...any) (int, [3]int, string, error) {
		return 0, [3]int{}, "", fmt.Errorf("bad reply %q: "+format+` (want like "550 5.1.1 text")`, append([]any{s}, args...)...)
	}
	parts := strings.SplitN(strings.TrimSpace(s), " ", 3)
	if len(parts) < 3 || strings.TrimSpace(parts[2]) == "" {
		return fail("need a code, an enhanced code and a text")
	}
	c := parts[0]
	if len(c) != 3 || (c[0] != '4' && c[0] != '5') || c[1] < '0' || c[1] > '5' || c[2] < '0' || c[2] > '9' {
		return fail("code %q is not 4xx or 5xx", c)
	}
	code, _ = strconv.Atoi(c)
	ep := strings.Split(parts[1], ".")
	if len(ep) != 3 {
		return fail("enhanced code %q is not class.subject.detail", parts[1])
	}
	for i, p := range ep {
		n, perr := strconv.Atoi(p)
		if perr != nil || len(p) == 0 || len(p) > 3 || n < 0 || p[0] == '+' || p[0] == '-' {
			return fail("enhanced code %q is not class.subject.detail", parts[1])
		}
		enhanced[i] = n
	}
	if enhanced[0] != int(c[0]-'0') {
		return fail("enhanced class %d does not match code %s", enhanced[0], c)
	}
	text = strings.TrimSpace(parts[2])
	if len(text) > 400 {
		return fail("text longer than 400 bytes")
	}
	for i := 0; i < len(text); i++ {
		if text[i] < 32 || text[i] > 126 {
			return fail("text must be printable US-ASCII")
		}
	}
	return code, enhanced, text, nil
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// Rules returns the rule names in order, for check-config.
func (t *Table) Rules() []string {
	names := make([]string, len(t.rules))
	for i, r := range t.rules {
		names[i] = r.name
	}
	return names
}
