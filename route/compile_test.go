package route

import (
	"errors"
	"strings"
	"testing"

	"github.com/mailhook/mailhook/config"
	"github.com/mailhook/mailhook/inbound"
)

var testKnown = Known{
	Webhooks: map[string]bool{"tickets": true},
	Users:    map[string]bool{"support": true},
}

// okRule is a valid rule that tests change one thing in.
func okRule(name string) config.Rule {
	return config.Rule{Name: name, Match: config.RuleMatch{Rcpt: config.StringList{"support@example.test"}},
		Actions: []config.RuleAction{{Webhook: "tickets"}}}
}

func TestCompileErrors(t *testing.T) {
	tests := []struct {
		name   string
		edit   func(r *config.Rule)
		key    string
		reason string // a substring of the reason
	}{
		{"missing name", func(r *config.Rule) { r.Name = " " }, "routes[1].name", "required"},
		{"name with space", func(r *config.Rule) { r.Name = "a b" }, "routes[1].name", "spaces"},
		{"duplicate name", func(r *config.Rule) { r.Name = "First" }, "routes[1].name", "routes[0]"},
		{"no actions", func(r *config.Rule) { r.Actions = nil }, "routes[1].actions", "at least one"},
		{"action with no kind", func(r *config.Rule) { r.Actions = []config.RuleAction{{}} }, "routes[1].actions[0]", "set one of"},
		{"action with two kinds", func(r *config.Rule) {
			r.Actions = []config.RuleAction{{Webhook: "tickets"}, {Webhook: "tickets", Mailbox: "support"}}
		}, "routes[1].actions[1]", "webhook and mailbox"},
		{"undefined webhook", func(r *config.Rule) { r.Actions[0].Webhook = "nope" }, "routes[1].actions[0].webhook", `"nope" is not defined`},
		{"undefined user", func(r *config.Rule) { r.Actions = []config.RuleAction{{Mailbox: "bob"}} }, "routes[1].actions[0].mailbox", `"bob" is not defined`},
		{"folder without mailbox", func(r *config.Rule) { r.Actions[0].Folder = "Inbox" }, "routes[1].actions[0].folder", "needs mailbox"},
		{"folder with control", func(r *config.Rule) { r.Actions = []config.RuleAction{{Mailbox: "support", Folder: "a\nb"}} }, "routes[1].actions[0].folder", "control"},
		{"forward_auto_submitted without forward", func(r *config.Rule) { r.Actions[0].ForwardAutoSubmitted = true }, "routes[1].actions[0].forward_auto_submitted", "needs forward"},
		{"forward empty", func(r *config.Rule) { r.Actions = []config.RuleAction{{Forward: []string{}}} }, "routes[1].actions[0].forward", "at least one address"},
		{"forward bad address", func(r *config.Rule) {
			r.Actions = []config.RuleAction{{Forward: []string{"ok@example.org", "not an address"}}}
		}, "routes[1].actions[0].forward[1]", "not a valid address"},
		{"forward percent hack", func(r *config.Rule) { r.Actions = []config.RuleAction{{Forward: []string{"a%b@example.org"}}} }, "routes[1].actions[0].forward[0]", "not a valid"},
		{"forward bad domain", func(r *config.Rule) { r.Actions = []config.RuleAction{{Forward: []string{"a@-x.example.org"}}} }, "routes[1].actions[0].forward[0]", "not a valid domain"},
		{"reject not a reply", func(r *config.Rule) { r.Actions = []config.RuleAction{{Reject: "go away"}} }, "routes[1].actions[0].reject", "bad reply"},
		{"reject class mismatch", func(r *config.Rule) { r.Actions = []config.RuleAction{{Reject: "450 5.7.1 later"}} }, "routes[1].actions[0].reject", "does not match"},
		{"bad rcpt glob", func(r *config.Rule) { r.Match.Rcpt = config.StringList{"example.test"} }, "routes[1].match.rcpt", "bad glob"},
		{"bad rcpt glob in list", func(r *config.Rule) { r.Match.Rcpt = config.StringList{"a@example.test", "b%c@example.test"} }, "routes[1].match.rcpt[1]", "bad glob"},
		{"null glob in rcpt", func(r *config.Rule) { r.Match.Rcpt = config.StringList{"<>"} }, "routes[1].match.rcpt", "only meaningful in mail_from"},
		{"bad mail_from glob", func(r *config.Rule) { r.Match.MailFrom = config.StringList{"a@@b"} }, "routes[1].match.mail_from", "bad glob"},
		{"bad from glob", func(r *config.Rule) { r.Match.From = config.StringList{"*"} }, "routes[1].match.from", "bad glob"},
		{"bad header regex", func(r *config.Rule) { r.Match.Header = map[string]string{"Subject": "(?i)invoice("} }, "routes[1].match.header.Subject", "bad regex"},
		{"bad header name", func(r *config.Rule) { r.Match.Header = map[string]string{"X Bad:": "x"} }, "routes[1].match.header.X Bad:", "not a header field name"},
		{"bad subject regex", func(r *config.Rule) { r.Match.Subject = "[" }, "routes[1].match.subject", "bad regex"},
		{"unknown auth key", func(r *config.Rule) { r.Match.Auth = map[string]string{"arc": "pass"} }, "routes[1].match.auth.arc", "unknown auth key"},
		{"bad auth value", func(r *config.Rule) { r.Match.Auth = map[string]string{"dmarc": "pass,passs"} }, "routes[1].match.auth.dmarc", `"passs" is not a dmarc result`},
		{"bad dmarc_policy value", func(r *config.Rule) { r.Match.Auth = map[string]string{"dmarc_policy": "pass"} }, "routes[1].match.auth.dmarc_policy", "not a dmarc_policy result"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rules := []config.Rule{okRule("first"), okRule("second")}
			tt.edit(&rules[1])
			tab, err := Compile(rules, testKnown)
			if err == nil {
				t.Fatalf("Compile = %v, nil error; want an error at %s", tab.Rules(), tt.key)
			}
			var verrs config.ValidationErrors
			if !errors.As(err, &verrs) {
				t.Fatalf("Compile error %T is not config.ValidationErrors", err)
			}
			if len(verrs) != 1 {
				t.Fatalf("Compile errors = %q, want exactly one", err)
			}
			if verrs[0].Key != tt.key || !strings.Contains(verrs[0].Reason, tt.reason) {
				t.Errorf("Compile error = %q, want key %q with reason containing %q", verrs[0], tt.key, tt.reason)
			}
		})
	}
}

