package main

import (
	"fmt"

	"github.com/mailhook/mailhook/deliver"
	"github.com/mailhook/mailhook/deliver/webhook"
)

// handlers returns a delivery handler per job kind.
func (a *app) handlers() (map[deliver.Kind]deliver.Handler, error) {
	h := map[deliver.Kind]deliver.Handler{}
	eps := map[string]webhook.Endpoint{}
	for name, w := range a.cfg.Webhooks {
		ep := webhook.Endpoint{
			Name:         name,
			URL:          w.URL,
			Secrets:      w.AllSecrets(),
			Timeout:      w.Timeout,
			Concurrency:  w.Concurrency,
			Headers:      w.Headers,
			Raw:          w.Raw,
			AllowPrivate: w.AllowPrivate,
		}
		if err := ep.Validate(); err != nil {
			return nil, fmt.Errorf("webhooks.%s: %w", name, err)
		}
		eps[name] = ep
	}
	sender := webhook.NewSender(webhook.Options{Endpoints: eps, Version: version, Logger: a.log})
	a.closers = append(a.closers, sender.Close)
	h[deliver.KindWebhook] = sender
	return h, nil
}

// extraServers adds the listeners beside SMTP (IMAP, POP3, admin).
func (a *app) extraServers() error { return nil }
