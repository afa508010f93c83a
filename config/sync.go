package config

import (
	"fmt"
	"time"

	"github.com/mailhook/mailhook/replyaddr"
)

// validateSync checks a webhook's mode, sync_timeout and on_failure.
func validateSync(add func(string, string, ...any), key string, w Webhook, verify time.Duration) {
	switch w.Mode {
	case "", "async":
		if w.SyncTimeout != 0 {
			add(key+".sync_timeout", "only meaningful with mode: sync")
		}
		if w.OnFailure != "" {
			add(key+".on_failure", "only meaningful with mode: sync")
		}
		return
	case "sync":
	default:
		add(key+".mode", "%q is not one of async, sync", w.Mode)
		return
	}
	switch {
	case w.SyncTimeout < 0:
		add(key+".sync_timeout", "must not be negative")
	case w.SyncTimeout > MaxSyncTimeout:
		add(key+".sync_timeout", "%s is too long: the sending MTA waits for it after the final dot, on top of verification (verify.message_timeout %s); at most %s", w.SyncTimeout, verify, MaxSyncTimeout)
	}
	switch w.OnFailure {
	case "", "defer", "queue":
	default:
		add(key+".on_failure", "%q is not one of defer, queue", w.OnFailure)
	}
}

// validateReply checks the reply section.
func validateReply(add func(string, string, ...any), c *Config) {
	r := c.Reply
	for i, s := range r.Secrets {
		if len(s) < replyaddr.MinSecretLen {
			add(fmt.Sprintf("reply.secrets[%d]", i), "must be at least %d characters (make one with `openssl rand -hex 32`)", replyaddr.MinSecretLen)
		}
	}
	if r.Domain != "" && !validDomain(r.Domain) {
		add("reply.domain", "%q is not a domain name", r.Domain)
	} else if r.Domain != "" && !c.HasDomain(r.Domain) {
		add("reply.domain", "%q is not in domains: replies to it would be refused at RCPT", r.Domain)
	}
	if r.TTL < 0 {
		add("reply.ttl", "must not be negative")
	}
	if len(r.Secrets) == 0 && (r.Domain != "" || r.TTL != 0) {
		add("reply.secrets", "must be set when reply.domain or reply.ttl is")
	}
}
