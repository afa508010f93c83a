// Package rspamdtest runs a real rspamd (the Debian package) for tests: one
// normal worker on a free loopback port, its configuration, database,
// run and log files in the test's temporary directory, and its DNS
// pointed at a loopback server (dns/dnstest) that answers NXDOMAIN
// for everything, so scans do not wait on lookups that cannot leave the
// machine. It needs no Redis: the modules that want one stay off.
package rspamdtest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/mailhook/mailhook/dns/dnstest"
	"github.com/mailhook/mailhook/internal/testenv"
)

// The GTUBE test strings (https://rspamd.com/doc/other/gtube_patterns.html):
// rspamd answers reject for GTUBE whatever its configuration, and, with
// test patterns enabled (as here), add header (score 6) for GTUBEAddHeader
// and rewrite subject for GTUBERewriteSubject. rspamd looks for them only
// in a text part longer than the pattern.
const (
	GTUBE               = "XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X"
	GTUBEAddHeader      = "YJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X"
	GTUBERewriteSubject = "ZJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X"
)

// Server is a running rspamd.
type Server struct {
	// URL is the normal worker's base URL, like "http://127.0.0.1:40123".
	URL string
	// Dir holds the configuration and rspamd.log.
	Dir string

	cmd  *exec.Cmd
	done chan struct{}
	once sync.Once
}

// Options change the configuration of a Server.
type Options struct {
	// LocalD maps file names under local.d to their content, added to
	// what Start writes (like "actions.conf": "greylist = null;").
	LocalD map[string]string
}

// startTimeout bounds the wait for rspamd to answer /ping; it loads its
// rules for a few seconds, longer on a loaded machine.
const startTimeout = 2 * time.Minute

// Start starts rspamd and stops it when the test ends. A machine without
// rspamd skips the test (or fails it under MAILHOOK_REQUIRE_ALL).
func Start(t testing.TB, o ...Options) *Server {
	t.Helper()
	bin := testenv.Tool(t, "apt-get install rspamd; scripts/test-deps.sh installs it", "rspamd")
	var opt Options
	if len(o) > 0 {
		opt = o[0]
	}
	dns := dnstest.Start(t, "")
	dir := t.TempDir()
	port, err := testenv.FreePort()
	if err != nil {
		t.Fatalf("rspamdtest: %v", err)
	}
	files := map[string]string{
		"rspamd.conf": fmt.Sprintf(mainConf, port, filepath.Join(dir, "languages")),
		// What makes a cold start slow is left out: hyperscan (it compiles
		// every regexp), the public suffix list (over a minute to compile
		// its matcher; a few suffixes do for tests), the language models
		// (an empty directory) and the fuzzy check (it resolves
		// rspamd.com's servers at start). DNS goes to the loopback server.
		"local.d/options.inc": fmt.Sprintf(`disable_hyperscan = true;
enable_test_patterns = true;
filters = "chartable,dkim,regexp";
control_socket = "";
url_tld = "%s";
dns { nameserver = ["%s"]; timeout = 500ms; retransmits = 1; }
`, filepath.Join(dir, "tld.dat"), dns.Addr()),
		"tld.dat":                   "com\norg\nnet\ntest\nexample\ninvalid\n",
		"languages/.keep":           "",
		"local.d/http_headers.conf": "enabled = true;\n",
		// rspamd cannot greylist without Redis; a "greylist" answer would
		// defer ordinary mail for ever.
		"local.d/actions.conf": "greylist = null;\n",
	}
	for k, v := range opt.LocalD {
		files["local.d/"+k] = v
	}
	for name, content := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatalf("rspamdtest: %v", err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatalf("rspamdtest: %v", err)
		}
	}
	args := []string{"-f", "-c", filepath.Join(dir, "rspamd.conf"),
		"--var=LOCAL_CONFDIR=" + dir, "--var=DBDIR=" + dir, "--var=RUNDIR=" + dir, "--var=LOGDIR=" + dir}
	if os.Geteuid() == 0 {
		// rspamd refuses to run as root unless told to stay root; CI runs
		// tests as root.
		args = append(args, "-i", "-u", "root", "-g", "root")
	}
	cmd := exec.Command(bin, args...)
	out, err := os.Create(filepath.Join(dir, "stdout.log"))
	if err != nil {
		t.Fatalf("rspamdtest: %v", err)
	}
	defer out.Close()
	cmd.Stdout, cmd.Stderr = out, out
	// Its own process group, so Stop ends the workers it forked too.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatalf("rspamdtest: start %s: %v", bin, err)
	}
	s := &Server{URL: fmt.Sprintf("http://127.0.0.1:%d", port), Dir: dir, cmd: cmd, done: make(chan struct{})}
	go func() { cmd.Wait(); close(s.done) }()
	t.Cleanup(s.Stop)
	if err := s.waitReady(); err != nil {
		s.Stop()
		t.Fatalf("rspamdtest: %v\n%s", err, s.logTail())
	}
	return s
}

// Stop stops rspamd and waits for it to exit. It is safe to call twice.
func (s *Server) Stop() {
	s.once.Do(func() {
		// The negative pid is the process group Start made: rspamd's main
		// process and its workers, nothing else.
		_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGTERM)
		select {
		case <-s.done:
		case <-time.After(3 * time.Second): // rspamd may wait for its workers
			_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
			<-s.done
		}
	})
}

// waitReady polls /ping until rspamd answers "pong" or exits.
func (s *Server) waitReady() error {
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, s.URL+"/ping", nil)
		if resp, err := http.DefaultClient.Do(req); err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if strings.HasPrefix(string(b), "pong") {
				return nil
			}
		}
		select {
		case <-s.done:
			return errors.New("rspamd exited before answering /ping")
		case <-ctx.Done():
			return fmt.Errorf("rspamd did not answer /ping within %s", startTimeout)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// logTail returns the end of rspamd's output and log, for a failure.
func (s *Server) logTail() string {
	var b strings.Builder
	for _, n := range []string{"stdout.log", "rspamd.log"} {
		data, _ := os.ReadFile(filepath.Join(s.Dir, n))
		if len(data) > 4000 {
			data = data[len(data)-4000:]
		}
		fmt.Fprintf(&b, "--- %s\n%s", n, data)
	}
	return b.String()
}

// mainConf is rspamd.conf: the packaged rules and modules ($CONFDIR is
// /etc/rspamd), one normal worker, no controller, proxy or fuzzy storage.
const mainConf = `.include "$CONFDIR/common.conf"
options {
    pidfile = "$RUNDIR/rspamd.pid";
    .include "$CONFDIR/options.inc"
    .include(try=true; priority=1,duplicate=merge) "$LOCAL_CONFDIR/local.d/options.inc"
}
logging {
    type = "file";
    filename = "$LOGDIR/rspamd.log";
    level = "warning";
}
worker "normal" {
    bind_socket = "127.0.0.1:%d";
    mime = true;
    count = 1;
}
lang_detection {
    languages = "%s";
}
`
