package route

import (
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/mailhook/mailhook/inbound"
	"github.com/mailhook/mailhook/parse"
)

func mustCompile(t testing.TB, rules []RuleConfig) *Table {
	t.Helper()
	tab, err := Compile(rules, Known{})
	if err != nil {
		t.Fatalf("Compile = %v", err)
	}
	return tab
}

// sample is a message that the matcher tests vary.
func sample() *inbound.Mail {
	return &inbound.Mail{
		Envelope: inbound.Envelope{MailFrom: "alice+lists@sender.example", RcptTo: []string{"support@example.test"}},
		Auth: &inbound.Auth{
			SPF:   inbound.SPFResult{Result: "pass", Domain: "sender.example"},
			DKIM:  []inbound.DKIMResult{{Result: "fail"}, {Result: "pass"}},
			DMARC: inbound.DMARCResult{Result: "fail", Policy: "quarantine"},
			// Quarantine as the verifier sets it for a p=quarantine failure.
			Quarantine: true,
		},
		Message: &parse.Message{
			Subject: "Your Invoice 42",
			From:    &parse.Address{Name: "Alice", Address: "Alice@Sender.Example"},
			Headers: [][2]string{
				{"From", "Alice <Alice@Sender.Example>"},
				{"Subject", "Your Invoice 42"},
				{"X-Tag", "first"},
				{"x-tag", "second"},
				{"List-Id", "<news.sender.example>"},
			},
		},
	}
}

func TestDecideMatchers(t *testing.T) {
	yes, no := true, false
	tests := []struct {
		name  string
		match MatchConfig
		edit  func(m *inbound.Mail) // optional change to the sample
		want  bool
	}{
		{"empty matches all", MatchConfig{}, nil, true},
		{"empty matches nil message", MatchConfig{}, func(m *inbound.Mail) { m.Message, m.Auth = nil, nil }, true},
		{"rcpt", MatchConfig{Rcpt: StringList{"support@example.test"}}, nil, true},
		{"rcpt any of list", MatchConfig{Rcpt: StringList{"sales@example.test", "support@example.test"}}, nil, true},
		{"rcpt no", MatchConfig{Rcpt: StringList{"sales@example.test"}}, nil, false},
		{"mail_from plus", MatchConfig{MailFrom: StringList{"alice@sender.example"}}, nil, true},
		{"mail_from no", MatchConfig{MailFrom: StringList{"bob@sender.example"}}, nil, false},
		{"mail_from null", MatchConfig{MailFrom: StringList{"<>"}}, func(m *inbound.Mail) { m.Envelope.MailFrom = "" }, true},
		{"mail_from null vs address", MatchConfig{MailFrom: StringList{""}}, nil, false},
		{"mail_from wildcard vs null", MatchConfig{MailFrom: StringList{"*@*"}}, func(m *inbound.Mail) { m.Envelope.MailFrom = "" }, false},
		{"from", MatchConfig{From: StringList{"*@sender.example"}}, nil, true},
		{"from no", MatchConfig{From: StringList{"*@other.example"}}, nil, false},
		{"from nil address", MatchConfig{From: StringList{"*@*"}}, func(m *inbound.Mail) { m.Message.From = nil }, false},
		{"from nil message", MatchConfig{From: StringList{"*@*"}}, func(m *inbound.Mail) { m.Message = nil }, false},
		{"header", MatchConfig{Header: map[string]string{"list-id": `news\.sender`}}, nil, true},
		{"header any value", MatchConfig{Header: map[string]string{"X-TAG": "^second$"}}, nil, true},
		{"header all must match", MatchConfig{Header: map[string]string{"X-Tag": "first", "List-Id": "nope"}}, nil, false},
		{"header absent", MatchConfig{Header: map[string]string{"X-Missing": ".*"}}, nil, false},
		{"header nil message", MatchConfig{Header: map[string]string{"Subject": ".*"}}, func(m *inbound.Mail) { m.Message = nil }, false},
		{"subject", MatchConfig{Subject: "(?i)invoice"}, nil, true},
		{"subject case", MatchConfig{Subject: "invoice"}, nil, false},
		{"subject nil message", MatchConfig{Subject: ".*"}, func(m *inbound.Mail) { m.Message = nil }, false},
		{"auth spf", MatchConfig{Auth: map[string]string{"spf": "pass"}}, nil, true},
		{"auth dkim any pass", MatchConfig{Auth: map[string]string{"dkim": "pass"}}, nil, true},
		{"auth dmarc alternatives", MatchConfig{Auth: map[string]string{"dmarc": "pass,fail"}}, nil, true},
		{"auth dmarc no", MatchConfig{Auth: map[string]string{"dmarc": "pass,none"}}, nil, false},
		{"auth dmarc_policy", MatchConfig{Auth: map[string]string{"dmarc_policy": "quarantine"}}, nil, true},
		{"auth all keys must match", MatchConfig{Auth: map[string]string{"spf": "pass", "dmarc": "pass"}}, nil, false},
		{"auth empty is none", MatchConfig{Auth: map[string]string{"dmarc_policy": "none"}}, func(m *inbound.Mail) { m.Auth.DMARC.Policy = "" }, true},
		{"auth nil", MatchConfig{Auth: map[string]string{"spf": "none"}}, func(m *inbound.Mail) { m.Auth = nil }, false},
		{"auto_submitted false", MatchConfig{AutoSubmitted: &no}, nil, true},
		{"auto_submitted true", MatchConfig{AutoSubmitted: &yes}, nil, false},
		{"auto_submitted set", MatchConfig{AutoSubmitted: &yes}, func(m *inbound.Mail) { m.Message.AutoSubmitted = true }, true},
		{"auto_submitted nil message", MatchConfig{AutoSubmitted: &no}, func(m *inbound.Mail) { m.Message = nil }, false},
		{"quarantine", MatchConfig{Quarantine: &yes}, nil, true},
		{"quarantine false", MatchConfig{Quarantine: &no}, nil, false},
		{"quarantine nil auth", MatchConfig{Quarantine: &no}, func(m *inbound.Mail) { m.Auth = nil }, false},
		{"all together", MatchConfig{Rcpt: StringList{"support@*"}, MailFrom: StringList{"*@sender.example"},
			From: StringList{"alice@*"}, Header: map[string]string{"X-Tag": "sec"}, Subject: "42$",
			Auth: map[string]string{"spf": "pass"}, AutoSubmitted: &no, Quarantine: &yes}, nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tab := mustCompile(t, []RuleConfig{{Name: "r", Match: tt.match, Actions: []ActionConfig{{Drop: true}}}})
			m := sample()
			if tt.edit != nil {
				tt.edit(m)
			}
			d := tab.Decide(m, "support@example.test")
			if d.Matched() != tt.want {
				t.Errorf("Decide(...).Matched() = %v, want %v (why %q)", d.Matched(), tt.want, d.Why)
			}
		})
	}
}

