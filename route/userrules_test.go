package route_test

import (
	"slices"
	"testing"

	"github.com/mailhook/mailhook/config"
	"github.com/mailhook/mailhook/inbound"
	"github.com/mailhook/mailhook/route"
)

const withUsers = `
hostname: mx.example.test
data_dir: /tmp/mh
domains: [example.test]
webhooks:
  tickets: {url: "https://app.example/hooks", secret: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}
mailbox:
  users:
    - {name: alice, password_hash: "$2b$10$abcdefghijklmnopqrstuu8NNwc5r4QzCeX5S3aU1SwLd4bFY5j1u", addresses: ["alice@example.test", "team@example.test"]}
    - {name: bob, password_hash: "$2b$10$abcdefghijklmnopqrstuu8NNwc5r4QzCeX5S3aU1SwLd4bFY5j1u"}
routes:
  - name: team
    match: {rcpt: "team@example.test"}
    actions: [{webhook: tickets}]
`

// TestUserRules: a user's addresses reach its INBOX through an implicit
// rule after the configured ones, plus-addresses included; a configured
// route for the same address wins; a user without addresses has none.
func TestUserRules(t *testing.T) {
	cfg, err := config.LoadBytes([]byte(withUsers), route.CheckConfig)
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	rules := cfg.Rules()
	var names []string
	for _, r := range rules {
		names = append(names, r.Name)
	}
	if want := []string{"team", "user-alice"}; !slices.Equal(names, want) {
		t.Fatalf("Rules() = %v, want %v", names, want)
	}
	if len(cfg.Routes) != 1 {
		t.Fatalf("Rules() changed the configured routes: %v", cfg.Routes)
	}
	k := route.KnownOf(cfg)
	if !k.Webhooks["tickets"] || !k.Users["alice"] || !k.Users["bob"] || len(k.Users) != 2 {
		t.Errorf("KnownOf = %+v", k)
	}
	table, err := route.Compile(rules, k)
	if err != nil {
		t.Fatalf("route.Compile(Rules()) = %v", err)
	}
	for _, tc := range []struct {
		rcpt, rule string
		kind       route.ActionKind
	}{
		{"alice@example.test", "user-alice", route.ActMailbox},
		{"alice+lists@example.test", "user-alice", route.ActMailbox},
		{"team@example.test", "team", route.ActWebhook},
		{"bob@example.test", "", ""},
	} {
		d := table.Decide(&inbound.Mail{}, tc.rcpt)
		if tc.rule == "" {
			if d.Matched() {
				t.Errorf("Decide(%s) = %+v, want no rule", tc.rcpt, d)
			}
			continue
		}
		if !slices.Equal(d.Rules, []string{tc.rule}) || len(d.Actions) != 1 || d.Actions[0].Kind != tc.kind {
			t.Errorf("Decide(%s) = rules %v actions %+v, want %s by %s", tc.rcpt, d.Rules, d.Actions, tc.kind, tc.rule)
			continue
		}
		if a := d.Actions[0]; tc.kind == route.ActMailbox && (a.Mailbox != "alice" || (a.Folder != "" && a.Folder != "INBOX")) {
			t.Errorf("Decide(%s) delivers to %s/%s, want alice's INBOX", tc.rcpt, a.Mailbox, a.Folder)
		}
	}
}