func TestCompileReportsEverything(t *testing.T) {
	rules := []config.Rule{
		{Name: "", Match: config.RuleMatch{Subject: "("}, Actions: nil},
		{Name: "b", Match: config.RuleMatch{Rcpt: config.StringList{"x"}}, Actions: []config.RuleAction{{Webhook: "nope"}}},
	}
	_, err := Compile(rules, testKnown)
	var verrs config.ValidationErrors
	if !errors.As(err, &verrs) {
		t.Fatalf("Compile error = %v, want config.ValidationErrors", err)
	}
	var keys []string
	for _, e := range verrs {
		keys = append(keys, e.Key)
	}
	want := "routes[0].name routes[0].match.subject routes[0].actions routes[1].match.rcpt routes[1].actions[0].webhook"
	if got := strings.Join(keys, " "); got != want {
		t.Errorf("Compile error keys = %s, want %s", got, want)
	}
	if n := strings.Count(err.Error(), "\n"); n != len(verrs)-1 {
		t.Errorf("Error() has %d newlines, want one line per problem:\n%s", n, err)
	}
}

func TestCompileValid(t *testing.T) {
	yes := true
	rules := []config.Rule{
		{Name: "tickets", Match: config.RuleMatch{Rcpt: config.StringList{"support@example.test"}},
			Actions: []config.RuleAction{{Webhook: "tickets"}, {Mailbox: "support", Folder: "Tickets"}}},
		{Name: "bounces", Match: config.RuleMatch{MailFrom: config.StringList{"<>"}, AutoSubmitted: &yes}, Actions: []config.RuleAction{{Drop: true}}},
		{Name: "auth", Match: config.RuleMatch{Auth: map[string]string{"DMARC": " Pass , none", "spf": "softfail"}},
			Actions: []config.RuleAction{{Forward: []string{"ops@example.org"}, ForwardAutoSubmitted: true}}},
		{Name: "refuse", Actions: []config.RuleAction{{Reject: "550 5.1.1 no such user"}}},
	}
	tab, err := Compile(rules, testKnown)
	if err != nil {
		t.Fatalf("Compile = %v", err)
	}
	if got := strings.Join(tab.Rules(), ","); got != "tickets,bounces,auth,refuse" {
		t.Errorf("Rules() = %s", got)
	}
	// Nil Known maps skip the name checks.
	if _, err := Compile([]config.Rule{{Name: "x", Actions: []config.RuleAction{{Webhook: "w"}, {Mailbox: "u"}}}}, Known{}); err != nil {
		t.Errorf("Compile with nil Known = %v, want nil", err)
	}
	if tab, err := Compile(nil, testKnown); err != nil || tab.Accepts("a@example.test") {
		t.Errorf("Compile(nil) = %v; want an empty table that accepts nothing", err)
	}
}

