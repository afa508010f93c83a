package main

import (
	"fmt"

	"github.com/mailhook/mailhook/config"
	"github.com/mailhook/mailhook/inbound"
	"github.com/mailhook/mailhook/ingest"
	"github.com/mailhook/mailhook/ingest/rspamd"
)

// spamOptions makes the spam check of verify.rspamd; nil when it is off.
func spamOptions(cfg *config.Config) (*ingest.SpamOptions, error) {
	r := cfg.Verify.Rspamd
	if !r.Enabled() {
		return nil, nil
	}
	c, err := rspamd.New(rspamd.Options{URL: r.URL, Timeout: r.Timeout, Password: r.Password})
	if err != nil {
		return nil, fmt.Errorf("verify.rspamd: %w", err)
	}
	return &ingest.SpamOptions{Checker: c, Enforce: r.Enforce, DeferOnError: r.OnError == "defer"}, nil
}

var _ ingest.SpamObserver = observer{}

// Spam counts rspamd's verdicts, refused messages included.
func (o observer) Spam(r *inbound.Spam) { o.a.metrics.SpamCheck(r.Result, r.Action) }
