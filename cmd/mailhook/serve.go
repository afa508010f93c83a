package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"maps"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"

	"github.com/mailhook/mailhook/admin"
	"github.com/mailhook/mailhook/config"
	"github.com/mailhook/mailhook/deliver"
	"github.com/mailhook/mailhook/deliver/pebbleq"
	"github.com/mailhook/mailhook/deliver/relay"
	"github.com/mailhook/mailhook/deliver/webhook"
	"github.com/mailhook/mailhook/dns"
	"github.com/mailhook/mailhook/header"
	"github.com/mailhook/mailhook/ingest"
	"github.com/mailhook/mailhook/ingest/auth"
	"github.com/mailhook/mailhook/internal/loginlimit"
	"github.com/mailhook/mailhook/mailbox"
	"github.com/mailhook/mailhook/parse"
	"github.com/mailhook/mailhook/replyaddr"
	"github.com/mailhook/mailhook/route"
)

func init() {
	register(command{name: "serve", summary: "run everything the config enables", run: serveCmd})
}

func serveCmd(args []string, _ io.Reader, stdout, stderr io.Writer) int {
	fs, path := newFlags("serve", stderr)
	if _, err := parseFlags(fs, args); err != nil {
		return exitErr(stderr, err)
	}
	cfg, err := loadConfig(*path, stderr)
	if err != nil {
		return 1
	}
	log := newLogger(cfg.Log, stderr)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	app, err := newApp(cfg, *path, log)
	if err != nil {
		log.Error("cannot start", "error", err)
		return 1
	}
	if err := app.run(ctx); err != nil {
		log.Error("stopped with an error", "error", err)
		return 1
	}
	return 0
}

// loadConfig loads and validates the config, printing every problem.
func loadConfig(path string, stderr io.Writer) (*config.Config, error) {
	cfg, err := config.Load(path, configChecks...)
	if err != nil {
		var verrs config.ValidationErrors
		if errors.As(err, &verrs) {
			fmt.Fprintf(stderr, "mailhook: %s: %d problem(s):\n", path, len(verrs))
			for _, e := range verrs {
				fmt.Fprintf(stderr, "  %s: %s\n", e.Key, e.Reason)
			}
		} else {
			fmt.Fprintf(stderr, "mailhook: %v\n", err)
			noConfigHint(stderr, err)
		}
		return nil, err
	}
	return cfg, nil
}

// noConfigHint tells a newcomer where a config comes from when the file is
// missing.
func noConfigHint(stderr io.Writer, err error) {
	if errors.Is(err, fs.ErrNotExist) {
		fmt.Fprintln(stderr, "mailhook: to start from the example: cp config.example.yaml config.yaml (or give --config FILE, or set $MAILHOOK_CONFIG)")
	}
}

func newLogger(c config.Log, w io.Writer) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(c.Level))
	opts := &slog.HandlerOptions{Level: level}
	if c.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// app is a running mailhook: everything the config enables, wired.
type app struct {
	cfg    *config.Config
	path   string
	log    *slog.Logger
	policy atomic.Pointer[ingest.Policy]
	queue  deliver.Backend
	runner *deliver.Runner
	// mails hands the mails the SMTP listener commits to this node's
	// workers without a read back from the queue.
	mails   *deliver.MailCache
	store   *mailbox.Store
	users   *mailbox.Users
	limiter *loginlimit.Limiter
	srs     *relay.SRS
	// webhooks is the webhook handler; reload swaps its endpoints
	webhooks *webhook.SwapSender
	// reply signs reply addresses for the admin API (nil: off); reload
	// swaps it
	reply atomic.Pointer[replyaddr.Signer]
	// activity and metrics are fed by the listener and the workers
	activity  *admin.Activity
	metrics   *admin.Metrics
	attachKey []byte
	// activityW writes the activity log's records off the SMTP reply's
	// path and the workers'
	activityW *admin.Writer
	smtp      *ingest.Server
	closers   []func()
	// servers run beside the SMTP listener (IMAP, POP3, admin): each
	// serve blocks until shutdown is called.
	servers []server
	// running is the config.Fingerprint of what runs: the file at start,
	// with the reloadable keys of each accepted reload.
	running atomic.Pointer[map[string]string]
}

type server struct {
	name     string
	serve    func() error                    // nil: nothing to run, only to stop
	shutdown func(ctx context.Context) error // nil: stops with its listener
}