func TestParseReply(t *testing.T) {
	tests := []struct {
		in       string
		code     int
		enhanced [3]int
		text     string
		ok       bool
	}{
		{"550 5.1.1 no such user", 550, [3]int{5, 1, 1}, "no such user", true},
		{"  554 5.7.1   policy: go away  ", 554, [3]int{5, 7, 1}, "policy: go away", true},
		{"451 4.3.0 try later", 451, [3]int{4, 3, 0}, "try later", true},
		{"550 5.100.999 big", 550, [3]int{5, 100, 999}, "big", true},
		{"550 5.1.1", 0, [3]int{}, "", false},
		{"550 no such user here", 0, [3]int{}, "", false},
		{"250 2.0.0 ok", 0, [3]int{}, "", false},
		{"599 5.1.1 bad second digit is ok? no", 0, [3]int{}, "", false},
		{"55 5.1.1 short", 0, [3]int{}, "", false},
		{"5500 5.1.1 long", 0, [3]int{}, "", false},
		{"550 4.1.1 class", 0, [3]int{}, "", false},
		{"450 5.1.1 class", 0, [3]int{}, "", false},
		{"550 5.1 two", 0, [3]int{}, "", false},
		{"550 5.1.1000 four digits", 0, [3]int{}, "", false},
		{"550 5.-1.1 sign", 0, [3]int{}, "", false},
		{"550 5..1 empty", 0, [3]int{}, "", false},
		{"550 5.1.1 line\r\n250 smuggled", 0, [3]int{}, "", false},
		{"550 5.1.1 " + strings.Repeat("x", 401), 0, [3]int{}, "", false},
		{"", 0, [3]int{}, "", false},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			code, enh, text, err := ParseReply(tt.in)
			if (err == nil) != tt.ok {
				t.Fatalf("ParseReply(%q) error = %v, want ok=%v", tt.in, err, tt.ok)
			}
			if code != tt.code || enh != tt.enhanced || text != tt.text {
				t.Errorf("ParseReply(%q) = %d %v %q, want %d %v %q", tt.in, code, enh, text, tt.code, tt.enhanced, tt.text)
			}
		})
	}
}

// FuzzCompile checks that Compile never panics and that a table it accepts
// can decide without panicking.
func FuzzCompile(f *testing.F) {
	f.Add("support@example.test", "", "(?i)invoice", "dmarc", "pass,none", "550 5.1.1 no")
	f.Add("*@*.example.test", "<>", "", "spf", "softfail", "451 4.7.1 later")
	f.Add("x", "a@@b", "(", "arc", "pass", "go away")
	f.Fuzz(func(t *testing.T, rcpt, mailFrom, subject, authKey, authVal, reject string) {
		rules := []config.Rule{
			{Name: "a", Match: config.RuleMatch{Rcpt: config.StringList{rcpt}, MailFrom: config.StringList{mailFrom}, Subject: subject,
				Auth: map[string]string{authKey: authVal}}, Actions: []config.RuleAction{{Reject: reject}}, Continue: true},
			{Name: "b", Actions: []config.RuleAction{{Drop: true}}},
		}
		tab, err := Compile(rules, Known{})
		if err != nil {
			if err.Error() == "" {
				t.Fatal("empty error text")
			}
			return
		}
		d := tab.Decide(&inbound.Mail{Envelope: inbound.Envelope{MailFrom: mailFrom}}, rcpt)
		if !d.Matched() {
			t.Fatalf("Decide matched nothing, but rule b matches everything")
		}
		_ = tab.Accepts(rcpt)
	})
}
