package main

import (
	"bufio"
	"cmp"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// serveOptions describe one `mailhook serve` instance under test.
type serveOptions struct {
	Binary    string
	Dir       string // temp dir for the config, data_dir and the log
	DNS       string
	HookURL   string
	Secret    string
	Backend   string // embedded | redis
	RedisAddr string
	Prefix    string // Redis key prefix, fresh per run
	Shards    int    // queue.redis.shards (0 = the default)
	Node      string // node.name
	AdminAddr string // "" = no admin listener
	// AdminToken is the admin API's bearer token; with an admin listener
	// the config also enables /debug/pprof (admin.pprof) behind it.
	AdminToken string
	LogLevel   string
	// Rspamd is verify.rspamd.url ("" for none); enforce is off, so the
	// load's messages are accepted whatever rspamd says.
	Rspamd string
}

// mailhookProc is a running `mailhook serve`.
type mailhookProc struct {
	cmd     *exec.Cmd
	smtp    string
	logPath string
	logFile *os.File
	done    chan error

	mu     sync.Mutex
	peakKB int64
	stopHW chan struct{}
	hwDone chan struct{}
}

// writeServeConfig writes the config of a bench instance and returns its
// path and SMTP address. The SMTP limits are raised for the load; every
// other setting is the default a user gets.
func writeServeConfig(o serveOptions) (path, smtpAddr string, err error) {
	smtpAddr, err = freeAddr()
	if err != nil {
		return "", "", err
	}
	admin := `{listen: ""}`
	if o.AdminAddr != "" {
		admin = fmt.Sprintf("{listen: %q, token: %q, pprof: true}", o.AdminAddr, o.AdminToken)
	}
	rspamd := ""
	if o.Rspamd != "" {
		rspamd = fmt.Sprintf(", rspamd: {url: %q, enforce: false}", o.Rspamd)
	}
	redis := ""
	if o.Backend == "redis" {
		where := fmt.Sprintf("addr: %q", o.RedisAddr)
		if strings.Contains(o.RedisAddr, ",") {
			// REDIS_ADDR=host:port,host:port,...: a Redis Cluster.
			where = fmt.Sprintf("addrs: [%s]", strings.ReplaceAll(o.RedisAddr, ",", ", "))
		}
		redis = fmt.Sprintf(", redis: {%s, prefix: %q, shards: %d}", where, o.Prefix, max(o.Shards, 1))
	}
	cfg := fmt.Sprintf(`# written by mailhook-bench
hostname: mx.example.test
data_dir: %q
domains: [%s]
log: {level: %s, format: text}
node: {name: %q}
smtp:
  listen: %q
  max_connections: 5000
  max_connections_per_ip: 5000
  max_commands: 1000000
  shutdown_timeout: 10s
verify: {dns_resolver: %q, enforce_dmarc: true%s}
queue: {backend: %s%s}
webhooks:
  bench: {url: %q, secret: %q, allow_private: true, timeout: 10s}
mailbox: {imap_listen: "", pop3_listen: ""}
admin: %s
routes:
  - name: bench
    match: {rcpt: "*@%s"}
    actions: [{webhook: bench}]
`, filepath.Join(o.Dir, "data"), rcptDomain, o.LogLevel, cmp.Or(o.Node, "node0"), smtpAddr, o.DNS, rspamd, o.Backend, redis,
		o.HookURL, o.Secret, admin, rcptDomain)
	path = filepath.Join(o.Dir, "config.yaml")
	return path, smtpAddr, os.WriteFile(path, []byte(cfg), 0o600)
}

// startMailhook starts `mailhook serve` and waits until its SMTP port
// answers.
func startMailhook(ctx context.Context, o serveOptions) (*mailhookProc, error) {
	cfgPath, addr, err := writeServeConfig(o)
	if err != nil {
		return nil, err
	}
	logPath := filepath.Join(o.Dir, "mailhook.log")
	lf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(o.Binary, "serve", "--config", cfgPath)
	cmd.Stdout, cmd.Stderr = lf, lf
	if err := cmd.Start(); err != nil {
		lf.Close()
		return nil, fmt.Errorf("start %s: %w", o.Binary, err)
	}
	p := &mailhookProc{cmd: cmd, smtp: addr, logPath: logPath, logFile: lf, done: make(chan error, 1),
		stopHW: make(chan struct{}), hwDone: make(chan struct{})}
	go func() { p.done <- cmd.Wait() }()
	go p.watchRSS()
	deadline := time.Now().Add(30 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return p, nil
		}
		select {
		case err := <-p.done:
			p.done <- err
			close(p.stopHW)
			<-p.hwDone
			lf.Close()
			return nil, fmt.Errorf("mailhook serve exited (%v):\n%s", err, tail(logPath, 20))
		case <-ctx.Done():
			p.stop()
			return nil, ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			p.stop()
			return nil, fmt.Errorf("mailhook serve did not listen on %s within 30s:\n%s", addr, tail(logPath, 20))
		}
	}
}

