// Package testenv decides, for every test in the repository, what happens
// when something the test needs lives outside the repository: a tool
// (redis-server, dovecot, chromium, rspamd, postfix), a service, or data
// under ../shared (which exists only beside the team's checkout).
//
// The rule is one: a plain clone skips such a test with the reason, and a
// run with MAILHOOK_REQUIRE_ALL set to any non-empty value (CI sets it)
// fails it instead, so nothing is skipped silently in CI.
package testenv

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// RequireAll reports whether MAILHOOK_REQUIRE_ALL is set (to anything):
// then a missing dependency fails the test instead of skipping it.
func RequireAll() bool { return os.Getenv("MAILHOOK_REQUIRE_ALL") != "" }

// Missing ends the test because something it needs is not there: a skip
// with the reason, or a failure under MAILHOOK_REQUIRE_ALL.
func Missing(t testing.TB, format string, args ...any) {
	t.Helper()
	why := fmt.Sprintf(format, args...)
	if RequireAll() {
		t.Fatalf("%s (required: MAILHOOK_REQUIRE_ALL is set)", why)
	}
	t.Skipf("%s (set MAILHOOK_REQUIRE_ALL=1 to fail instead)", why)
}

// Tool returns the path of the first of names found on PATH (or as an
// absolute path), or calls Missing with hint (how to install it).
func Tool(t testing.TB, hint string, names ...string) string {
	t.Helper()
	for _, n := range names {
		if n == "" {
			continue
		}
		if p, err := exec.LookPath(n); err == nil {
			return p
		}
	}
	Missing(t, "%v not installed (%s)", names, hint)
	return ""
}

// ModuleRoot returns the directory that holds the repository's go.mod,
// found by walking up from the test's working directory.
func ModuleRoot(t testing.TB) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatalf("getwd: %v", err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatalf("no go.mod above the test's directory")
		}
		dir = parent
	}
}

// Shared returns the path of rel under the team's shared/ folder, which
// sits beside the repository (../shared from the module root), or calls
// Missing when it is not there (a plain clone).
func Shared(t testing.TB, rel string) string {
	t.Helper()
	p := filepath.Join(filepath.Dir(ModuleRoot(t)), "shared", rel)
	if _, err := os.Stat(p); err != nil {
		Missing(t, "%s not found: it lives in the team's shared/ folder beside the repository", p)
	}
	return p
}

// FreePort returns a loopback TCP port that nothing listens on now (the
// kernel's choice), for a server a test starts itself.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// FreeAddr is a FreePort as "127.0.0.1:PORT"; no free port fails t.
func FreeAddr(t testing.TB) string {
	t.Helper()
	p, err := FreePort()
	if err != nil {
		t.Fatalf("no free loopback port: %v", err)
	}
	return fmt.Sprintf("127.0.0.1:%d", p)
}
