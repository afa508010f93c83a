package main

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// Secrets put in webhook URLs below; no output may show them.
var urlSecrets = []string{"hookuser", "hunter2", "sekrit123", "s3cr3tp4th0000000000", "frag1"}

// TestCheckConfigRefusesWhatServeRefuses: for each configuration that
// `serve` refuses to start with, `check-config` exits 1 too, and neither
// prints the credentials of a webhook URL.
func TestCheckConfigRefusesWhatServeRefuses(t *testing.T) {
	cases := []struct {
		name string
		// hook replaces the tickets webhook's line in writeConfig's config.
		hook string
		// want is in check-config's output.
		want string
	}{
		{"loopback URL with credentials", `tickets: {url: "http://hookuser:hunter2@127.0.0.1:9/h?token=sekrit123", secret: "` + testSecret + `"}`,
			"webhooks.tickets.url: 127.0.0.1 is a loopback address; set allow_private"},
		{"private URL", `tickets: {url: "https://10.1.2.3/h?token=sekrit123", secret: "` + testSecret + `"}`,
			"10.1.2.3 is a private address"},
		{"IPv4-mapped loopback", `tickets: {url: "https://[::ffff:127.0.0.1]/h", secret: "` + testSecret + `"}`,
			"loopback address"},
		{"unparsable URL with credentials", `tickets: {url: "https://hookuser:hunter2@host.example/%zz?token=sekrit123", secret: "` + testSecret + `"}`,
			"webhooks.tickets.url: is not a URL"},
		{"malformed signing key", `tickets: {url: "https://hooks.example/h", secret: "` + testSecret + `", signing_keys: ["whsk_notakey"]}`,
			"signing_keys[0]"},
	}
	bin := binary(t) // built before any timeout starts
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			cfg := writeConfig(t, dir, freePort(t), "127.0.0.1:1", "http://unused.example/", "")
			text := mustRead(t, cfg)
			i := strings.Index(text, "  tickets: {")
			j := i + strings.Index(text[i:], "\n")
			os.WriteFile(cfg, []byte(text[:i]+"  "+tc.hook+text[j:]), 0o600)

			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			out, err := exec.CommandContext(ctx, bin, "serve", "--config", cfg).CombinedOutput()
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ExitCode() == 0 || ee.ExitCode() == -1 {
				t.Fatalf("serve: %v, want a refusal at startup\n%s", err, out)
			}
			noSecrets(t, "serve", out)

			out, err = exec.Command(bin, "check-config", "--config", cfg).CombinedOutput()
			if !errors.As(err, &ee) || ee.ExitCode() != 1 {
				t.Fatalf("check-config: %v, want exit 1\n%s", err, out)
			}
			if !strings.Contains(string(out), tc.want) {
				t.Errorf("check-config output lacks %q:\n%s", tc.want, out)
			}
			noSecrets(t, "check-config", out)
		})
	}
}

// TestCheckConfigRedactsWebhookURL: an accepted configuration's webhook
// URL is printed without its userinfo, query values, fragment and
// token-like path segments.
func TestCheckConfigRedactsWebhookURL(t *testing.T) {
	dir := t.TempDir()
	cfg := writeConfig(t, dir, freePort(t), "127.0.0.1:1", "https://hookuser:hunter2@hooks.example/in/s3cr3tp4th0000000000/mail?token=sekrit123&v=2#frag1", "")
	out, err := exec.Command(binary(t), "check-config", "--config", cfg).CombinedOutput()
	if err != nil {
		t.Fatalf("check-config: %v\n%s", err, out)
	}
	want := "webhook    tickets -> https://REDACTED@hooks.example/in/REDACTED/mail?token=REDACTED&v=REDACTED#REDACTED"
	if !strings.Contains(string(out), want) {
		t.Errorf("check-config output lacks %q:\n%s", want, out)
	}
	noSecrets(t, "check-config", out)
}

func noSecrets(t *testing.T, what string, out []byte) {
	t.Helper()
	for _, s := range urlSecrets {
		if strings.Contains(string(out), s) {
			t.Errorf("%s output shows %q:\n%s", what, s, out)
		}
	}
}
