package main

import (
	"errors"
	"strings"
	"testing"

	"github.com/mailhook/mailhook/config"
)

// TestConfigChecks: the checks Load is given report the routes' and
// verify.rspamd.url's problems with the config's own, each by its key.
func TestConfigChecks(t *testing.T) {
	base := `
webhooks:
  tickets: {url: "https://app.example/hooks", secret: "` + testSecret + `"}
hostname: mx.example.test
log: {level: loud}
domains: [example.test]
data_dir: /tmp/mh
routes:
  - name: r
    actions: [{webhook: missing}]
verify:
  rspamd: {url: RSPAMD}
`
	for _, tc := range []struct{ url, reason string }{
		{"127.0.0.1:11333", "like http://127.0.0.1:11333"},
		{"ftp://127.0.0.1", "http or https"},
		{"http://", "no host"},
	} {
		_, err := config.LoadBytes([]byte(strings.Replace(base, "RSPAMD", `"`+tc.url+`"`, 1)), configChecks...)
		var errs config.ValidationErrors
		if !errors.As(err, &errs) {
			t.Fatalf("LoadBytes = %v, want ValidationErrors", err)
		}
		for _, want := range []struct{ key, reason string }{
			{"log.level", "not one of"},
			{"routes[0].actions[0].webhook", `"missing" is not defined`},
			{"verify.rspamd.url", tc.reason},
		} {
			found := false
			for _, e := range errs {
				found = found || e.Key == want.key && strings.Contains(e.Reason, want.reason)
			}
			if !found {
				t.Errorf("url %q: missing error %s: …%s…; got:\n%v", tc.url, want.key, want.reason, errs)
			}
		}
	}
}
