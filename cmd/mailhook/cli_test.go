package main

import (
	"bytes"
	"crypto/tls"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"golang.org/x/crypto/bcrypt"

	"github.com/mailhook/mailhook/deliver/relay"
	"github.com/mailhook/mailhook/deliver/webhook"
)

func runCLI(t *testing.T, stdin string, args ...string) (string, string, int) {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(args, strings.NewReader(stdin), &out, &errb)
	return out.String(), errb.String(), code
}

func TestUserAdd(t *testing.T) {
	out, _, code := runCLI(t, "s3cret-pass\n", "user", "add", "carol", "--address", "carol@example.test")
	if code != 0 {
		t.Fatalf("exit %d", code)
	}
	m := regexp.MustCompile(`password_hash: "([^"]+)"`).FindStringSubmatch(out)
	if m == nil || !strings.Contains(out, `name: carol`) || !strings.Contains(out, `"carol@example.test"`) {
		t.Fatalf("output %q", out)
	}
	if bcrypt.CompareHashAndPassword([]byte(m[1]), []byte("s3cret-pass")) != nil {
		t.Error("the printed hash does not match the password")
	}
	if _, errOut, code := runCLI(t, "short\n", "user", "add", "carol", "--address", "carol@example.test"); code == 0 || !strings.Contains(errOut, "at least 8") {
		t.Errorf("short password: exit %d, %q", code, errOut)
	}
}

func TestKeyAndSecretCommands(t *testing.T) {
	out, _, _ := runCLI(t, "", "webhook", "secret")
	if _, err := webhook.ParseSecret(strings.TrimSpace(out)); err != nil {
		t.Errorf("webhook secret %q: %v", out, err)
	}
	dir := t.TempDir()
	key := filepath.Join(dir, "dkim.pem")
	out, _, code := runCLI(t, "", "dkim", "keygen", "--algo", "ed25519", "--out", key, "--domain", "example.test", "--selector", "s1")
	if code != 0 || !strings.Contains(out, `s1._domainkey.example.test. IN TXT "v=DKIM1; k=ed25519; p=`) {
		t.Fatalf("dkim keygen: %d %q", code, out)
	}
	if _, err := relay.LoadDKIMSigner("example.test", "s1", key); err != nil {
		t.Errorf("the written key does not load: %v", err)
	}
	cert, keyf := filepath.Join(dir, "c.pem"), filepath.Join(dir, "k.pem")
	if _, _, code := runCLI(t, "", "tls", "selfsigned", "--host", "mx.example.test,127.0.0.1", "--cert", cert, "--key", keyf); code != 0 {
		t.Fatalf("tls selfsigned exit %d", code)
	}
	if _, err := tls.LoadX509KeyPair(cert, keyf); err != nil {
		t.Errorf("self-signed pair does not load: %v", err)
	}
	if st, _ := os.Stat(keyf); st.Mode().Perm() != 0o600 {
		t.Errorf("key file mode %v", st.Mode())
	}
	if _, _, code := runCLI(t, "", "no-such-command"); code != 2 {
		t.Errorf("unknown command exit %d, want 2", code)
	}
}

// TestKeyToolsRefuseToOverwrite: a second keygen or selfsigned to the same
// files leaves them as they were unless --force; keygen needs --domain.
func TestKeyToolsRefuseToOverwrite(t *testing.T) {
	dir := t.TempDir()
	key := filepath.Join(dir, "dkim.pem")
	if _, _, code := runCLI(t, "", "dkim", "keygen", "--algo", "ed25519", "--out", key, "--domain", "a.test"); code != 0 {
		t.Fatalf("first keygen exit %d", code)
	}
	first := mustRead(t, key)
	if _, errOut, code := runCLI(t, "", "dkim", "keygen", "--algo", "ed25519", "--out", key, "--domain", "b.test"); code == 0 || !strings.Contains(errOut, "already exists") || !strings.Contains(errOut, "--force") {
		t.Errorf("second keygen: exit %d, %q", code, errOut)
	}
	if mustRead(t, key) != first {
		t.Fatal("the second keygen replaced the first key")
	}
	if _, _, code := runCLI(t, "", "dkim", "keygen", "--algo", "ed25519", "--out", key, "--domain", "b.test", "--force"); code != 0 || mustRead(t, key) == first {
		t.Errorf("keygen --force: exit %d, key replaced %v", code, mustRead(t, key) != first)
	}
	if _, errOut, code := runCLI(t, "", "dkim", "keygen", "--out", filepath.Join(dir, "x.pem")); code != 2 || !strings.Contains(errOut, "--domain") {
		t.Errorf("keygen without --domain: exit %d, %q", code, errOut)
	}
	// The default file name carries the domain and selector.
	t.Chdir(dir)
	if out, _, code := runCLI(t, "", "dkim", "keygen", "--algo", "ed25519", "--domain", "c.test", "--selector", "s2"); code != 0 || !strings.Contains(out, "c.test.s2.dkim.pem") {
		t.Errorf("keygen default file: exit %d, %q", code, out)
	}
	cert, keyf := filepath.Join(dir, "c.pem"), filepath.Join(dir, "k.pem")
	if _, _, code := runCLI(t, "", "tls", "selfsigned", "--cert", cert, "--key", keyf); code != 0 {
		t.Fatalf("selfsigned exit %d", code)
	}
	firstCert := mustRead(t, cert)
	if _, errOut, code := runCLI(t, "", "tls", "selfsigned", "--cert", cert, "--key", keyf); code == 0 || !strings.Contains(errOut, "already exists") || mustRead(t, cert) != firstCert {
		t.Errorf("second selfsigned: exit %d, %q", code, errOut)
	}
	if _, _, code := runCLI(t, "", "tls", "selfsigned", "--cert", cert, "--key", keyf, "--force"); code != 0 || mustRead(t, cert) == firstCert {
		t.Errorf("selfsigned --force: exit %d", code)
	}
}
