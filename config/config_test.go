package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

const good = `
hostname: mx.example.test
data_dir: /tmp/mh
domains: [example.test]
webhooks:
  tickets: {url: "https://app.example/hooks", secret: "` + secret + `"}
routes:
  - name: t
    match: {rcpt: "support@example.test"}
    actions: [{webhook: tickets}]
`

func load(t *testing.T, y string) (*Config, ValidationErrors) {
	t.Helper()
	cfg, err := LoadBytes([]byte(y))
	if err == nil {
		return cfg, nil
	}
	var ve ValidationErrors
	if !errors.As(err, &ve) {
		t.Fatalf("LoadBytes error %v is not ValidationErrors", err)
	}
	return cfg, ve
}

func hasKey(es ValidationErrors, key, reason string) bool {
	for _, e := range es {
		if e.Key == key && strings.Contains(e.Reason, reason) {
			return true
		}
	}
	return false
}

func TestLoadGoodAndDefaults(t *testing.T) {
	cfg, errs := load(t, good)
	if errs != nil {
		t.Fatalf("good config: %v", errs)
	}
	d := Default()
	if cfg.SMTP.Listen != d.SMTP.Listen || cfg.SMTP.MaxMessageBytes != 25<<20 || cfg.Queue.Backend != "embedded" {
		t.Errorf("defaults not applied: %+v", cfg.SMTP)
	}
	if len(cfg.Queue.Retry.Schedule) != 9 || cfg.Queue.Retry.Schedule[0] != 5*time.Second || cfg.Queue.Retry.Schedule[8] != 24*time.Hour {
		t.Errorf("retry schedule = %v", cfg.Queue.Retry.Schedule)
	}
	if !cfg.Verify.EnforceDMARC {
		t.Error("enforce_dmarc default should be true")
	}
	if w := cfg.Webhooks["tickets"]; w.URL != "https://app.example/hooks" || w.AllSecrets()[0] != secret {
		t.Errorf("webhook = %+v", w)
	}
}

func TestExampleConfigIsValid(t *testing.T) {
	cfg, err := Load(filepath.Join("..", "config.example.yaml"))
	if err != nil {
		t.Fatalf("config.example.yaml: %v", err)
	}
	if len(cfg.Routes) == 0 || len(cfg.Mailbox.Users) == 0 {
		t.Errorf("example config lost its routes or users: %+v", cfg)
	}
}

func TestEveryProblemAtOnce(t *testing.T) {
	bad := `
hostname: "not a host"
domains: []
smtp:
  listne: ":25"
  read_timeout: 5x
  max_recipients: lots
  tls: {cert_file: /nonexistent.pem}
verify: {on_temperror: maybe}
queue:
  backend: postgres
  retry: {schedule: [5s, -1s]}
webhooks:
  tickets: {url: "ftp://x", secret: "nope"}
mailbox:
  users:
    - {name: bob, password_hash: "plain", addresses: ["bob@other.test"]}
routes:
  - name: r
    actions: [{webhook: missing}]
`
	_, errs := load(t, bad)
	for _, want := range []struct{ key, reason string }{
		{"smtp.listne", `unknown key (did you mean "listen"?)`},
		{"smtp.read_timeout", "not a duration"},
		{"smtp.max_recipients", "not a whole number"},
		{"hostname", "not a host name"},
		{"domains", "at least one domain"},
		{"smtp.tls", "cert_file and key_file go together"},
		{"verify.on_temperror", "not one of accept, defer"},
		{"queue.backend", `"postgres" is not one of`},
		{"queue.retry.schedule[1]", "must be positive"},
		{"webhooks.tickets.url", "http or https"},
		{"webhooks.tickets.secret", "whsec_"},
		{"mailbox.users[0].password_hash", "bcrypt"},
		{"mailbox.users[0].addresses[0]", "not in domains"},
	} {
		if !hasKey(errs, want.key, want.reason) {
			t.Errorf("missing error %s: %s; got:\n%v", want.key, want.reason, errs)
		}
	}
}

func TestBadYAML(t *testing.T) {
	_, errs := load(t, "domains: [unclosed")
	if len(errs) != 1 || errs[0].Key != "(file)" {
		t.Fatalf("errs = %v", errs)
	}
}

func TestEnvironmentOverrides(t *testing.T) {
	t.Setenv("MAILHOOK_SMTP_LISTEN", "127.0.0.1:2626")
	t.Setenv("MAILHOOK_SMTP_MAX_RECIPIENTS", "7")
	t.Setenv("MAILHOOK_VERIFY_ENFORCE_DMARC", "false")
	t.Setenv("MAILHOOK_QUEUE_RETRY_MAX_AGE", "1h")
	t.Setenv("MAILHOOK_ADMIN_TOKEN", "s3cret")
	cfg, errs := load(t, good)
	if errs != nil {
		t.Fatal(errs)
	}
	if cfg.SMTP.Listen != "127.0.0.1:2626" || cfg.SMTP.MaxRecipients != 7 || cfg.Verify.EnforceDMARC ||
		cfg.Queue.Retry.MaxAge != time.Hour || cfg.Admin.Token != "s3cret" {
		t.Errorf("environment not applied: smtp=%+v verify=%+v admin=%+v", cfg.SMTP, cfg.Verify, cfg.Admin)
	}
	t.Setenv("MAILHOOK_SMTP_MAX_RECIPIENTS", "many")
	_, errs = load(t, good)
	if !hasKey(errs, "smtp.max_recipients", "not a whole number") {
		t.Errorf("bad env value not reported by key: %v", errs)
	}
}

func TestLoadMissingFile(t *testing.T) {
	_, err := Load(filepath.Join(t.TempDir(), "nope.yaml"))
	if err == nil || !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("Load(missing) = %v, want not-exist", err)
	}
}

func TestTypoSuggestions(t *testing.T) {
	_, errs := load(t, good+"\nqueue: {backnd: redis}\n")
	if !hasKey(errs, "queue.backnd", `did you mean "backend"`) {
		t.Errorf("errs = %v", errs)
	}
}

func TestEnvironmentLists(t *testing.T) {
	t.Setenv("MAILHOOK_DOMAINS", "a.test, B.test")
	cfg, errs := load(t, good+"  - name: b\n    match: {rcpt: \"*@b.test\"}\n    actions: [{webhook: tickets}]\n")
	if errs != nil {
		t.Fatal(errs)
	}
	if len(cfg.Domains) != 2 || cfg.Domains[0] != "a.test" || cfg.Domains[1] != "b.test" {
		t.Errorf("domains from MAILHOOK_DOMAINS = %q", cfg.Domains)
	}
}

func TestSigningKeysValidated(t *testing.T) {
	_, errs := load(t, strings.Replace(good, `secret: "`+secret+`"}`, `secret: "`+secret+`", signing_keys: ["nope"]}`, 1))
	if !hasKey(errs, "webhooks.tickets.signing_keys[0]", "whsk_") {
		t.Errorf("errs = %v", errs)
	}
}
