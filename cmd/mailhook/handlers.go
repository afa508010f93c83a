package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"path/filepath"

	"github.com/mailhook/mailhook/config"
	"github.com/mailhook/mailhook/deliver"
	"github.com/mailhook/mailhook/deliver/relay"
	"github.com/mailhook/mailhook/deliver/webhook"
	"github.com/mailhook/mailhook/dns"
	"github.com/mailhook/mailhook/internal/loginlimit"
	"github.com/mailhook/mailhook/internal/safefile"
	"github.com/mailhook/mailhook/mailbox"
	"github.com/mailhook/mailhook/mailbox/pop3"
)

// handlers returns a delivery handler per job kind this node takes:
// webhooks and the relay on a deliver node (forward rules and SRS bounces
// need the relay), mailboxes when the store is open (the mailbox node).
func (a *app) handlers(resolver *dns.Resolver) (map[deliver.Kind]deliver.Handler, error) {
	h := map[deliver.Kind]deliver.Handler{}
	sender, err := newSender(a.cfg, a.log)
	if err != nil {
		return nil, err
	}
	a.webhooks = webhook.NewSwapSender(sender)
	a.closers = append(a.closers, a.webhooks.Close)
	if a.store != nil {
		h[deliver.KindMailbox] = &deliver.MailboxHandler{
			Store:     a.store,
			Permanent: mailbox.IsPermanent,
		}
	}
	if !a.cfg.Node.Has(config.RoleDeliver) {
		// Webhook and relay jobs are taken by the deliver nodes only.
		return h, nil
	}
	h[deliver.KindWebhook] = a.webhooks

	rc := a.cfg.Relay
	ropts := relay.Options{
		Hostname:    a.cfg.Hostname,
		Smarthost:   rc.Smarthost,
		Username:    rc.Username,
		Password:    rc.Password,
		TLS:         rc.TLS,
		Resolver:    resolver,
		SRS:         a.srs,
		MaxReceived: rc.MaxReceived,
		LoopMarker:  a.cfg.Hostname,
		Timeout:     rc.Timeout,
		Logger:      a.log,
	}
	if rc.DKIM.PrivateKeyFile != "" {
		signer, err := relay.LoadDKIMSigner(rc.DKIM.Domain, rc.DKIM.Selector, rc.DKIM.PrivateKeyFile)
		if err != nil {
			return nil, fmt.Errorf("relay.dkim: %w", err)
		}
		ropts.DKIM = signer
	}
	relayer, err := relay.New(ropts)
	if err != nil {
		return nil, fmt.Errorf("relay: %w", err)
	}
	h[deliver.KindRelay] = relayer
	return h, nil
}

// openSRS returns the relay's Sender Rewriting Scheme: on whenever there is
// a secret, and there always is one: relay.srs.secret, or one made once
// and kept in data_dir (give every node of a cluster the same secret in
// the config).
func openSRS(cfg *config.Config) (*relay.SRS, error) {
	domain := cfg.Relay.SRS.Domain
	if domain == "" {
		domain = cfg.Domains[0]
	}
	secret := []byte(cfg.Relay.SRS.Secret)
	if len(secret) == 0 {
		var err error
		// A kept secret of any length relay.NewSRS takes, as before.
		if secret, err = safefile.LoadOrCreateSecret(filepath.Join(cfg.DataDir, "srs.secret"), 32, 1); err != nil {
			return nil, fmt.Errorf("relay.srs: %w", err)
		}
	}
	return relay.NewSRS(secret, domain, 0)
}

// openMailbox opens the store and the users when any user is configured.
func (a *app) openMailbox() error {
	if len(a.cfg.Mailbox.Users) == 0 {
		return nil
	}
	users, err := mailbox.NewUsers(mailboxUsers(a.cfg.Mailbox.Users))
	if err != nil {
		return fmt.Errorf("mailbox.users: %w", err)
	}
	a.users = users
	store, err := mailbox.Open(filepath.Join(a.cfg.DataDir, "mailboxes"), mailbox.Options{Quota: users.Quota, Logger: a.log})
	if err != nil {
		return fmt.Errorf("mailbox: %w", err)
	}
	a.store = store
	a.closers = append(a.closers, func() { store.Close() })
	a.limiter = loginlimit.New(loginlimit.Options{})
	return nil
}

