package main

import (
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/mailhook/mailhook/dns/dnstest"
	"github.com/mailhook/mailhook/internal/testenv"
)

// firstRunCommands returns the commands of the README's "First run"
// section, in order: every line of its ```sh blocks.
func firstRunCommands(t *testing.T, readme string) []string {
	t.Helper()
	start := strings.Index(readme, "\n## First run\n")
	if start < 0 {
		t.Fatal(`README.md has no "## First run" section`)
	}
	sec := readme[start+1:]
	if end := strings.Index(sec[3:], "\n## "); end >= 0 {
		sec = sec[:end+3]
	}
	var cmds []string
	for _, m := range regexp.MustCompile("(?s)```sh\n(.*?)```").FindAllStringSubmatch(sec, -1) {
		for _, line := range strings.Split(m[1], "\n") {
			if line = strings.TrimSpace(line); line != "" && !strings.HasPrefix(line, "#") {
				cmds = append(cmds, line)
			}
		}
	}
	return cmds
}

// TestREADMEFirstRun follows the README's "First run" section literally,
// in a temporary directory holding config.example.yaml: build, start
// `webhook listen`, `make run`, send with curl, and the verified webhook
// JSON must be printed within 10 seconds of sending. Only the loopback
// ports are changed (to free ones, in the config and the commands alike,
// so parallel runs do not collide) and DNS goes to a loopback server.
func TestREADMEFirstRun(t *testing.T) {
	root := testenv.ModuleRoot(t)
	readme, err := os.ReadFile(filepath.Join(root, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	cmds := firstRunCommands(t, string(readme))
	if len(cmds) < 4 {
		t.Fatalf("First run has %d commands: %q", len(cmds), cmds)
	}
	// `make run` is `bin/mailhook serve --config config.example.yaml`.
	mk := mustRead(t, filepath.Join(root, "Makefile"))
	for _, want := range []string{"BIN      := bin/mailhook", "CONFIG   ?= config.example.yaml", "run: build\n\t$(BIN) serve --config $(CONFIG)"} {
		if !strings.Contains(mk, want) {
			t.Fatalf("the Makefile no longer has %q: update this test's reading of `make run`", want)
		}
	}

	// The example config, with free ports.
	ports := map[string]string{}
	for _, p := range []string{"127.0.0.1:2525", "127.0.0.1:8080", "127.0.0.1:8025", "127.0.0.1:1143", "127.0.0.1:1110"} {
		ports[p] = freePort(t)
	}
	swap := func(s string) string {
		for from, to := range ports {
			s = strings.ReplaceAll(s, from, to)
		}
		return s
	}
	dir := t.TempDir()
	example := mustRead(t, filepath.Join(root, "config.example.yaml"))
	for p := range ports {
		if !strings.Contains(example, p) {
			t.Errorf("config.example.yaml does not mention %s any more: update this test", p)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "config.example.yaml"), []byte(swap(example)), 0o600); err != nil {
		t.Fatal(err)
	}
	dns := dnstest.Start(t, "")
	env := append(os.Environ(), "MAILHOOK_VERIFY_DNS_RESOLVER="+dns.Addr(), "MAILHOOK_CONFIG=")
	curl := testenv.Tool(t, "apt-get install curl", "curl")

	var listen, serve *syncBuffer
	start := func(name string, args ...string) *syncBuffer {
		out := &syncBuffer{}
		ctx, cancel := context.WithCancel(context.Background())
		cmd := exec.CommandContext(ctx, name, args...)
		cmd.Dir, cmd.Env, cmd.Stdout, cmd.Stderr = dir, env, out, out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			cancel()
			cmd.Wait()
			if t.Failed() {
				t.Logf("%s %s:\n%s", name, strings.Join(args, " "), out.String())
			}
		})
		return out
	}
	var sentAt time.Time
	for _, line := range cmds {
		line = swap(line)
		fields := strings.Fields(line)
		switch {
		case line == "make build":
			os.MkdirAll(filepath.Join(dir, "bin"), 0o755)
			if err := os.Symlink(binary(t), filepath.Join(dir, "bin", "mailhook")); err != nil {
				t.Fatal(err)
			}
		case line == "make run":
			serve = start(filepath.Join(dir, "bin", "mailhook"), "serve", "--config", "config.example.yaml")
			waitFor(t, 20*time.Second, func() bool { return dialOK(ports["127.0.0.1:2525"]) })
		case len(fields) > 2 && fields[0] == "bin/mailhook" && fields[1] == "webhook" && fields[2] == "listen":
			listen = start(filepath.Join(dir, fields[0]), fields[1:]...)
			waitFor(t, 20*time.Second, func() bool { return dialOK(ports["127.0.0.1:8080"]) })
		default:
			if fields[0] == "curl" {
				sentAt = time.Now()
				line = curl + strings.TrimPrefix(line, "curl")
			}
			cmd := exec.Command("sh", "-c", line)
			cmd.Dir, cmd.Env = dir, env
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("%s: %v\n%s", line, err, out)
			}
		}
	}
	if listen == nil || serve == nil || sentAt.IsZero() {
		t.Fatalf("First run must start `webhook listen`, `make run` and send with curl; it has %q", cmds)
	}
	// No timing is asserted beyond the README's promise; the wait is
	// bounded so a broken first run fails rather than hangs.
	deadline := sentAt.Add(10 * time.Second)
	for !strings.Contains(listen.String(), `"subject": "Hello"`) {
		if time.Now().After(deadline) {
			t.Fatalf("no webhook JSON printed by `webhook listen` within 10s of sending:\n%s", listen.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("first webhook JSON printed %s after curl started", time.Since(sentAt).Round(time.Millisecond))
	out := listen.String()
	for _, want := range []string{"signature verified (v1)", `"type": "message.received"`, `"helo": "sender.test"`, `"mail_from": "alice@sender.test"`} {
		if !strings.Contains(out, want) {
			t.Errorf("webhook listen output lacks %s:\n%s", want, out)
		}
	}
	if strings.Contains(out, "REJECTED") {
		t.Errorf("webhook listen rejected a delivery:\n%s", out)
	}
	if !strings.Contains(serve.String(), "message accepted") {
		t.Errorf("serve did not log the acceptance:\n%s", serve.String())
	}
}

// dialOK reports whether something listens on addr.
func dialOK(addr string) bool {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return false
	}
	c.Close()
	return true
}