func TestDecideOrder(t *testing.T) {
	tab := mustCompile(t, []RuleConfig{
		{Name: "log", Continue: true, Actions: []ActionConfig{{Webhook: "audit"}}},
		{Name: "tickets", Match: MatchConfig{Rcpt: StringList{"support@example.test"}, Subject: "(?i)invoice"},
			Actions: []ActionConfig{{Webhook: "tickets"}, {Mailbox: "support", Folder: "Invoices"}}},
		{Name: "support", Match: MatchConfig{Rcpt: StringList{"support@example.test"}},
			Actions: []ActionConfig{{Mailbox: "support"}}},
		{Name: "spam", Match: MatchConfig{Header: map[string]string{"X-Spam": "yes"}}, Continue: true,
			Actions: []ActionConfig{{Mailbox: "quarantine"}}},
		{Name: "people", Match: MatchConfig{Rcpt: StringList{"*@example.test"}},
			Actions: []ActionConfig{{Forward: []string{"team@example.org"}}}},
		{Name: "refuse", Actions: []ActionConfig{{Reject: "550 5.1.1 no such user"}}},
	})
	tests := []struct {
		rcpt, subject, spam string
		rules, actions      string
	}{
		{"support@example.test", "Invoice 7", "", "log,tickets", "webhook:audit webhook:tickets mailbox:support/Invoices"},
		{"support+x@example.test", "Hello", "", "log,support", "webhook:audit mailbox:support"},
		{"bob@example.test", "Hello", "", "log,people", "webhook:audit forward:team@example.org"},
		{"bob@example.test", "Hello", "yes", "log,spam,people", "webhook:audit mailbox:quarantine forward:team@example.org"},
		{"bob@other.test", "Hello", "", "log,refuse", "webhook:audit reject:550"},
	}
	for _, tt := range tests {
		t.Run(tt.rcpt+" "+tt.subject+" "+tt.spam, func(t *testing.T) {
			m := sample()
			m.Message.Subject = tt.subject
			if tt.spam != "" {
				m.Message.Headers = append(m.Message.Headers, [2]string{"X-Spam", tt.spam})
			}
			d := tab.Decide(m, tt.rcpt)
			var acts []string
			for _, a := range d.Actions {
				s := string(a.Kind) + ":" + a.Webhook + a.Mailbox + strings.Join(a.Forward, ",")
				if a.Folder != "" {
					s += "/" + a.Folder
				}
				if a.RejectCode != 0 {
					s += fmt.Sprint(a.RejectCode)
				}
				acts = append(acts, s)
			}
			if got := strings.Join(d.Rules, ","); got != tt.rules {
				t.Errorf("Decide rules = %s, want %s", got, tt.rules)
			}
			if got := strings.Join(acts, " "); got != tt.actions {
				t.Errorf("Decide actions = %s, want %s", got, tt.actions)
			}
			if len(d.Why) != len(d.Rules) || d.Rcpt != tt.rcpt {
				t.Errorf("Decide = %+v: want one Why per rule and Rcpt %s", d, tt.rcpt)
			}
			_, rejected := d.Reject()
			if rejected != strings.Contains(tt.actions, "reject") {
				t.Errorf("Reject() = %v for actions %s", rejected, tt.actions)
			}
		})
	}
}

