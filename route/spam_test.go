package route

import (
	"strings"
	"testing"

	"github.com/mailhook/mailhook/config"
	"github.com/mailhook/mailhook/inbound"
)

func TestDecideSpam(t *testing.T) {
	verdict := func(action string, score float64) *inbound.Spam {
		return &inbound.Spam{Result: "ok", Action: action, Score: score, RequiredScore: 15}
	}
	failed := &inbound.Spam{Result: "error", Error: "connection refused"}
	tests := []struct {
		name  string
		match config.RuleMatch
		spam  *inbound.Spam
		want  bool
	}{
		{"action", config.RuleMatch{Spam: &config.SpamMatch{Action: config.StringList{"reject", "add header"}}}, verdict("add header", 7), true},
		{"action underscore", config.RuleMatch{Spam: &config.SpamMatch{Action: config.StringList{"add_header"}}}, verdict("add header", 7), true},
		{"action no", config.RuleMatch{Spam: &config.SpamMatch{Action: config.StringList{"reject"}}}, verdict("no action", 1), false},
		{"action without rspamd", config.RuleMatch{Spam: &config.SpamMatch{Action: config.StringList{"no action"}}}, nil, false},
		{"action on error", config.RuleMatch{Spam: &config.SpamMatch{Action: config.StringList{"no action"}}}, failed, false},
		{"result error", config.RuleMatch{Spam: &config.SpamMatch{Result: config.StringList{"error"}}}, failed, true},
		{"result error on ok", config.RuleMatch{Spam: &config.SpamMatch{Result: config.StringList{"error"}}}, verdict("no action", 0), false},
		{"result ok", config.RuleMatch{Spam: &config.SpamMatch{Result: config.StringList{"ok"}}}, verdict("reject", 20), true},
		{"score >=", config.RuleMatch{SpamScore: ">= 6"}, verdict("add header", 6), true},
		{"score >= no", config.RuleMatch{SpamScore: ">= 6"}, verdict("no action", 5.9), false},
		{"score bare", config.RuleMatch{SpamScore: "6"}, verdict("no action", 7), true},
		{"score <", config.RuleMatch{SpamScore: "< 0"}, verdict("no action", -1.5), true},
		{"score >", config.RuleMatch{SpamScore: ">6"}, verdict("no action", 6), false},
		{"score on error", config.RuleMatch{SpamScore: "<= 100"}, failed, false},
		{"score without rspamd", config.RuleMatch{SpamScore: "<= 100"}, nil, false},
		{"score and action", config.RuleMatch{SpamScore: ">= 6", Spam: &config.SpamMatch{Action: config.StringList{"add header"}}}, verdict("add header", 8), true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tab := mustCompile(t, []config.Rule{{Name: "r", Match: tc.match, Actions: []config.RuleAction{{Drop: true}}}})
			m := sample()
			m.Spam = tc.spam
			d := tab.Decide(m, "support@example.test")
			if d.Matched() != tc.want {
				t.Fatalf("Decide(%+v) matched = %v, want %v", tc.spam, d.Matched(), tc.want)
			}
			if tc.want && !strings.Contains(d.Why[0], "spam") {
				t.Errorf("Why = %q, want the spam matcher named", d.Why)
			}
		})
	}
}

func TestCompileSpamErrors(t *testing.T) {
	for _, tc := range []struct {
		match config.RuleMatch
		key   string
	}{
		{config.RuleMatch{Spam: &config.SpamMatch{Action: config.StringList{"drop"}}}, "routes[0].match.spam.action[0]"},
		{config.RuleMatch{Spam: &config.SpamMatch{Result: config.StringList{"maybe"}}}, "routes[0].match.spam.result[0]"},
		{config.RuleMatch{Spam: &config.SpamMatch{}}, "routes[0].match.spam"},
		{config.RuleMatch{SpamScore: "about 6"}, "routes[0].match.spam_score"},
		{config.RuleMatch{SpamScore: ">= six"}, "routes[0].match.spam_score"},
	} {
		_, err := Compile([]config.Rule{{Name: "r", Match: tc.match, Actions: []config.RuleAction{{Drop: true}}}}, Known{})
		es, ok := err.(config.ValidationErrors)
		if !ok || len(es) != 1 || es[0].Key != tc.key {
			t.Errorf("Compile(%+v) = %v, want one error at %s", tc.match, err, tc.key)
		}
	}
}