func mailboxUsers(cu []config.User) []mailbox.User {
	out := make([]mailbox.User, 0, len(cu))
	for _, u := range cu {
		out = append(out, mailbox.User{Name: u.Name, PasswordHash: u.PasswordHash, Addresses: u.Addresses, QuotaBytes: u.QuotaBytes})
	}
	return out
}

// extraServers adds the IMAP and POP3 listeners when there are mailboxes.
func (a *app) extraServers() error {
	if a.store == nil {
		return nil
	}
	mc := a.cfg.Mailbox
	var tlsConfig *tls.Config
	tc := mc.TLS
	if !tc.Enabled() {
		tc = a.cfg.SMTP.TLS
	}
	if tc.Enabled() {
		cert, err := tls.LoadX509KeyPair(tc.CertFile, tc.KeyFile)
		if err != nil {
			return fmt.Errorf("mailbox.tls: %w", err)
		}
		tlsConfig = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	}
	imapSrv, err := mailbox.NewIMAPServer(mailbox.IMAPOptions{Store: a.store, Users: a.users, Limiter: a.limiter,
		TLSConfig: tlsConfig, AllowPlaintextAuth: mc.AllowPlaintextAuth, Logger: a.log,
		OnSession: a.metrics.IMAPSession, OnFailedLogin: func() { a.metrics.FailedLogin("imap") }})
	if err != nil {
		return fmt.Errorf("imap: %w", err)
	}
	popSrv := pop3.New(pop3.Options{Backend: pop3.StoreBackend(a.store, a.users, a.limiter), Hostname: a.cfg.Hostname,
		TLSConfig: tlsConfig, AllowPlaintextAuth: mc.AllowPlaintextAuth, Logger: a.log,
		OnSession: a.metrics.POP3Session, OnFailedLogin: func() { a.metrics.FailedLogin("pop3") }})
	listen := func(name, addr string, implicitTLS bool, serve func(net.Listener) error) error {
		if addr == "" {
			return nil
		}
		l, err := net.Listen("tcp", addr)
		if err != nil {
			return fmt.Errorf("mailbox.%s: %w", name, err)
		}
		if implicitTLS {
			l = tls.NewListener(l, tlsConfig)
		}
		a.log.Info("listening", "service", name, "addr", l.Addr().String())
		a.servers = append(a.servers, server{name: name, serve: func() error {
			err := serve(l)
			if errors.Is(err, mailbox.ErrServerClosed) || errors.Is(err, pop3.ErrServerClosed) || errors.Is(err, net.ErrClosed) {
				return nil
			}
			return err
		}})
		return nil
	}
	if err := listen("imap_listen", mc.IMAPListen, false, imapSrv.Serve); err != nil {
		return err
	}
	if err := listen("imaps_listen", mc.IMAPSListen, false, imapSrv.ServeTLS); err != nil {
		return err
	}
	if err := listen("pop3_listen", mc.POP3Listen, false, popSrv.Serve); err != nil {
		return err
	}
	if err := listen("pop3s_listen", mc.POP3SListen, true, popSrv.Serve); err != nil {
		return err
	}
	a.servers = append(a.servers, server{name: "mailbox", shutdown: func(ctx context.Context) error {
		perr := popSrv.Shutdown(ctx)
		ierr := imapSrv.Shutdown(ctx)
		return errors.Join(perr, ierr)
	}})
	return nil
}

// newSender makes the webhook sender for the configured endpoints.
func newSender(cfg *config.Config, log *slog.Logger) (*webhook.Sender, error) {
	eps := map[string]webhook.Endpoint{}
	for name, w := range cfg.Webhooks {
		ep := webhook.Endpoint{
			Name:         name,
			URL:          w.URL,
			Secrets:      w.AllSecrets(),
			SigningKeys:  w.SigningKeys,
			Timeout:      w.Timeout,
			Concurrency:  w.Concurrency,
			Headers:      w.Headers,
			Raw:          w.Raw,
			AllowPrivate: w.AllowPrivate,
			Mode:         w.Mode,
			SyncTimeout:  w.SyncTimeout,
			OnFailure:    w.OnFailure,
		}
		if err := ep.Validate(); err != nil {
			return nil, err
		}
		eps[name] = ep
	}
	return webhook.NewSender(webhook.Options{Endpoints: eps, Version: version, Logger: log}), nil
}
