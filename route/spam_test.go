package route

import (
	"strings"
	"testing"

	"github.com/mailhook/mailhook/inbound"
)

func TestDecideSpam(t *testing.T) {
	verdict := func(action string, score float64) *inbound.Spam {
		return &inbound.Spam{Result: "ok", Action: action, Score: score, RequiredScore: 15}
	}
	failed := &inbound.Spam{Result: "error", Error: "connection refused"}
	tests := []struct {
		name  string
		match MatchConfig
		spam  *inbound.Spam
		want  bool
	}{
		{"action", MatchConfig{Spam: &SpamMatchConfig{Action: StringList{"reject", "add header"}}}, verdict("add header", 7), true},
		{"action underscore", MatchConfig{Spam: &SpamMatchConfig{Action: StringList{"add_header"}}}, verdict("add header", 7), true},
		{"action no", MatchConfig{Spam: &SpamMatchConfig{Action: StringList{"reject"}}}, verdict("no action", 1), false},
		{"action without rspamd", MatchConfig{Spam: &SpamMatchConfig{Action: StringList{"no action"}}}, nil, false},
		{"action on error", MatchConfig{Spam: &SpamMatchConfig{Action: StringList{"no action"}}}, failed, false},
		{"result error", MatchConfig{Spam: &SpamMatchConfig{Result: StringList{"error"}}}, failed, true},
		{"result error on ok", MatchConfig{Spam: &SpamMatchConfig{Result: StringList{"error"}}}, verdict("no action", 0), false},
		{"result ok", MatchConfig{Spam: &SpamMatchConfig{Result: StringList{"ok"}}}, verdict("reject", 20), true},
		{"score >=", MatchConfig{SpamScore: ">= 6"}, verdict("add header", 6), true},
		{"score >= no", MatchConfig{SpamScore: ">= 6"}, verdict("no action", 5.9), false},
		{"score bare", MatchConfig{SpamScore: "6"}, verdict("no action", 7), true},
		{"score <", MatchConfig{SpamScore: "< 0"}, verdict("no action", -1.5), true},
		{"score >", MatchConfig{SpamScore: ">6"}, verdict("no action", 6), false},
		{"score on error", MatchConfig{SpamScore: "<= 100"}, failed, false},
		{"score without rspamd", MatchConfig{SpamScore: "<= 100"}, nil, false},
		{"score and action", MatchConfig{SpamScore: ">= 6", Spam: &SpamMatchConfig{Action: StringList{"add header"}}}, verdict("add header", 8), true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tab := mustCompile(t, []RuleConfig{{Name: "r", Match: tc.match, Actions: []ActionConfig{{Drop: true}}}})
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
		match MatchConfig
		key   string
	}{
		{MatchConfig{Spam: &SpamMatchConfig{Action: StringList{"drop"}}}, "routes[0].match.spam.action[0]"},
		{MatchConfig{Spam: &SpamMatchConfig{Result: StringList{"maybe"}}}, "routes[0].match.spam.result[0]"},
		{MatchConfig{Spam: &SpamMatchConfig{}}, "routes[0].match.spam"},
		{MatchConfig{SpamScore: "about 6"}, "routes[0].match.spam_score"},
		{MatchConfig{SpamScore: ">= six"}, "routes[0].match.spam_score"},
	} {
		_, err := Compile([]RuleConfig{{Name: "r", Match: tc.match, Actions: []ActionConfig{{Drop: true}}}}, Known{})
		es, ok := err.(ValidationErrors)
		if !ok || len(es) != 1 || es[0].Key != tc.key {
			t.Errorf("Compile(%+v) = %v, want one error at %s", tc.match, err, tc.key)
		}
	}
}
