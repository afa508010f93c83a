package main

import (
	"github.com/mailhook/mailhook/deliver"
)

// handlers returns a delivery handler per job kind the config uses.
func (a *app) handlers() (map[deliver.Kind]deliver.Handler, error) {
	h := map[deliver.Kind]deliver.Handler{}
	return h, nil
}

// extraServers adds the listeners beside SMTP (IMAP, POP3, admin).
func (a *app) extraServers() error { return nil }
