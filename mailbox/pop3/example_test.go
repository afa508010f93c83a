package pop3_test

import (
	"context"
	"crypto/tls"
	"log/slog"
	"net"
	"time"

	"github.com/mailhook/mailhook/internal/loginlimit"
	"github.com/mailhook/mailhook/mailbox"
	"github.com/mailhook/mailhook/mailbox/pop3"
)

// Wiring as cmd/mailhook does it: one Server for mailbox.pop3_listen
// (STLS) and mailbox.pop3s_listen (implicit TLS), on the store's INBOXes,
// sharing the login limiter with the IMAP server.
func Example() {
	var (
		store   *mailbox.Store      // mailbox.Open(dataDir+"/mailboxes", ...)
		users   *mailbox.Users      // mailbox.NewUsers(cfg.Mailbox.Users)
		limiter *loginlimit.Limiter // loginlimit.New(...), shared with IMAP
		cert    tls.Certificate     // from mailbox.tls
		log     *slog.Logger
	)
	tlsConfig := &tls.Config{Certificates: []tls.Certificate{cert}}
	srv := pop3.New(pop3.Options{
		Backend:            pop3.StoreBackend(store, users, limiter),
		Hostname:           "mx.example.test",
		TLSConfig:          tlsConfig,
		AllowPlaintextAuth: false, // mailbox.allow_plaintext_auth
		Logger:             log,
	})
	plain, err := net.Listen("tcp", ":1110")
	if err != nil {
		return
	}
	implicit, err := net.Listen("tcp", ":1995")
	if err != nil {
		return
	}
	go srv.Serve(plain)
	go srv.Serve(tls.NewListener(implicit, tlsConfig))

	// On SIGTERM: stop accepting, let commands in flight finish, and
	// close what is left after 10 seconds. Unfinished sessions never
	// apply their deletes.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_ = srv.Shutdown(ctx)
}