func newApp(cfg *config.Config, path string, log *slog.Logger) (_ *app, err error) {
	a := &app{cfg: cfg, path: path, log: log}
	fp := config.Fingerprint(cfg)
	a.running.Store(&fp)
	// On failure, close what was opened (a, not the nil returned).
	defer func() {
		if err != nil {
			a.close()
		}
	}()
	// 0700: everything below is mail, queue state or secrets.
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("data_dir: %w", err)
	}
	pol, err := buildPolicy(cfg)
	if err != nil {
		return nil, err
	}
	a.policy.Store(pol)
	if err := a.loadReply(cfg); err != nil {
		return nil, err
	}

	// A node without the mailbox role never opens a mailbox store: the
	// one node that has it (claimed in Redis below) takes the mailbox jobs.
	if cfg.Node.Has(config.RoleMailbox) {
		if err := a.openMailbox(); err != nil {
			return nil, err
		}
	}
	// One resolver, with one cache, for verification and the relay.
	resolver, err := dns.NewResolver(dns.ResolverOptions{
		Server:  cfg.Verify.DNSResolver,
		Timeout: cfg.Verify.LookupTimeout,
		Logger:  log,
	})
	if err != nil {
		return nil, fmt.Errorf("verify: resolver: %w", err)
	}
	verifier, err := auth.NewVerifier(auth.Options{
		DNS:            resolver,
		AuthServID:     cfg.Hostname,
		MessageTimeout: cfg.Verify.MessageTimeout,
		MaxHeaderBytes: int(cfg.Parse.MaxHeaderBytes),
		Logger:         log,
	})
	if err != nil {
		return nil, fmt.Errorf("verify: %w", err)
	}
	if a.srs, err = openSRS(cfg); err != nil {
		return nil, err
	}
	if err := a.openQueue(); err != nil {
		return nil, err
	}
	if err := a.openAdmin(); err != nil {
		return nil, err
	}
	handlers, err := a.handlers(resolver)
	if err != nil {
		return nil, err
	}
	// An mx-only node has no handlers and no runner: it commits, the
	// other nodes deliver.
	var notify func()
	if len(handlers) > 0 {
		// This node delivers: the mails it commits go to its workers in
		// memory (an mx-only node has no one to hand them to).
		a.mails = deliver.NewMailCache(0)
		if a.runner, err = a.newRunner(handlers); err != nil {
			return nil, err
		}
		notify = a.runner.Notify
	}

	var tlsConfig *tls.Config
	if cfg.SMTP.TLS.Enabled() {
		cert, err := tls.LoadX509KeyPair(cfg.SMTP.TLS.CertFile, cfg.SMTP.TLS.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("smtp.tls: %w", err)
		}
		tlsConfig = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	}
	popts := parseOptions(cfg)
	// Sync webhooks are POSTed during DATA, before the commit.
	syncStep := &webhook.SyncStep{Sender: a.webhooks.Current, OnAttempt: a.onAttempt, OnRefusedAttempt: a.onRefusedAttempt, Logger: log}
	spam, err := spamOptions(cfg)
	if err != nil {
		return nil, err
	}
	a.smtp, err = ingest.New(ingest.Options{
		Hostname:    cfg.Hostname,
		Policy:      a.policy.Load,
		Verifier:    verifier,
		Attachments: a.attachmentLinker().Link,
		Parse:       func(r io.Reader) (*parse.Message, error) { return parse.Parse(r, popts) },
		Committer:   &deliver.Committer{Queue: a.queue, Notify: notify, Committed: a.committed, Sync: syncStep.Run, Cache: a.mails},
		SpoolDir:    filepath.Join(cfg.DataDir, "spool"),
		Limits: ingest.Limits{
			MaxMessageBytes:     cfg.SMTP.MaxMessageBytes,
			MaxRecipients:       cfg.SMTP.MaxRecipients,
			MaxLineLength:       cfg.SMTP.MaxLineLength,
			MaxErrors:           cfg.SMTP.MaxErrors,
			MaxCommands:         cfg.SMTP.MaxCommands,
			MaxConnections:      cfg.SMTP.MaxConnections,
			MaxConnectionsPerIP: cfg.SMTP.MaxConnectionsPerIP,
			ReadTimeout:         cfg.SMTP.ReadTimeout,
			WriteTimeout:        cfg.SMTP.WriteTimeout,
			VerifyTimeout:       cfg.Verify.MessageTimeout,
			MaxHeaderBytes:      int(cfg.Parse.MaxHeaderBytes),
			MaxSessionTime:      cfg.SMTP.MaxSessionTime,
			MinDataRate:         minDataRate(cfg.SMTP.MinDataRate),
		},
		TLSConfig:        tlsConfig,
		EnforceDMARC:     cfg.Verify.EnforceDMARC,
		DeferOnTempError: cfg.Verify.OnTempError == "defer",
		MultipleFrom:     cfg.Verify.MultipleFrom,
		CheckLoop: func(h *header.Header) error {
			hf := relay.FactsOf(h.Fields)
			// The stored copy the relay checks again also carries the
			// Received field ingest prepends.
			hf.Received++
			return relay.CheckLoop(hf, cfg.Hostname, cfg.Relay.MaxReceived)
		},
		Bounce:       a.srs.Bounce,
		BeforeCommit: a.beforeCommit,
		Observer:     observer{a},
		Spam:         spam,
		Logger:       log,
	})
	if err != nil {
		return nil, err
	}
	if err := a.extraServers(); err != nil {
		return nil, err
	}
	if err := a.adminServer(); err != nil {
		return nil, err
	}
	return a, nil
}

