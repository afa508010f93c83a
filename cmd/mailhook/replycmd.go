package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/mailhook/mailhook/admin"

	"github.com/mailhook/mailhook/config"
	"github.com/mailhook/mailhook/replyaddr"
)

func init() {
	register(command{name: "reply-address", summary: "mint a signed reply address for a thread (--thread T [--ttl 30d])", run: replyAddressCmd})
}

// replySigner is the signer of the config's reply section, or nil when it
// has no secrets (reply addresses are off).
func replySigner(cfg *config.Config) (*replyaddr.Signer, error) {
	r := cfg.Reply
	if len(r.Secrets) == 0 {
		return nil, nil
	}
	domain := r.Domain
	if domain == "" && len(cfg.Domains) > 0 {
		domain = cfg.Domains[0]
	}
	s, err := replyaddr.New(replyaddr.Options{Secrets: r.Secrets, Domain: domain, TTL: r.TTL})
	if err != nil {
		return nil, fmt.Errorf("reply: %w", err)
	}
	return s, nil
}

func replyAddressCmd(args []string, _ io.Reader, stdout, stderr io.Writer) int {
	fs, path := newFlags("reply-address", stderr)
	thread := fs.String("thread", "", "the thread key (letters, digits, '-', '_', '=', '.')")
	ttl := fs.String("ttl", "", "how long the address stays valid (30d, 2w, 72h; never); default reply.ttl")
	asJSON := fs.Bool("json", false, "print {address, thread, expires_at} as JSON")
	if _, err := parseFlags(fs, args); err != nil {
		return exitErr(stderr, err)
	}
	if *thread == "" {
		return exitErr(stderr, errors.New("reply-address: --thread is required"))
	}
	d, err := replyaddr.ParseTTL(*ttl)
	if err != nil {
		return exitErr(stderr, err)
	}
	cfg, err := loadConfig(*path, stderr)
	if err != nil {
		return 1
	}
	s, err := replySigner(cfg)
	if err != nil {
		return exitErr(stderr, err)
	}
	if s == nil {
		return exitErr(stderr, errors.New("reply-address: reply.secrets is not set in the config"))
	}
	m, err := s.Mint(*thread, d)
	if err != nil {
		return exitErr(stderr, err)
	}
	if *asJSON {
		b, _ := json.Marshal(m)
		fmt.Fprintf(stdout, "%s\n", b)
		return 0
	}
	fmt.Fprintln(stdout, m.Address)
	return 0
}

// loadReply installs the config's reply signer for the admin API.
func (a *app) loadReply(cfg *config.Config) error {
	s, err := replySigner(cfg)
	if err != nil {
		return err
	}
	a.reply.Store(s)
	return nil
}

// mintReply is the admin API's minter.
func (a *app) mintReply(thread string, ttl time.Duration) (replyaddr.Minted, error) {
	s := a.reply.Load()
	if s == nil {
		return replyaddr.Minted{}, admin.ErrReplyNotConfigured
	}
	return s.Mint(thread, ttl)
}
