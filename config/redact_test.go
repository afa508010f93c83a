package config

import (
	"strings"
	"testing"
)

func TestRedactURL(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"https://hooks.example/mail", "https://hooks.example/mail"},
		{"https://u:p@hooks.example/mail", "https://REDACTED@hooks.example/mail"},
		{"https://tokenonly@hooks.example/", "https://REDACTED@hooks.example/"},
		{"https://h.example/x?token=abc&sig=def&flag", "https://h.example/x?token=REDACTED&sig=REDACTED&flag=REDACTED"},
		{"https://h.example/x#secret", "https://h.example/x#REDACTED"},
		{"https://h.example/services/T0AB12CD3/B0XY45ZW6/abcdEFGH1234ijkl5678", "https://h.example/services/T0AB12CD3/B0XY45ZW6/REDACTED"},
		{"https://h.example/hooks/mailhook-production", "https://h.example/hooks/mailhook-production"},
		{"https://u:p@h.example/%zz", "(a URL that does not parse; not shown)"},
		{"mailto:someone@example.test", "mailto:REDACTED"},
	} {
		if got := RedactURL(tc.in); got != tc.want {
			t.Errorf("RedactURL(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestWebhookPrivateAddressNeedsAllowPrivate(t *testing.T) {
	y := `
hostname: mx.example.test
data_dir: /tmp/mh
domains: [example.test]
webhooks:
  loop: {url: "http://u:hunter2@127.0.0.1:8080/h", secret: "` + secret + `"}
  lan: {url: "https://192.168.1.10/h", secret: "` + secret + `"}
  ok: {url: "http://127.0.0.1:8080/h", secret: "` + secret + `", allow_private: true}
  name: {url: "https://localhost/h", secret: "` + secret + `"}
routes:
  - name: t
    match: {rcpt: "support@example.test"}
    actions: [{webhook: ok}]
`
	_, errs := load(t, y)
	if !hasKey(errs, "webhooks.loop.url", "127.0.0.1 is a loopback address; set allow_private") ||
		!hasKey(errs, "webhooks.lan.url", "192.168.1.10 is a private address") || len(errs) != 2 {
		t.Errorf("errors = %v, want webhooks.loop.url and webhooks.lan.url only", errs)
	}
	for _, e := range errs {
		if strings.Contains(e.Reason, "hunter2") || strings.Contains(e.Reason, "u:") {
			t.Errorf("%s: %s shows the URL's credentials", e.Key, e.Reason)
		}
	}
}
