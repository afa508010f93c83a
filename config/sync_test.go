package config

import (
	"strings"
	"testing"
	"time"
)

func TestSyncWebhookKeys(t *testing.T) {
	ok := strings.Replace(good, `secret: "`+secret+`"}`, `secret: "`+secret+`", mode: sync, on_failure: queue}`, 1) +
		"reply: {secrets: [\"0123456789abcdef0123\"], ttl: 720h}\n"
	cfg, errs := load(t, ok)
	if errs != nil {
		t.Fatalf("sync webhook and reply section: %v", errs)
	}
	if w := cfg.Webhooks["tickets"]; w.Mode != "sync" || w.OnFailure != "queue" || cfg.Reply.TTL != 720*time.Hour {
		t.Errorf("decoded %+v, reply %+v", w, cfg.Reply)
	}

	bad := strings.Replace(good, `secret: "`+secret+`"}`, `secret: "`+secret+`", mode: sync, sync_timeout: 5m, on_failure: bounce}`, 1) +
		"reply: {secrets: [short], domain: elsewhere.test, ttl: -1h}\n"
	other := "  other: {url: \"https://app.example/o\", secret: \"" + secret + "\", mode: later}\nroutes:"
	_, errs = load(t, strings.Replace(bad, "routes:", other, 1))
	for _, want := range []struct{ key, reason string }{
		{"webhooks.tickets.sync_timeout", "at most 1m0s"},
		{"webhooks.tickets.on_failure", "not one of defer, queue"},
		{"webhooks.other.mode", "not one of async, sync"},
		{"reply.secrets[0]", "at least 16"},
		{"reply.domain", "not in domains"},
		{"reply.ttl", "negative"},
	} {
		if !hasKey(errs, want.key, want.reason) {
			t.Errorf("no %s problem with %q in:\n%v", want.key, want.reason, errs)
		}
	}
	_, errs = load(t, strings.Replace(good, `secret: "`+secret+`"}`, `secret: "`+secret+`", sync_timeout: 5s}`, 1))
	if !hasKey(errs, "webhooks.tickets.sync_timeout", "only meaningful with mode: sync") {
		t.Errorf("sync_timeout without mode sync: %v", errs)
	}
}