func TestDecideNoMatch(t *testing.T) {
	tab := mustCompile(t, []RuleConfig{{Name: "a", Match: MatchConfig{Rcpt: StringList{"a@example.test"}}, Actions: []ActionConfig{{Drop: true}}}})
	d := tab.Decide(sample(), "b@example.test")
	if d.Matched() || len(d.Actions) != 0 {
		t.Errorf("Decide = %+v, want no match", d)
	}
	if d := tab.Decide(nil, "a@example.test"); !d.Matched() {
		t.Errorf("Decide(nil mail) = %+v, want the rcpt rule to match", d)
	}
}

func TestDecideWhy(t *testing.T) {
	tab := mustCompile(t, []RuleConfig{
		{Name: "tickets", Continue: true, Match: MatchConfig{Rcpt: StringList{"support@example.test"}, Subject: "(?i)invoice"},
			Actions: []ActionConfig{{Drop: true}}},
		{Name: "detail", Continue: true, Match: MatchConfig{MailFrom: StringList{"alice@*"}, From: StringList{"*@sender.example"},
			Header: map[string]string{"X-Tag": "sec"}, Auth: map[string]string{"dmarc": "fail,none"}},
			Actions: []ActionConfig{{Drop: true}}},
		{Name: "all", Actions: []ActionConfig{{Drop: true}}},
	})
	d := tab.Decide(sample(), "support@example.test")
	want := []string{
		"rule tickets: rcpt support@example.test matched glob support@example.test; subject matched (?i)invoice",
		`rule detail: mail_from alice+lists@sender.example matched glob alice@*; from Alice@Sender.Example matched glob *@sender.example; header X-Tag "second" matched sec; auth dmarc=fail matched fail,none`,
		"rule all: no matchers, matches everything",
	}
	if strings.Join(d.Why, "\n") != strings.Join(want, "\n") {
		t.Errorf("Why =\n%s\nwant\n%s", strings.Join(d.Why, "\n"), strings.Join(want, "\n"))
	}
}