// watchRSS samples VmHWM (the peak resident set, proc(5)) while the
// process runs; the last sample is taken just before the stop.
func (p *mailhookProc) watchRSS() {
	defer close(p.hwDone)
	t := time.NewTicker(200 * time.Millisecond)
	defer t.Stop()
	for {
		p.sampleRSS()
		select {
		case <-p.stopHW:
			p.sampleRSS()
			return
		case <-t.C:
		}
	}
}

func (p *mailhookProc) sampleRSS() {
	kb := procStatusKB(p.cmd.Process.Pid, "VmHWM")
	p.mu.Lock()
	p.peakKB = max(p.peakKB, kb)
	p.mu.Unlock()
}

// procStatusKB reads one "Name: N kB" line of /proc/PID/status; 0 when it
// cannot.
func procStatusKB(pid int, name string) int64 {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+":"); ok {
			n, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return n
		}
	}
	return 0
}

// stopResult is what the stop of a mailhook instance tells.
type stopResult struct {
	PeakRSSKB  int64
	CPUSeconds float64 // user + system over its whole life
	ExitErr    error
}

// stopWait is how long a SIGTERM'd mailhook may take to exit: the
// config's smtp.shutdown_timeout (10 s) and a margin for the workers.
const stopWait = 25 * time.Second

// stop sends SIGTERM, waits for the exit (SIGQUIT, then SIGKILL, after
// stopWait) and returns the peak RSS and the CPU time used.
func (p *mailhookProc) stop() stopResult {
	close(p.stopHW)
	<-p.hwDone
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	var err error
	select {
	case err = <-p.done:
	case <-time.After(stopWait):
		// SIGQUIT makes the Go runtime write every goroutine's stack to
		// the log before it exits: the record of what hung.
		_ = p.cmd.Process.Signal(syscall.SIGQUIT)
		select {
		case err = <-p.done:
		case <-time.After(5 * time.Second):
			_ = p.cmd.Process.Kill()
			err = <-p.done
		}
		err = fmt.Errorf("no exit within %v of SIGTERM; goroutine dump (SIGQUIT) in %s: %w", stopWait, p.logPath, err)
	}
	p.logFile.Close()
	r := stopResult{PeakRSSKB: p.peakKB, ExitErr: err}
	if ps := p.cmd.ProcessState; ps != nil {
		r.CPUSeconds = (ps.UserTime() + ps.SystemTime()).Seconds()
		if ru, ok := ps.SysUsage().(*syscall.Rusage); ok {
			r.PeakRSSKB = max(r.PeakRSSKB, ru.Maxrss) // kB on Linux, getrusage(2)
		}
	}
	return r
}

// tail returns the last n lines of a file.
func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// freeAddr returns a 127.0.0.1 address with a port free a moment ago.
func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// redisServer is a redis-server the bench started, or one it was given.
type redisServer struct {
	addr string
	cmd  *exec.Cmd
	done chan error
}

// startRedis uses REDIS_ADDR when set, else starts `redis-server` on a free
// port without persistence (mailhook's commit then waits on Redis's reply
// only, as with the default redis settings of most deployments).
func startRedis(ctx context.Context) (*redisServer, error) {
	if a := os.Getenv("REDIS_ADDR"); a != "" {
		return &redisServer{addr: a}, nil
	}
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		return nil, errors.New("redis-server not found and REDIS_ADDR not set")
	}
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	_, port, _ := net.SplitHostPort(addr)
	cmd := exec.Command(bin, "--port", port, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no")
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start redis-server: %w", err)
	}
	r := &redisServer{addr: addr, cmd: cmd, done: make(chan error, 1)}
	go func() { r.done <- cmd.Wait() }()
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return r, nil
		}
		select {
		case err := <-r.done:
			return nil, fmt.Errorf("redis-server exited: %v", err)
		case <-ctx.Done():
			r.Close()
			return nil, ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			r.Close()
			return nil, fmt.Errorf("redis-server did not listen on %s", addr)
		}
	}
}

// Close stops a redis-server the bench started.
func (r *redisServer) Close() {
	if r == nil || r.cmd == nil {
		return
	}
	_ = r.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-r.done:
	case <-time.After(5 * time.Second):
		_ = r.cmd.Process.Kill()
		<-r.done
	}
}