// newRunner makes the workers for the job kinds this node handles.
func (a *app) newRunner(handlers map[deliver.Kind]deliver.Handler) (*deliver.Runner, error) {
	cfg, log := a.cfg, a.log
	return deliver.NewRunner(deliver.RunnerOptions{
		Queue:    a.queue,
		Handlers: handlers,
		Concurrency: map[deliver.Kind]int{
			deliver.KindWebhook: cfg.Queue.Concurrency.Webhook,
			deliver.KindRelay:   cfg.Queue.Concurrency.Relay,
			deliver.KindMailbox: cfg.Queue.Concurrency.Mailbox,
		},
		Lease:     cfg.Queue.Lease,
		Schedule:  cfg.Queue.Retry.Schedule,
		MaxAge:    cfg.Queue.Retry.MaxAge,
		Logger:    log,
		OnAttempt: a.onAttempt,
		Cache:     a.mails,
	})
}

// minDataRate maps smtp.min_data_rate to ingest's: 0 (off) is negative
// there, where 0 means the default.
func minDataRate(r int64) int64 {
	if r == 0 {
		return -1
	}
	return r
}

func parseOptions(cfg *config.Config) parse.Options {
	return parse.Options{
		MaxDepth:        cfg.Parse.MaxDepth,
		MaxParts:        cfg.Parse.MaxParts,
		MaxHeaderBytes:  cfg.Parse.MaxHeaderBytes,
		MaxDecodedBytes: cfg.Parse.MaxDecodedBytes,
		InlineLimit:     cfg.Parse.InlineLimit,
	}
}

// buildPolicy compiles the parts of the config that hot reload swaps: the
// domains, and the rules with each mailbox user's implicit one
// (config.Rules).
func buildPolicy(cfg *config.Config) (*ingest.Policy, error) {
	table, err := route.Compile(cfg.Rules(), route.KnownOf(cfg))
	if err != nil {
		return nil, err
	}
	signer, err := replySigner(cfg)
	if err != nil {
		return nil, err
	}
	if signer != nil {
		table = table.WithReply(signer)
	}
	domains := map[string]bool{}
	for _, d := range cfg.Domains {
		domains[d] = true
	}
	return &ingest.Policy{Domains: domains, Router: table}, nil
}

func (a *app) openQueue() error {
	switch a.cfg.Queue.Backend {
	case "embedded":
		q, err := pebbleq.Open(a.cfg.DataDir, pebbleq.Options{Logger: a.log, DedupWindow: a.cfg.Queue.DedupWindow})
		if err != nil {
			return fmt.Errorf("queue: %w", err)
		}
		a.queue = q
	case "redis":
		q, closeClient, err := openRedisQueue(a.cfg, a.log)
		if err != nil {
			return fmt.Errorf("queue.redis: %w", err)
		}
		a.queue = q
		a.closers = append(a.closers, closeClient)
		if err := startRedisNode(q, a.cfg); err != nil {
			return err
		}
	default:
		return fmt.Errorf("queue.backend: %q is not one of embedded, redis", a.cfg.Queue.Backend)
	}
	return nil
}

func (a *app) close() {
	for i := len(a.closers) - 1; i >= 0; i-- {
		a.closers[i]()
	}
	if a.queue != nil {
		a.queue.Close()
	}
}

