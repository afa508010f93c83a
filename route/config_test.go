package route

import (
	"errors"
	"strings"
	"testing"

	"github.com/mailhook/mailhook/config"
)

const testSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

// TestCheckConfig loads a file with a problem of the config's own and
// problems in its routes: Load given CheckConfig lists them all at once,
// each by its key, and a single string decodes as a one-glob list.
func TestCheckConfig(t *testing.T) {
	const file = `
hostname: mx.example.test
data_dir: /tmp/mh
domains: [example.test]
log: {level: loud}
webhooks:
  tickets: {url: "https://app.example/hooks", secret: "` + testSecret + `"}
mailbox:
  users:
    - {name: bob, password_hash: "$2a$10$abcdefghijklmnopqrstuuOMdFbvPGUt8D1KzqSGjV3IGpgBtYRyG"}
routes:
  - name: ok
    match: {rcpt: "support@example.test", mail_from: ["<>", "*@example.org"]}
    actions: [{webhook: Tickets}, {mailbox: bob}]
  - name: bad
    match: {subject: "("}
    actions: [{webhook: missing}, {mailbox: alice}]
`
	cfg, err := config.LoadBytes([]byte(file), CheckConfig)
	var errs config.ValidationErrors
	if !errors.As(err, &errs) {
		t.Fatalf("LoadBytes = %v, want ValidationErrors", err)
	}
	for _, want := range []struct{ key, reason string }{
		{"log.level", "not one of"},
		{"routes[1].match.subject", "bad regex"},
		{"routes[1].actions[0].webhook", `"missing" is not defined`},
		{"routes[1].actions[1].mailbox", `"alice" is not defined`},
	} {
		found := false
		for _, e := range errs {
			found = found || e.Key == want.key && strings.Contains(e.Reason, want.reason)
		}
		if !found {
			t.Errorf("missing error %s: …%s…; got:\n%v", want.key, want.reason, errs)
		}
	}
	if len(errs) != 4 {
		t.Errorf("got %d errors, want 4:\n%v", len(errs), errs)
	}
	m := cfg.Routes[0].Match
	if len(m.Rcpt) != 1 || m.Rcpt[0] != "support@example.test" || len(m.MailFrom) != 2 || m.MailFrom[0] != "<>" {
		t.Errorf("routes[0].match = rcpt %q mail_from %q", m.Rcpt, m.MailFrom)
	}
	if CheckConfig(cfg) == nil {
		t.Error("CheckConfig alone found nothing")
	}
}
