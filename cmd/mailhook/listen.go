package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"net/url"
	"os/signal"
	"slices"
	"sync"
	"syscall"
	"time"

	"github.com/mailhook/mailhook/config"
	"github.com/mailhook/mailhook/deliver/webhook"
)

// defaultListenAddr is where `mailhook webhook listen` listens without an
// ADDR; config.example.yaml's webhook points there.
const defaultListenAddr = "127.0.0.1:8080"

func init() {
	register(command{name: "webhook listen", summary: "a development receiver: verify each delivery's signature and print its JSON ([ADDR] [--secret S])", run: webhookListen})
}

// webhookListen is a development receiver, like `stripe listen`: it
// verifies every delivery as a real receiver must (Standard Webhooks
// signature over the raw body, timestamp tolerance), prints the JSON and
// answers 204, or prints why not and answers 401.
func webhookListen(args []string, _ io.Reader, stdout, stderr io.Writer) int {
	fs, path := newFlags("webhook listen", stderr)
	var secrets multiFlag
	fs.Var(&secrets, "secret", "a whsec_ secret or whpk_ public key to verify with (repeat for several); default: every webhook's in --config")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: mailhook webhook listen [ADDR] [--secret whsec_...] [--config FILE]\n\nADDR defaults to where the config's webhook points when that is this machine, else %s.\nWithout --secret, the secrets of every webhook in the config are used.\n\n", defaultListenAddr)
		fs.PrintDefaults()
	}
	pos, err := parseFlags(fs, args)
	if err != nil {
		return exitErr(stderr, err)
	}
	if len(pos) > 1 {
		fs.Usage()
		return 2
	}
	v, from, addr, err := listenVerifier(secrets, *path)
	if err != nil {
		return exitErr(stderr, err)
	}
	if len(pos) == 1 {
		addr = pos[0]
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return exitErr(stderr, err)
	}
	fmt.Fprintf(stderr, "mailhook webhook listen: http://%s/ (any path), verifying with %s; Ctrl-C stops\n", l.Addr(), from)
	srv := &http.Server{Handler: listenHandler(v, stdout, time.Now), ReadHeaderTimeout: 10 * time.Second}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(sctx)
	}()
	if err := srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return exitErr(stderr, err)
	}
	return 0
}

// listenVerifier builds the verifier from --secret, or else from every
// webhook of the config file; from says which, for the banner. addr is
// where to listen: the host:port of a webhook of the config on this
// machine, else defaultListenAddr.
func listenVerifier(flags []string, path string) (v *webhook.Verifier, from, addr string, err error) {
	v, from, addr = &webhook.Verifier{}, "--secret", defaultListenAddr
	cfg, cerr := config.Load(path)
	if cerr == nil {
		for _, name := range slices.Sorted(maps.Keys(cfg.Webhooks)) {
			if u, err := url.Parse(cfg.Webhooks[name].URL); err == nil && u.Scheme == "http" && u.Port() != "" && isLoopbackHost(u.Hostname()) {
				addr = u.Host
				break
			}
		}
	}
	if len(flags) == 0 {
		if cerr != nil {
			return nil, "", "", fmt.Errorf("give the webhook's secret with --secret whsec_..., or a config with --config FILE whose webhooks have it (%v)", cerr)
		}
		for _, name := range slices.Sorted(maps.Keys(cfg.Webhooks)) {
			flags = append(flags, cfg.Webhooks[name].AllSecrets()...)
			for _, k := range cfg.Webhooks[name].SigningKeys {
				if pk, err := webhook.ParseSigningKey(k); err == nil {
					flags = append(flags, webhook.PublicKey(pk))
				}
			}
		}
		if len(flags) == 0 {
			return nil, "", "", fmt.Errorf("%s defines no webhook secret; give one with --secret whsec_...", path)
		}
		from = "the secrets of the webhooks in " + path
	}
	for _, s := range flags {
		if pk, err := webhook.ParsePublicKey(s); err == nil {
			v.PublicKeys = append(v.PublicKeys, pk)
			continue
		}
		k, err := webhook.ParseSecret(s)
		if err != nil {
			return nil, "", "", fmt.Errorf("--secret: %w", err)
		}
		v.Secrets = append(v.Secrets, k)
	}
	return v, from, addr, nil
}

func isLoopbackHost(h string) bool {
	if h == "localhost" {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}

// maxListenBody bounds one delivery read by the development receiver.
const maxListenBody = 64 << 20

// listenHandler verifies and prints each delivery; output is serialized so
// concurrent deliveries do not interleave.
func listenHandler(v *webhook.Verifier, out io.Writer, now func() time.Time) http.Handler {
	var mu sync.Mutex
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxListenBody))
		mu.Lock()
		defer mu.Unlock()
		fmt.Fprintf(out, "--- %s %s %s webhook-id=%s\n", now().Format(time.TimeOnly), r.Method, r.URL.Path, r.Header.Get(webhook.HeaderID))
		if err != nil {
			fmt.Fprintf(out, "REJECTED (400): reading the body: %v\n", err)
			http.Error(w, "reading the body: "+err.Error(), http.StatusBadRequest)
			return
		}
		version, err := v.Verify(r.Header, body, now())
		if err != nil {
			fmt.Fprintf(out, "REJECTED (401): %v\n", err)
			http.Error(w, err.Error(), http.StatusUnauthorized)
			return
		}
		fmt.Fprintf(out, "signature verified (%s)\n", version)
		var pretty bytes.Buffer
		if json.Indent(&pretty, body, "", "  ") != nil {
			pretty.Reset()
			pretty.WriteString("(not JSON) ")
			pretty.Write(body)
		}
		pretty.WriteByte('\n')
		out.Write(pretty.Bytes())
		w.WriteHeader(http.StatusNoContent)
	})
}