// run serves until ctx is cancelled (SIGTERM, SIGINT), then stops in
// order: stop accepting mail and let sessions in flight finish (bounded by
// smtp.shutdown_timeout), then stop the workers (attempts in flight finish
// or go back to the queue), then close the store.
func (a *app) run(ctx context.Context) error {
	defer a.close()
	smtpAddr := "(no mx role)"
	var l net.Listener
	if a.cfg.Node.Has(config.RoleMX) {
		var err error
		if l, err = ingest.Listen(a.cfg.SMTP.Listen); err != nil {
			return fmt.Errorf("smtp.listen: %w", err)
		}
		smtpAddr = l.Addr().String()
	}
	a.log.Info("mailhook started", "version", version, "smtp", smtpAddr, "queue", a.cfg.Queue.Backend,
		"node", nodeName(a.cfg), "roles", strings.Join(a.cfg.Node.Roles, ","))

	errc := make(chan error, 2+len(a.servers))
	runCtx, cancelRun := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	if a.runner != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := a.runner.Run(runCtx); err != nil && !errors.Is(err, context.Canceled) {
				errc <- fmt.Errorf("workers: %w", err)
			}
		}()
	}
	if l != nil {
		go func() { errc <- a.smtp.Serve(l) }()
	}
	a.background(runCtx)
	for _, s := range a.servers {
		if s.serve == nil {
			continue
		}
		go func() {
			if err := s.serve(); err != nil {
				errc <- fmt.Errorf("%s: %w", s.name, err)
			}
		}()
	}
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	changed := a.watchConfig(runCtx)

	var runErr error
loop:
	for {
		select {
		case <-ctx.Done():
			break loop
		case <-hup:
			a.reload()
		case <-changed:
			a.log.Info("config file changed; reloading")
			a.reload()
		case err := <-errc:
			if err != nil {
				runErr = err
				break loop
			}
		}
	}
	a.log.Info("shutting down", "bound", a.cfg.SMTP.ShutdownTimeout)
	sctx, cancel := context.WithTimeout(context.Background(), a.cfg.SMTP.ShutdownTimeout)
	defer cancel()
	if err := a.smtp.Shutdown(sctx); err != nil {
		a.log.Warn("smtp shutdown", "error", err)
	}
	for _, s := range a.servers {
		if s.shutdown == nil {
			continue
		}
		if err := s.shutdown(sctx); err != nil {
			a.log.Warn(s.name+" shutdown", "error", err)
		}
	}
	cancelRun()
	wg.Wait()
	a.log.Info("stopped")
	return runErr
}

// reload re-reads the config (SIGHUP, or the file changed) and swaps what
// can change while running: domains, routes, webhook endpoints and users,
// all or nothing. A config that fails validation is refused with the key
// and the reason, and the running one stays. Listeners, the queue backend
// and data_dir need a restart.
func (a *app) reload() {
	cfg, err := config.Load(a.path, configChecks...)
	if err != nil {
		a.log.Error("reload refused: the running config stays", "error", err)
		return
	}
	pol, err := buildPolicy(cfg)
	if err != nil {
		a.log.Error("reload refused: the running config stays", "error", err)
		return
	}
	sender, err := newSender(cfg, a.log)
	if err != nil {
		a.log.Error("reload refused: the running config stays", "error", err)
		return
	}
	if a.users != nil {
		if err := a.users.Replace(mailboxUsers(cfg.Mailbox.Users)); err != nil {
			a.log.Error("reload refused: the running config stays", "error", err)
			return
		}
	}
	if err := a.loadReply(cfg); err != nil {
		a.log.Error("reload refused: the running config stays", "error", err)
		return
	}
	a.policy.Store(pol)
	a.webhooks.Swap(sender)
	a.log.Info("config reloaded", "routes", len(cfg.Routes), "domains", len(cfg.Domains))
	if restart := a.noteReload(config.Fingerprint(cfg)); len(restart) > 0 {
		a.log.Warn("config changes that need a restart to take effect (the running values stay until then)", "keys", strings.Join(restart, ","))
	}
}

// reloadable reports whether a reload applies key's new value; every other
// key (listeners, admin.token, the queue, data_dir...) needs a restart.
func reloadable(key string) bool {
	return key == "domains" || key == "routes" || key == "mailbox.users" || strings.HasPrefix(key, "webhooks.")
}

// noteReload records the reloadable keys of a reloaded config as running
// and returns the changed keys that are not (they need a restart).
func (a *app) noteReload(next map[string]string) (restart []string) {
	old := *a.running.Load()
	now := maps.Clone(old)
	for _, k := range config.Changed(old, next) {
		switch v, ok := next[k]; {
		case !reloadable(k):
			restart = append(restart, k)
		case ok:
			now[k] = v
		default:
			delete(now, k)
		}
	}
	a.running.Store(&now)
	return restart
}
