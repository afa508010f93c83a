package route

import (
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/mailhook/mailhook/config"
	"github.com/mailhook/mailhook/inbound"
	"github.com/mailhook/mailhook/parse"
)

func mustCompile(t testing.TB, rules []config.Rule) *Table {
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
		match config.RuleMatch
		edit  func(m *inbound.Mail) // optional change to the sample
		want  bool
	}{
		{"empty matches all", config.RuleMatch{}, nil, true},
		{"empty matches nil message", config.RuleMatch{}, func(m *inbound.Mail) { m.Message, m.Auth = nil, nil }, true},
		{"rcpt", config.RuleMatch{Rcpt: config.StringList{"support@example.test"}}, nil, true},
		{"rcpt any of list", config.RuleMatch{Rcpt: config.StringList{"sales@example.test", "support@example.test"}}, nil, true},
		{"rcpt no", config.RuleMatch{Rcpt: config.StringList{"sales@example.test"}}, nil, false},
		{"mail_from plus", config.RuleMatch{MailFrom: config.StringList{"alice@sender.example"}}, nil, true},
		{"mail_from no", config.RuleMatch{MailFrom: config.StringList{"bob@sender.example"}}, nil, false},
		{"mail_from null", config.RuleMatch{MailFrom: config.StringList{"<>"}}, func(m *inbound.Mail) { m.Envelope.MailFrom = "" }, true},
		{"mail_from null vs address", config.RuleMatch{MailFrom: config.StringList{""}}, nil, false},
		{"mail_from wildcard vs null", config.RuleMatch{MailFrom: config.StringList{"*@*"}}, func(m *inbound.Mail) { m.Envelope.MailFrom = "" }, false},
		{"from", config.RuleMatch{From: config.StringList{"*@sender.example"}}, nil, true},
		{"from no", config.RuleMatch{From: config.StringList{"*@other.example"}}, nil, false},
		{"from nil address", config.RuleMatch{From: config.StringList{"*@*"}}, func(m *inbound.Mail) { m.Message.From = nil }, false},
		{"from nil message", config.RuleMatch{From: config.StringList{"*@*"}}, func(m *inbound.Mail) { m.Message = nil }, false},
		{"header", config.RuleMatch{Header: map[string]string{"list-id": `news\.sender`}}, nil, true},
		{"header any value", config.RuleMatch{Header: map[string]string{"X-TAG": "^second$"}}, nil, true},
		{"header all must match", config.RuleMatch{Header: map[string]string{"X-Tag": "first", "List-Id": "nope"}}, nil, false},
		{"header absent", config.RuleMatch{Header: map[string]string{"X-Missing": ".*"}}, nil, false},
		{"header nil message", config.RuleMatch{Header: map[string]string{"Subject": ".*"}}, func(m *inbound.Mail) { m.Message = nil }, false},
		{"subject", config.RuleMatch{Subject: "(?i)invoice"}, nil, true},
		{"subject case", config.RuleMatch{Subject: "invoice"}, nil, false},
		{"subject nil message", config.RuleMatch{Subject: ".*"}, func(m *inbound.Mail) { m.Message = nil }, false},
		{"auth spf", config.RuleMatch{Auth: map[string]string{"spf": "pass"}}, nil, true},
		{"auth dkim any pass", config.RuleMatch{Auth: map[string]string{"dkim": "pass"}}, nil, true},
		{"auth dmarc alternatives", config.RuleMatch{Auth: map[string]string{"dmarc": "pass,fail"}}, nil, true},
		{"auth dmarc no", config.RuleMatch{Auth: map[string]string{"dmarc": "pass,none"}}, nil, false},
		{"auth dmarc_policy", config.RuleMatch{Auth: map[string]string{"dmarc_policy": "quarantine"}}, nil, true},
		{"auth all keys must match", config.RuleMatch{Auth: map[string]string{"spf": "pass", "dmarc": "pass"}}, nil, false},
		{"auth empty is none", config.RuleMatch{Auth: map[string]string{"dmarc_policy": "none"}}, func(m *inbound.Mail) { m.Auth.DMARC.Policy = "" }, true},
		{"auth nil", config.RuleMatch{Auth: map[string]string{"spf": "none"}}, func(m *inbound.Mail) { m.Auth = nil }, false},
		{"auto_submitted false", config.RuleMatch{AutoSubmitted: &no}, nil, true},
		{"auto_submitted true", config.RuleMatch{AutoSubmitted: &yes}, nil, false},
		{"auto_submitted set", config.RuleMatch{AutoSubmitted: &yes}, func(m *inbound.Mail) { m.Message.AutoSubmitted = true }, true},
		{"auto_submitted nil message", config.RuleMatch{AutoSubmitted: &no}, func(m *inbound.Mail) { m.Message = nil }, false},
		{"quarantine", config.RuleMatch{Quarantine: &yes}, nil, true},
		{"quarantine false", config.RuleMatch{Quarantine: &no}, nil, false},
		{"quarantine nil auth", config.RuleMatch{Quarantine: &no}, func(m *inbound.Mail) { m.Auth = nil }, false},
		{"all together", config.RuleMatch{Rcpt: config.StringList{"support@*"}, MailFrom: config.StringList{"*@sender.example"},
			From: config.StringList{"alice@*"}, Header: map[string]string{"X-Tag": "sec"}, Subject: "42$",
			Auth: map[string]string{"spf": "pass"}, AutoSubmitted: &no, Quarantine: &yes}, nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tab := mustCompile(t, []config.Rule{{Name: "r", Match: tt.match, Actions: []config.RuleAction{{Drop: true}}}})
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
	tab := mustCompile(t, []config.Rule{
		{Name: "log", Continue: true, Actions: []config.RuleAction{{Webhook: "audit"}}},
		{Name: "tickets", Match: config.RuleMatch{Rcpt: config.StringList{"support@example.test"}, Subject: "(?i)invoice"},
			Actions: []config.RuleAction{{Webhook: "tickets"}, {Mailbox: "support", Folder: "Invoices"}}},
		{Name: "support", Match: config.RuleMatch{Rcpt: config.StringList{"support@example.test"}},
			Actions: []config.RuleAction{{Mailbox: "support"}}},
		{Name: "spam", Match: config.RuleMatch{Header: map[string]string{"X-Spam": "yes"}}, Continue: true,
			Actions: []config.RuleAction{{Mailbox: "quarantine"}}},
		{Name: "people", Match: config.RuleMatch{Rcpt: config.StringList{"*@example.test"}},
			Actions: []config.RuleAction{{Forward: []string{"team@example.org"}}}},
		{Name: "refuse", Actions: []config.RuleAction{{Reject: "550 5.1.1 no such user"}}},
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
	tab := mustCompile(t, []config.Rule{{Name: "a", Match: config.RuleMatch{Rcpt: config.StringList{"a@example.test"}}, Actions: []config.RuleAction{{Drop: true}}}})
	d := tab.Decide(sample(), "b@example.test")
	if d.Matched() || len(d.Actions) != 0 {
		t.Errorf("Decide = %+v, want no match", d)
	}
	if d := tab.Decide(nil, "a@example.test"); !d.Matched() {
		t.Errorf("Decide(nil mail) = %+v, want the rcpt rule to match", d)
	}
}

func TestDecideWhy(t *testing.T) {
	tab := mustCompile(t, []config.Rule{
		{Name: "tickets", Continue: true, Match: config.RuleMatch{Rcpt: config.StringList{"support@example.test"}, Subject: "(?i)invoice"},
			Actions: []config.RuleAction{{Drop: true}}},
		{Name: "detail", Continue: true, Match: config.RuleMatch{MailFrom: config.StringList{"alice@*"}, From: config.StringList{"*@sender.example"},
			Header: map[string]string{"X-Tag": "sec"}, Auth: map[string]string{"dmarc": "fail,none"}},
			Actions: []config.RuleAction{{Drop: true}}},
		{Name: "all", Actions: []config.RuleAction{{Drop: true}}},
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
	tab := mustCompile(t, []config.Rule{
		{Name: "support", Match: config.RuleMatch{Rcpt: config.StringList{"support@example.test"}}, Actions: []config.RuleAction{{Webhook: "t"}}},
		{Name: "sales", Match: config.RuleMatch{Rcpt: config.StringList{"sales@example.test"}, Subject: "x"}, Actions: []config.RuleAction{{Webhook: "t"}}},
		// Rejects only at end of data, so it still accepts at RCPT.
		{Name: "blocked", Match: config.RuleMatch{Rcpt: config.StringList{"old@example.test"}}, Actions: []config.RuleAction{{Reject: "550 5.1.1 gone"}}},
		{Name: "partners", Match: config.RuleMatch{Rcpt: config.StringList{"*@partners.example.test"}, MailFrom: config.StringList{"*@partner.example"}},
			Actions: []config.RuleAction{{Webhook: "t"}}},
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
	all := mustCompile(t, []config.Rule{{Name: "all", Match: config.RuleMatch{Subject: "x"}, Actions: []config.RuleAction{{Drop: true}}}})
	if !all.Accepts("anyone@anywhere.test") {
		t.Errorf("Accepts with a rule without rcpt = false, want true")
	}
}

// TestConcurrentDecide runs Decide from many goroutines; with -race it shows
// that a Table is safe for concurrent use and that Decisions do not share
// memory with it.
func TestConcurrentDecide(t *testing.T) {
	tab := mustCompile(t, []config.Rule{
		{Name: "a", Continue: true, Match: config.RuleMatch{Auth: map[string]string{"spf": "pass"}}, Actions: []config.RuleAction{{Forward: []string{"x@example.org"}}}},
		{Name: "b", Match: config.RuleMatch{Subject: "(?i)invoice"}, Actions: []config.RuleAction{{Drop: true}}},
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
	var rules []config.Rule
	for i := range 49 {
		rc := config.Rule{Name: fmt.Sprintf("r%d", i), Actions: []config.RuleAction{{Webhook: "w"}}}
		switch i % 4 {
		case 0:
			rc.Match.Rcpt = config.StringList{fmt.Sprintf("team%d@example.test", i), fmt.Sprintf("team%d+*@example.test", i)}
		case 1:
			rc.Match.Rcpt = config.StringList{"*@example.test"}
			rc.Match.Header = map[string]string{"X-Team": fmt.Sprintf("^team-%d$", i)}
		case 2:
			rc.Match.MailFrom = config.StringList{fmt.Sprintf("*@partner%d.example", i)}
			rc.Match.Subject = fmt.Sprintf("(?i)order #%d", i)
		case 3:
			rc.Match.From = config.StringList{fmt.Sprintf("boss%d@*.example", i)}
			rc.Match.Auth = map[string]string{"dmarc": "pass"}
		}
		rules = append(rules, rc)
	}
	rules = append(rules, config.Rule{Name: "last", Match: config.RuleMatch{Rcpt: config.StringList{"*@example.test"}},
		Actions: []config.RuleAction{{Mailbox: "all"}}})
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
