package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/mailhook/mailhook/admin"
	"github.com/mailhook/mailhook/config"
	"github.com/mailhook/mailhook/deliver/relay"
	"github.com/mailhook/mailhook/mailbox"
)

func init() {
	register(command{name: "check-config", summary: "validate the config and print what would listen where", run: checkConfig})
}

func checkConfig(args []string, _ io.Reader, stdout, stderr io.Writer) int {
	fs, path := newFlags("check-config", stderr)
	if _, err := parseFlags(fs, args); err != nil {
		return exitErr(stderr, err)
	}
	cfg, err := config.Load(*path, configChecks...)
	if err != nil {
		var verrs config.ValidationErrors
		if errors.As(err, &verrs) {
			fmt.Fprintf(stderr, "%s: %d problem(s):\n", *path, len(verrs))
			for _, e := range verrs {
				fmt.Fprintf(stderr, "  %s: %s\n", e.Key, e.Reason)
			}
			return 1
		}
		code := exitErr(stderr, err)
		noConfigHint(stderr, err)
		return code
	}
	if err := preflight(cfg); err != nil {
		fmt.Fprintf(stderr, "%s: serve would refuse it:\n  %s\n", *path, strings.ReplaceAll(err.Error(), "\n", "\n  "))
		return 1
	}
	describe(stdout, *path, cfg)
	if cfg.Queue.Backend == "redis" && holdsMailbox(cfg) {
		holder, note := checkMailboxRole(cfg)
		if holder != "" {
			fmt.Fprintf(stderr, "%s: node.roles: mailbox is held by node %q on this queue; exactly one node may hold the mailbox store\n", *path, holder)
			return 1
		}
		if note != "" {
			fmt.Fprintf(stdout, "mailbox    role %s\n", note)
		}
	}
	if _, warn := admin.AttachmentBase(cfg); warn != "" {
		fmt.Fprintf(stdout, "warning    %s\n", warn)
	}
	compareRunning(stdout, cfg)
	return 0
}

// compareRunning asks the server the config describes, through its admin
// API, which keys of the file differ from what it runs, and which of those
// a reload applies. Without an API (no admin.listen or admin.token) or a
// server, it says nothing more than that.
func compareRunning(w io.Writer, cfg *config.Config) {
	aq, err := newAdminQueue(cfg)
	if err != nil {
		return
	}
	aq.c.Timeout = 3 * time.Second
	var out struct {
		Changed []string `json:"changed"`
	}
	err = aq.send(context.Background(), "POST", "/api/config/diff", map[string]any{"fingerprint": config.Fingerprint(cfg)}, &out)
	var opErr *net.OpError
	switch {
	case errors.As(err, &opErr):
		fmt.Fprintf(w, "running    no server answers at %s\n", aq.base)
		return
	case apiStatus(err) == http.StatusUnauthorized:
		fmt.Fprintf(w, "running    the server at %s refuses this file's admin.token: the token changed, and a new admin.token needs a restart\n", aq.base)
		return
	case err != nil:
		fmt.Fprintf(w, "running    could not compare with the server at %s: %v\n", aq.base, err)
		return
	case len(out.Changed) == 0:
		fmt.Fprintf(w, "running    the server at %s runs this config\n", aq.base)
		return
	}
	var reload, restart []string
	for _, k := range out.Changed {
		if reloadable(k) {
			reload = append(reload, k)
		} else {
			restart = append(restart, k)
		}
	}
	fmt.Fprintf(w, "running    the server at %s runs a config that differs in %d key(s):\n", aq.base, len(out.Changed))
	if len(reload) > 0 {
		fmt.Fprintf(w, "  a reload (SIGHUP, or saving the file) applies: %s\n", strings.Join(reload, ", "))
	}
	if len(restart) > 0 {
		fmt.Fprintf(w, "  these need a restart: %s\n", strings.Join(restart, ", "))
	}
}

// preflight builds, opening no listener, store or connection, what serve
// builds from the configuration alone and may refuse: the route table,
// the webhook endpoints, the mailbox users, the relay's DKIM key and SRS
// secret. It calls the functions serve calls, so that check-config
// refuses what serve refuses.
func preflight(cfg *config.Config) error {
	var errs []error
	if _, err := buildPolicy(cfg); err != nil {
		errs = append(errs, err)
	}
	if s, err := newSender(cfg, slog.New(slog.DiscardHandler)); err != nil {
		errs = append(errs, err)
	} else {
		s.Close()
	}
	if len(cfg.Mailbox.Users) > 0 {
		if _, err := mailbox.NewUsers(mailboxUsers(cfg.Mailbox.Users)); err != nil {
			errs = append(errs, fmt.Errorf("mailbox.users: %w", err))
		}
	}
	if d := cfg.Relay.DKIM; d.PrivateKeyFile != "" {
		if _, err := relay.LoadDKIMSigner(d.Domain, d.Selector, d.PrivateKeyFile); err != nil {
			errs = append(errs, fmt.Errorf("relay.dkim: %w", err))
		}
	}
	if secret := cfg.Relay.SRS.Secret; secret != "" {
		domain := cmp.Or(cfg.Relay.SRS.Domain, cfg.Domains[0])
		if _, err := relay.NewSRS([]byte(secret), domain, 0); err != nil {
			errs = append(errs, fmt.Errorf("relay.srs: %w", err))
		}
	}
	return errors.Join(errs...)
}