func TestAccepts(t *testing.T) {
	tab := mustCompile(t, []RuleConfig{
		{Name: "support", Match: MatchConfig{Rcpt: StringList{"support@example.test"}}, Actions: []ActionConfig{{Webhook: "t"}}},
		{Name: "sales", Match: MatchConfig{Rcpt: StringList{"sales@example.test"}, Subject: "x"}, Actions: []ActionConfig{{Webhook: "t"}}},
		// Rejects only at end of data, so it still accepts at RCPT.
		{Name: "blocked", Match: MatchConfig{Rcpt: StringList{"old@example.test"}}, Actions: []ActionConfig{{Reject: "550 5.1.1 gone"}}},
		{Name: "partners", Match: MatchConfig{Rcpt: StringList{"*@partners.example.test"}, MailFrom: StringList{"*@partner.example"}},
			Actions: []ActionConfig{{Webhook: "t"}}},
	})
	tests := []struct {
		rcpt, mailFrom string
		accepts        bool // Accepts(rcpt)
		envelope       bool // AcceptsEnvelope(rcpt, mailFrom)
	}{
		{"support@example.test", "", true, true},
		{"Support+Tag@EXAMPLE.test", "a@b.example", true, true},
		{"sales@example.test", "a@b.example", true, true},
		{"old@example.test", "a@b.example", true, true},
		{"x@partners.example.test", "p@partner.example", true, true},
		{"x@partners.example.test", "p@other.example", true, false},
		{"x@partners.example.test", "", true, false},
		{"nobody@example.test", "a@b.example", false, false},
		// Relay tricks.
		{"support%other.test@example.test", "", false, false},
		{"other.test!support@example.test", "", false, false},
		{`"support@other.test"@example.test`, "", false, false},
		{`"support"@example.test`, "", false, false},
		{"@example.test:support@example.test", "", false, false},
		{"support@example.test@other.test", "", false, false},
		{"support@other.test", "", false, false},
		{"support@[192.0.2.1]", "", false, false},
		{"support", "", false, false},
		{"", "", false, false},
		{"<>", "", false, false},
		{"x@partners.example.test%evil.test@partners.example.test", "p@partner.example", false, false},
	}
	for _, tt := range tests {
		t.Run(tt.rcpt+" from "+tt.mailFrom, func(t *testing.T) {
			if got := tab.Accepts(tt.rcpt); got != tt.accepts {
				t.Errorf("Accepts(%q) = %v, want %v", tt.rcpt, got, tt.accepts)
			}
			if got := tab.AcceptsEnvelope(tt.rcpt, tt.mailFrom); got != tt.envelope {
				t.Errorf("AcceptsEnvelope(%q, %q) = %v, want %v", tt.rcpt, tt.mailFrom, got, tt.envelope)
			}
		})
	}
	// A rule without a rcpt matcher accepts any recipient at RCPT.
	all := mustCompile(t, []RuleConfig{{Name: "all", Match: MatchConfig{Subject: "x"}, Actions: []ActionConfig{{Drop: true}}}})
	if !all.Accepts("anyone@anywhere.test") {
		t.Errorf("Accepts with a rule without rcpt = false, want true")
	}
}

// TestConcurrentDecide runs Decide from many goroutines; with -race it shows
// that a Table is safe for concurrent use and that Decisions do not share
// memory with it.
func TestConcurrentDecide(t *testing.T) {
	tab := mustCompile(t, []RuleConfig{
		{Name: "a", Continue: true, Match: MatchConfig{Auth: map[string]string{"spf": "pass"}}, Actions: []ActionConfig{{Forward: []string{"x@example.org"}}}},
		{Name: "b", Match: MatchConfig{Subject: "(?i)invoice"}, Actions: []ActionConfig{{Drop: true}}},
	})
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 100 {
				d := tab.Decide(sample(), "support@example.test")
				if len(d.Actions) != 2 {
					t.Errorf("Decide = %+v, want 2 actions", d)
					return
				}
				d.Actions[0].Forward[0] = "changed@example.org" // must not reach the table
			}
		})
	}
	wg.Wait()
	if d := tab.Decide(sample(), "a@example.test"); d.Actions[0].Forward[0] != "x@example.org" {
		t.Errorf("Decision shares Forward with the table: %q", d.Actions[0].Forward)
	}
}

// BenchmarkDecide measures a 50-rule table where the message matches the
// last rule, so every rule's matchers run.
func BenchmarkDecide(b *testing.B) {
	var rules []RuleConfig
	for i := range 49 {
		rc := RuleConfig{Name: fmt.Sprintf("r%d", i), Actions: []ActionConfig{{Webhook: "w"}}}
		switch i % 4 {
		case 0:
			rc.Match.Rcpt = StringList{fmt.Sprintf("team%d@example.test", i), fmt.Sprintf("team%d+*@example.test", i)}
		case 1:
			rc.Match.Rcpt = StringList{"*@example.test"}
			rc.Match.Header = map[string]string{"X-Team": fmt.Sprintf("^team-%d$", i)}
		case 2:
			rc.Match.MailFrom = StringList{fmt.Sprintf("*@partner%d.example", i)}
			rc.Match.Subject = fmt.Sprintf("(?i)order #%d", i)
		case 3:
			rc.Match.From = StringList{fmt.Sprintf("boss%d@*.example", i)}
			rc.Match.Auth = map[string]string{"dmarc": "pass"}
		}
		rules = append(rules, rc)
	}
	rules = append(rules, RuleConfig{Name: "last", Match: MatchConfig{Rcpt: StringList{"*@example.test"}},
		Actions: []ActionConfig{{Mailbox: "all"}}})
	tab := mustCompile(b, rules)
	m := sample()
	b.ReportAllocs()
	for b.Loop() {
		d := tab.Decide(m, "someone@example.test")
		if len(d.Rules) != 1 || d.Rules[0] != "last" {
			b.Fatalf("Decide rules = %v, want [last]", d.Rules)
		}
	}
}
