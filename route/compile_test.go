package route

import (
	"errors"
	"strings"
	"testing"

	"github.com/go-viper/mapstructure/v2"

	"github.com/mailhook/mailhook/inbound"
)

var testKnown = Known{
	Webhooks: map[string]bool{"tickets": true},
	Users:    map[string]bool{"support": true},
}

// okRule is a valid rule that tests change one thing in.
func okRule(name string) RuleConfig {
	return RuleConfig{Name: name, Match: MatchConfig{Rcpt: StringList{"support@example.test"}},
		Actions: []ActionConfig{{Webhook: "tickets"}}}
}

func TestCompileErrors(t *testing.T) {
	tests := []struct {
		name   string
		edit   func(r *RuleConfig)
		key    string
		reason string // a substring of the reason
	}{
		{"missing name", func(r *RuleConfig) { r.Name = " " }, "routes[1].name", "required"},
		{"name with space", func(r *RuleConfig) { r.Name = "a b" }, "routes[1].name", "spaces"},
		{"duplicate name", func(r *RuleConfig) { r.Name = "First" }, "routes[1].name", "routes[0]"},
		{"no actions", func(r *RuleConfig) { r.Actions = nil }, "routes[1].actions", "at least one"},
		{"action with no kind", func(r *RuleConfig) { r.Actions = []ActionConfig{{}} }, "routes[1].actions[0]", "set one of"},
		{"action with two kinds", func(r *RuleConfig) {
			r.Actions = []ActionConfig{{Webhook: "tickets"}, {Webhook: "tickets", Mailbox: "support"}}
		}, "routes[1].actions[1]", "webhook and mailbox"},
		{"undefined webhook", func(r *RuleConfig) { r.Actions[0].Webhook = "nope" }, "routes[1].actions[0].webhook", `"nope" is not defined`},
		{"undefined user", func(r *RuleConfig) { r.Actions = []ActionConfig{{Mailbox: "bob"}} }, "routes[1].actions[0].mailbox", `"bob" is not defined`},
		{"folder without mailbox", func(r *RuleConfig) { r.Actions[0].Folder = "Inbox" }, "routes[1].actions[0].folder", "needs mailbox"},
		{"folder with control", func(r *RuleConfig) { r.Actions = []ActionConfig{{Mailbox: "support", Folder: "a\nb"}} }, "routes[1].actions[0].folder", "control"},
		{"forward_auto_submitted without forward", func(r *RuleConfig) { r.Actions[0].ForwardAutoSubmitted = true }, "routes[1].actions[0].forward_auto_submitted", "needs forward"},
		{"forward empty", func(r *RuleConfig) { r.Actions = []ActionConfig{{Forward: []string{}}} }, "routes[1].actions[0].forward", "at least one address"},
		{"forward bad address", func(r *RuleConfig) {
			r.Actions = []ActionConfig{{Forward: []string{"ok@example.org", "not an address"}}}
		}, "routes[1].actions[0].forward[1]", "not a valid address"},
		{"forward percent hack", func(r *RuleConfig) { r.Actions = []ActionConfig{{Forward: []string{"a%b@example.org"}}} }, "routes[1].actions[0].forward[0]", "not a valid"},
		{"forward bad domain", func(r *RuleConfig) { r.Actions = []ActionConfig{{Forward: []string{"a@-x.example.org"}}} }, "routes[1].actions[0].forward[0]", "not a valid domain"},
		{"reject not a reply", func(r *RuleConfig) { r.Actions = []ActionConfig{{Reject: "go away"}} }, "routes[1].actions[0].reject", "bad reply"},
		{"reject class mismatch", func(r *RuleConfig) { r.Actions = []ActionConfig{{Reject: "450 5.7.1 later"}} }, "routes[1].actions[0].reject", "does not match"},
		{"bad rcpt glob", func(r *RuleConfig) { r.Match.Rcpt = StringList{"example.test"} }, "routes[1].match.rcpt", "bad glob"},
		{"bad rcpt glob in list", func(r *RuleConfig) { r.Match.Rcpt = StringList{"a@example.test", "b%c@example.test"} }, "routes[1].match.rcpt[1]", "bad glob"},
		{"null glob in rcpt", func(r *RuleConfig) { r.Match.Rcpt = StringList{"<>"} }, "routes[1].match.rcpt", "only meaningful in mail_from"},
		{"bad mail_from glob", func(r *RuleConfig) { r.Match.MailFrom = StringList{"a@@b"} }, "routes[1].match.mail_from", "bad glob"},
		{"bad from glob", func(r *RuleConfig) { r.Match.From = StringList{"*"} }, "routes[1].match.from", "bad glob"},
		{"bad header regex", func(r *RuleConfig) { r.Match.Header = map[string]string{"Subject": "(?i)invoice("} }, "routes[1].match.header.Subject", "bad regex"},
		{"bad header name", func(r *RuleConfig) { r.Match.Header = map[string]string{"X Bad:": "x"} }, "routes[1].match.header.X Bad:", "not a header field name"},
		{"bad subject regex", func(r *RuleConfig) { r.Match.Subject = "[" }, "routes[1].match.subject", "bad regex"},
		{"unknown auth key", func(r *RuleConfig) { r.Match.Auth = map[string]string{"arc": "pass"} }, "routes[1].match.auth.arc", "unknown auth key"},
		{"bad auth value", func(r *RuleConfig) { r.Match.Auth = map[string]string{"dmarc": "pass,passs"} }, "routes[1].match.auth.dmarc", `"passs" is not a dmarc result`},
		{"bad dmarc_policy value", func(r *RuleConfig) { r.Match.Auth = map[string]string{"dmarc_policy": "pass"} }, "routes[1].match.auth.dmarc_policy", "not a dmarc_policy result"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rules := []RuleConfig{okRule("first"), okRule("second")}
			tt.edit(&rules[1])
			tab, err := Compile(rules, testKnown)
			if err == nil {
				t.Fatalf("Compile = %v, nil error; want an error at %s", tab.Rules(), tt.key)
			}
			var verrs ValidationErrors
			if !errors.As(err, &verrs) {
				t.Fatalf("Compile error %T is not ValidationErrors", err)
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
	rules := []RuleConfig{
		{Name: "", Match: MatchConfig{Subject: "("}, Actions: nil},
		{Name: "b", Match: MatchConfig{Rcpt: StringList{"x"}}, Actions: []ActionConfig{{Webhook: "nope"}}},
	}
	_, err := Compile(rules, testKnown)
	var verrs ValidationErrors
	if !errors.As(err, &verrs) {
		t.Fatalf("Compile error = %v, want ValidationErrors", err)
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
	rules := []RuleConfig{
		{Name: "tickets", Match: MatchConfig{Rcpt: StringList{"support@example.test"}},
			Actions: []ActionConfig{{Webhook: "tickets"}, {Mailbox: "support", Folder: "Tickets"}}},
		{Name: "bounces", Match: MatchConfig{MailFrom: StringList{"<>"}, AutoSubmitted: &yes}, Actions: []ActionConfig{{Drop: true}}},
		{Name: "auth", Match: MatchConfig{Auth: map[string]string{"DMARC": " Pass , none", "spf": "softfail"}},
			Actions: []ActionConfig{{Forward: []string{"ops@example.org"}, ForwardAutoSubmitted: true}}},
		{Name: "refuse", Actions: []ActionConfig{{Reject: "550 5.1.1 no such user"}}},
	}
	tab, err := Compile(rules, testKnown)
	if err != nil {
		t.Fatalf("Compile = %v", err)
	}
	if got := strings.Join(tab.Rules(), ","); got != "tickets,bounces,auth,refuse" {
		t.Errorf("Rules() = %s", got)
	}
	// Nil Known maps skip the name checks.
	if _, err := Compile([]RuleConfig{{Name: "x", Actions: []ActionConfig{{Webhook: "w"}, {Mailbox: "u"}}}}, Known{}); err != nil {
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

func TestStringListHook(t *testing.T) {
	for _, in := range []map[string]any{
		{"routes": []any{map[string]any{"name": "a", "match": map[string]any{"rcpt": "x@example.test", "mail_from": ""}}}},
		{"routes": []any{map[string]any{"name": "a", "match": map[string]any{"rcpt": []any{"x@example.test"}, "mail_from": []any{""}}}}},
	} {
		var out struct {
			Routes []RuleConfig `mapstructure:"routes"`
		}
		dec, err := mapstructure.NewDecoder(&mapstructure.DecoderConfig{
			Result:      &out,
			ErrorUnused: true,
			DecodeHook: mapstructure.ComposeDecodeHookFunc(
				mapstructure.StringToSliceHookFunc(","), StringListHook()),
		})
		if err != nil {
			t.Fatal(err)
		}
		if err := dec.Decode(in); err != nil {
			t.Fatalf("Decode(%v) = %v", in, err)
		}
		m := out.Routes[0].Match
		if len(m.Rcpt) != 1 || m.Rcpt[0] != "x@example.test" || len(m.MailFrom) != 1 || m.MailFrom[0] != "" {
			t.Errorf("Decode(%v) = rcpt %q mail_from %q", in, m.Rcpt, m.MailFrom)
		}
	}
}

// FuzzCompile checks that Compile never panics and that a table it accepts
// can decide without panicking.
func FuzzCompile(f *testing.F) {
	f.Add("support@example.test", "", "(?i)invoice", "dmarc", "pass,none", "550 5.1.1 no")
	f.Add("*@*.example.test", "<>", "", "spf", "softfail", "451 4.7.1 later")
	f.Add("x", "a@@b", "(", "arc", "pass", "go away")
	f.Fuzz(func(t *testing.T, rcpt, mailFrom, subject, authKey, authVal, reject string) {
		rules := []RuleConfig{
			{Name: "a", Match: MatchConfig{Rcpt: StringList{rcpt}, MailFrom: StringList{mailFrom}, Subject: subject,
				Auth: map[string]string{authKey: authVal}}, Actions: []ActionConfig{{Reject: reject}}, Continue: true},
			{Name: "b", Actions: []ActionConfig{{Drop: true}}},
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
