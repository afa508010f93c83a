package config

import (
	"strings"
	"testing"
	"time"
)

func TestRspamdOffByDefault(t *testing.T) {
	cfg, errs := load(t, good)
	if errs != nil {
		t.Fatalf("load(good) = %v", errs)
	}
	r := cfg.Verify.Rspamd
	if r.Enabled() || r.Timeout != 5*time.Second || r.OnError != "accept" || !r.Enforce {
		t.Errorf("verify.rspamd defaults = %+v, want off, 5s, accept, enforce", r)
	}
}

func TestRspamdConfig(t *testing.T) {
	cfg, errs := load(t, good+`verify:
  rspamd: {url: "http://127.0.0.1:11333", timeout: 2s, password: pw, on_error: defer, enforce: false}
`)
	if errs != nil {
		t.Fatalf("load = %v", errs)
	}
	want := Rspamd{URL: "http://127.0.0.1:11333", Timeout: 2 * time.Second, Password: "pw", OnError: "defer"}
	if cfg.Verify.Rspamd != want {
		t.Errorf("verify.rspamd = %+v, want %+v", cfg.Verify.Rspamd, want)
	}
	// A route matching the verdict decodes (route compiles it).
	_, errs = load(t, strings.Replace(good, `match: {rcpt: "support@example.test"}`,
		`match: {rcpt: "support@example.test", spam: {action: [reject, "add header"]}, spam_score: ">= 6"}`, 1))
	if errs != nil {
		t.Errorf("load(spam matchers) = %v", errs)
	}
}

// TestRspamdErrors: verify.rspamd.url is checked by the rspamd client's
// rule, given to Load by cmd/mailhook (TestConfigChecks).
func TestRspamdErrors(t *testing.T) {
	for _, tc := range []struct{ yaml, key, reason string }{
		{`{url: "http://127.0.0.1:11333", on_error: drop}`, "verify.rspamd.on_error", "accept, defer"},
		{`{url: "http://127.0.0.1:11333", timeout: 0s}`, "verify.rspamd.timeout", "positive"},
		{`{url: "http://127.0.0.1:11333", timout: 2s}`, "verify.rspamd.timout", "timeout"},
	} {
		_, errs := load(t, good+"verify:\n  rspamd: "+tc.yaml+"\n")
		if !hasKey(errs, tc.key, tc.reason) {
			t.Errorf("load(verify.rspamd: %s) = %v, want %s: …%s…", tc.yaml, errs, tc.key, tc.reason)
		}
	}
}