// describe prints what a configuration will do.
func describe(w io.Writer, path string, c *config.Config) {
	fmt.Fprintf(w, "%s: ok\n", path)
	fmt.Fprintf(w, "hostname   %s\n", c.Hostname)
	fmt.Fprintf(w, "domains    %s\n", strings.Join(c.Domains, ", "))
	fmt.Fprintf(w, "data_dir   %s\n", c.DataDir)
	tlsNote := "no STARTTLS"
	if c.SMTP.TLS.Enabled() {
		tlsNote = "STARTTLS"
	}
	if c.Node.Has(config.RoleMX) {
		fmt.Fprintf(w, "smtp       %s (%s, max %d bytes, %d recipients)\n", c.SMTP.Listen, tlsNote, c.SMTP.MaxMessageBytes, c.SMTP.MaxRecipients)
	} else {
		fmt.Fprintf(w, "smtp       none (no mx role)\n")
	}
	q := c.Queue.Backend
	if q == "redis" {
		addr := c.Queue.Redis.Addr
		if len(c.Queue.Redis.Addrs) > 0 {
			addr = strings.Join(c.Queue.Redis.Addrs, ",")
		}
		q += " at " + addr
		if c.Queue.Redis.Shards > 1 {
			q += fmt.Sprintf(" (%d shards)", c.Queue.Redis.Shards)
		}
	}
	fmt.Fprintf(w, "queue      %s\n", q)
	fmt.Fprintf(w, "node       %s, roles %s\n", nodeName(c), strings.Join(c.Node.Roles, ", "))
	if r := c.Verify.Rspamd; r.Enabled() {
		fmt.Fprintf(w, "rspamd     %s (timeout %s, on_error %s, enforce %t)\n", config.RedactURL(r.URL), r.Timeout, r.OnError, r.Enforce)
	}
	if holdsMailbox(c) {
		fmt.Fprintf(w, "imap       %s", c.Mailbox.IMAPListen)
		if c.Mailbox.IMAPSListen != "" {
			fmt.Fprintf(w, ", imaps %s", c.Mailbox.IMAPSListen)
		}
		fmt.Fprintf(w, "\npop3       %s", c.Mailbox.POP3Listen)
		if c.Mailbox.POP3SListen != "" {
			fmt.Fprintf(w, ", pop3s %s", c.Mailbox.POP3SListen)
		}
		fmt.Fprintf(w, "\nusers      %d\n", len(c.Mailbox.Users))
	}
	if c.Admin.Listen != "" {
		fmt.Fprintf(w, "admin      %s\n", c.Admin.Listen)
	}
	for _, name := range slices.Sorted(maps.Keys(c.Webhooks)) {
		wh := c.Webhooks[name]
		mode := ""
		if wh.Mode == "sync" {
			mode = fmt.Sprintf(" (sync: answered during DATA within %s, on failure %s)",
				cmp.Or(wh.SyncTimeout, config.DefaultSyncTimeout), cmp.Or(wh.OnFailure, "defer"))
		}
		// Redacted: a webhook URL may carry credentials.
		fmt.Fprintf(w, "webhook    %s -> %s%s\n", name, config.RedactURL(wh.URL), mode)
	}
	if r := c.Reply; len(r.Secrets) > 0 && len(c.Domains) > 0 {
		ttl := "none"
		if r.TTL > 0 {
			ttl = r.TTL.String()
		}
		fmt.Fprintf(w, "reply      reply+<thread>.<token>@%s (%d secret(s), ttl %s)\n", cmp.Or(r.Domain, c.Domains[0]), len(r.Secrets), ttl)
	}
	for i, r := range c.Routes {
		var acts []string
		for _, a := range r.Actions {
			switch {
			case a.Webhook != "":
				acts = append(acts, "webhook "+a.Webhook)
			case a.Mailbox != "":
				acts = append(acts, "mailbox "+a.Mailbox)
			case len(a.Forward) > 0:
				acts = append(acts, "forward "+strings.Join(a.Forward, ","))
			case a.Reject != "":
				acts = append(acts, "reject "+a.Reject)
			case a.Drop:
				acts = append(acts, "drop")
			}
		}
		cont := ""
		if r.Continue {
			cont = " (continue)"
		}
		fmt.Fprintf(w, "route %d    %s: %s%s\n", i+1, r.Name, strings.Join(acts, ", "), cont)
	}
}
