package main

import (
	"github.com/mailhook/mailhook/config"
	"github.com/mailhook/mailhook/ingest/rspamd"
	"github.com/mailhook/mailhook/route"
)

// configChecks check the parts of the configuration that other packages
// compile, by their rules; config.Load runs them after its own Validate,
// so that serve and check-config list every problem of a file at once.
var configChecks = []config.Check{route.CheckConfig, checkRspamdURL}

// checkRspamdURL checks verify.rspamd.url by the rspamd client's rule.
func checkRspamdURL(c *config.Config) config.ValidationErrors {
	r := c.Verify.Rspamd
	if !r.Enabled() {
		return nil
	}
	if _, err := rspamd.CheckURL(r.URL); err != nil {
		return config.ValidationErrors{{Key: "verify.rspamd.url", Reason: err.Error()}}
	}
	return nil
}
