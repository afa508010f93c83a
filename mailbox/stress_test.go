package mailbox

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mailhook/mailhook/internal/testenv"
)

// The stress run of issue 15: imaptest's default mix of commands (LOGIN,
// LIST, STATUS, SELECT, FETCH, STORE, EXPUNGE, APPEND, LOGOUT) by 10
// clients over 10 users for 30 seconds, passwords hashed with bcrypt cost
// 4 for both servers.
const (
	stressUsers   = 10
	stressClients = 10
	stressSecs    = 30
	stressPass    = "pass"
)

// BenchmarkIMAPTestStress runs Dovecot's imaptest in stress mode
// (../shared/tools/imaptest) against our server and against Dovecot
// tuned for speed (service_count = 0 and process_min_avail = 2 for
// imap-login, its high-performance mode), and reports each one's
// operations per second and the protocol errors imaptest saw. One round
// takes a minute; run it on a quiet machine and say the load beside it:
//
//	go test -run '^$' -bench IMAPTestStress -benchtime 1x ./mailbox
func BenchmarkIMAPTestStress(b *testing.B) {
	tool := testenv.Shared(b, "tools/imaptest/imaptest")
	if _, err := os.Stat("/usr/lib/dovecot/libdovecot.so.0"); err != nil {
		testenv.Missing(b, "imaptest needs libdovecot (apt-get install dovecot-core): %v", err)
	}
	mbox := filepath.Join(filepath.Dir(tool), "tests", "default.mbox")
	hashes := make([]User, stressUsers)
	for i := range hashes {
		hashes[i] = User{Name: fmt.Sprintf("u%d", i+1), PasswordHash: mustHash(b, stressPass)}
	}
	b.Run("mailhook", func(b *testing.B) {
		users, err := NewUsers(hashes)
		if err != nil {
			b.Fatal(err)
		}
		e := newIMAPEnv(b, func(o *IMAPOptions) { o.Users = users; o.Logger = nil })
		for b.Loop() {
			runStress(b, tool, e.addr, mbox)
		}
	})
	b.Run("dovecot", func(b *testing.B) {
		addr := startDovecotServer(b, hashes)
		for b.Loop() {
			runStress(b, tool, addr, mbox)
		}
	})
}

// runStress runs one imaptest stress round against addr and reports its
// operations per second (every command counted in imaptest's totals)
// and the errors it printed.
func runStress(b *testing.B, tool, addr, mbox string) {
	b.Helper()
	host, port, _ := net.SplitHostPort(addr)
	ctx, cancel := context.WithTimeout(context.Background(), (stressSecs+60)*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, tool, "host="+host, "port="+port, "user=u%d", "pass="+stressPass,
		fmt.Sprintf("users=%d", stressUsers), fmt.Sprintf("clients=%d", stressClients),
		fmt.Sprintf("secs=%d", stressSecs), "mbox="+mbox).CombinedOutput()
	if err != nil {
		b.Fatalf("imaptest: %v\n%s", err, out)
	}
	// After "Totals:", a header line of command names, one or two lines
	// of percentages, then the counts per command.
	_, totals, ok := strings.Cut(string(out), "\nTotals:\n")
	ops := -1
	for _, line := range strings.Split(totals, "\n") {
		if n, ok := sumInts(strings.Fields(line)); ok {
			ops = n
			break
		}
	}
	if !ok || ops < 0 {
		b.Fatalf("imaptest: no totals in:\n%s", out)
	}
	errs := strings.Count(string(out), "Error: ")
	if errs > 0 {
		b.Logf("imaptest:\n%s", out)
	}
	b.ReportMetric(float64(ops)/stressSecs, "ops/s")
	b.ReportMetric(float64(errs), "errors")
}

// sumInts adds up fields if there are some and all are integers.
func sumInts(fields []string) (int, bool) {
	sum := 0
	for _, f := range fields {
		n, err := strconv.Atoi(f)
		if err != nil {
			return 0, false
		}
		sum += n
	}
	return sum, len(fields) > 0
}

// startDovecotServer starts a dovecot listening on loopback with users
// (passwd-file, the same bcrypt hashes as ours) and returns its address.
// Tuned as Dovecot's documentation advises for speed: imap-login in
// high-performance mode (service_count = 0) with process_min_avail set to
// the number of cores, so no login waits for a process to start.
func startDovecotServer(b *testing.B, users []User) string {
	b.Helper()
	bin := testenv.Tool(b, "apt-get install dovecot-imapd", "dovecot", "/usr/sbin/dovecot")
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	var passwd strings.Builder
	for _, u := range users {
		fmt.Fprintf(&passwd, "%s:{BLF-CRYPT}%s\n", u.Name, u.PasswordHash)
	}
	// The master runs as root (then the login and auth processes run as
	// Debian's dovenull and dovecot) or as us, with every process as us.
	runAs := ""
	if os.Getuid() != 0 {
		me, err := user.Current()
		if err != nil {
			b.Fatal(err)
		}
		runAs = fmt.Sprintf("default_internal_user = %[1]s\ndefault_login_user = %[1]s\n", me.Username)
	}
	d := newDovecotDir(b, runAs+fmt.Sprintf(`base_dir = %%[1]s/run
state_dir = %%[1]s/state
listen = 127.0.0.1
protocols = imap
disable_plaintext_auth = no
auth_mechanisms = plain
passdb {
  driver = passwd-file
  args = %%[1]s/passwd
}
userdb {
  driver = static
  args = uid=%%[2]d gid=%%[3]d home=%%[1]s/%%%%u
}
service imap-login {
  inet_listener imap {
    address = 127.0.0.1
    port = %d
  }
  inet_listener imaps {
    port = 0
  }
  service_count = 0
  process_min_avail = 2
}
`, port))
	if err := os.WriteFile(filepath.Join(d.dir, "passwd"), []byte(passwd.String()), 0o644); err != nil {
		b.Fatal(err)
	}
	cmd := exec.Command(bin, "-F", "-c", d.cfgFile)
	cmd.Stdout, cmd.Stderr = tWriter{b}, tWriter{b}
	if err := cmd.Start(); err != nil {
		b.Fatalf("start dovecot: %v", err)
	}
	b.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		cmd.Wait()
	})
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	// Wait for the listener (dovecot starts its processes first).
	for i := 0; ; i++ {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
			return addr
		}
		if i == 100 {
			b.Fatalf("dovecot does not listen on %s: %v", addr, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
