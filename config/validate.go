package config

import (
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/mail"
	"net/netip"
	"net/url"
	"os"
	"regexp"
	"slices"
	"strings"

	"github.com/mailhook/mailhook/internal/specialip"
)

var nameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9_.-]*$`)

// Validate checks the whole configuration and returns every problem found,
// each naming its key; nil when the configuration is usable.
func (c *Config) Validate() ValidationErrors {
	var errs ValidationErrors
	add := func(key, format string, a ...any) {
		errs = append(errs, FieldError{Key: key, Reason: fmt.Sprintf(format, a...)})
	}

	if !validDomain(c.Hostname) {
		add("hostname", "%q is not a host name", c.Hostname)
	}
	if strings.TrimSpace(c.DataDir) == "" {
		add("data_dir", "must be set")
	}
	if len(c.Domains) == 0 {
		add("domains", "list at least one domain to receive mail for")
	}
	for i, d := range c.Domains {
		if !validDomain(d) {
			add(fmt.Sprintf("domains[%d]", i), "%q is not a domain name", d)
		}
	}
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		add("log.level", "%q is not one of debug, info, warn, error", c.Log.Level)
	}
	switch c.Log.Format {
	case "text", "json":
	default:
		add("log.format", "%q is not one of text, json", c.Log.Format)
	}

	// smtp
	checkListen(add, "smtp.listen", c.SMTP.Listen, true)
	checkTLS(add, "smtp.tls", c.SMTP.TLS)
	positive(add, "smtp.max_message_bytes", c.SMTP.MaxMessageBytes)
	positive(add, "smtp.max_recipients", int64(c.SMTP.MaxRecipients))
	if c.SMTP.MaxLineLength < 1000 {
		add("smtp.max_line_length", "must be at least 1000 (RFC 5321 §4.5.3.1.6), got %d", c.SMTP.MaxLineLength)
	}
	positive(add, "smtp.max_errors", int64(c.SMTP.MaxErrors))
	positive(add, "smtp.max_commands", int64(c.SMTP.MaxCommands))
	positive(add, "smtp.max_connections", int64(c.SMTP.MaxConnections))
	positive(add, "smtp.max_connections_per_ip", int64(c.SMTP.MaxConnectionsPerIP))
	positive(add, "smtp.read_timeout", int64(c.SMTP.ReadTimeout))
	positive(add, "smtp.write_timeout", int64(c.SMTP.WriteTimeout))
	positive(add, "smtp.shutdown_timeout", int64(c.SMTP.ShutdownTimeout))
	positive(add, "smtp.max_session_time", int64(c.SMTP.MaxSessionTime))
	if c.SMTP.MinDataRate < 0 {
		add("smtp.min_data_rate", "must be 0 (off) or more bytes a second, got %d", c.SMTP.MinDataRate)
	}

	// verify
	if c.Verify.DNSResolver != "" {
		if _, _, err := net.SplitHostPort(c.Verify.DNSResolver); err != nil {
			add("verify.dns_resolver", "%q is not host:port (like 127.0.0.1:53)", c.Verify.DNSResolver)
		}
	}
	positive(add, "verify.lookup_timeout", int64(c.Verify.LookupTimeout))
	positive(add, "verify.message_timeout", int64(c.Verify.MessageTimeout))
	switch c.Verify.OnTempError {
	case "accept", "defer":
	default:
		add("verify.on_temperror", "%q is not one of accept, defer", c.Verify.OnTempError)
	}
	switch c.Verify.MultipleFrom {
	case "reject", "strictest":
	default:
		add("verify.multiple_from", "%q is not one of reject, strictest", c.Verify.MultipleFrom)
	}
	c.Verify.Rspamd.validate(add)

	// parse
	positive(add, "parse.inline_limit", c.Parse.InlineLimit)
	positive(add, "parse.max_depth", int64(c.Parse.MaxDepth))
	positive(add, "parse.max_parts", int64(c.Parse.MaxParts))
	positive(add, "parse.max_header_bytes", c.Parse.MaxHeaderBytes)
	positive(add, "parse.max_decoded_bytes", c.Parse.MaxDecodedBytes)

	// queue
	switch c.Queue.Backend {
	case "embedded":
	case "redis":
		if c.Queue.Redis.Addr == "" && len(c.Queue.Redis.Addrs) == 0 {
			add("queue.redis.addr", "must be set when queue.backend is redis")
		}
		if c.Queue.Redis.MasterName != "" && len(c.Queue.Redis.Addrs) == 0 {
			add("queue.redis.addrs", "list the Sentinel addresses when master_name is set")
		}
	default:
		add("queue.backend", "%q is not one of embedded, redis", c.Queue.Backend)
	}
	if c.Queue.Redis.Shards < 1 || c.Queue.Redis.Shards > 1024 {
		add("queue.redis.shards", "must be between 1 and 1024, got %d", c.Queue.Redis.Shards)
	}
	positive(add, "queue.dedup_window", int64(c.Queue.DedupWindow))
	if len(c.Node.Roles) == 0 {
		add("node.roles", "list at least one of mx, deliver, mailbox")
	}
	for i, r := range c.Node.Roles {
		if r != RoleMX && r != RoleDeliver && r != RoleMailbox {
			add(fmt.Sprintf("node.roles[%d]", i), "%q is not one of mx, deliver, mailbox", r)
		}
	}
	if strings.ContainsAny(c.Node.Name, " /{}") {
		add("node.name", "%q must not contain spaces, slashes or braces", c.Node.Name)
	}
	if c.Queue.Backend != "redis" && len(c.Node.Roles) != 3 {
		add("node.roles", "a node with the embedded queue does everything: roles apply to queue.backend redis")
	}
	if c.Queue.Redis.WaitReplicas < 0 {
		add("queue.redis.wait_replicas", "must not be negative")
	}
	if len(c.Queue.Retry.Schedule) == 0 {
		add("queue.retry.schedule", "list at least one delay")
	}
	for i, d := range c.Queue.Retry.Schedule {
		if d <= 0 {
			add(fmt.Sprintf("queue.retry.schedule[%d]", i), "must be positive, got %s", d)
		}
	}
	positive(add, "queue.retry.max_age", int64(c.Queue.Retry.MaxAge))
	positive(add, "queue.lease", int64(c.Queue.Lease))
	positive(add, "queue.concurrency.webhook", int64(c.Queue.Concurrency.Webhook))
	positive(add, "queue.concurrency.relay", int64(c.Queue.Concurrency.Relay))
	positive(add, "queue.concurrency.mailbox", int64(c.Queue.Concurrency.Mailbox))

	// webhooks
	for _, name := range slices.Sorted(maps.Keys(c.Webhooks)) {
		w := c.Webhooks[name]
		key := "webhooks." + name
		if !nameRE.MatchString(name) {
			add(key, "name must be letters, digits, '_', '.', '-'")
		}
		// The URL is shown redacted: it may carry credentials.
		u, err := url.Parse(w.URL)
		switch {
		case w.URL == "":
			add(key+".url", "must be set")
		case err != nil:
			add(key+".url", "is not a URL: %v", urlReason(err))
		case u.Scheme != "https" && u.Scheme != "http":
			add(key+".url", "%q must be an http or https URL", RedactURL(w.URL))
		case u.Host == "" || u.Hostname() == "":
			add(key+".url", "%q has no host", RedactURL(w.URL))
		case !w.AllowPrivate:
			// The rule serve applies (deliver/webhook): an address
			// literal that is loopback, private, link-local, ... needs
			// allow_private. Names are checked when dialled.
			if a, err := netip.ParseAddr(u.Hostname()); err == nil {
				if reason := specialip.Reason(a); reason != "" {
					add(key+".url", "%s is a %s; set allow_private to allow it", a, reason)
				}
			}
		}
		secrets := w.AllSecrets()
		if len(secrets) == 0 {
			add(key+".secret", "must be set (whsec_ followed by base64); generate one with `mailhook webhook secret`")
		}
		for i, s := range secrets {
			k := key + ".secret"
			if len(w.Secrets) > 0 && (w.Secret == "" || i > 0) {
				k = fmt.Sprintf("%s.secrets[%d]", key, i-boolInt(w.Secret != ""))
			}
			if err := checkSecret(s); err != nil {
				add(k, "%v", err)
			}
		}
		for i, k := range w.SigningKeys {
			if !strings.HasPrefix(k, "whsk_") {
				add(fmt.Sprintf("%s.signing_keys[%d]", key, i), "must start with whsk_ (make one with `mailhook webhook signing-key`)")
			}
		}
		if w.Timeout < 0 {
			add(key+".timeout", "must not be negative")
		}
		if w.Concurrency < 0 {
			add(key+".concurrency", "must not be negative")
		}
		validateSync(add, key, w, c.Verify.MessageTimeout)
	}
	validateReply(add, c)

	// relay
	switch c.Relay.TLS {
	case "none", "opportunistic", "required", "implicit":
	default:
		add("relay.tls", "%q is not one of none, opportunistic, required, implicit", c.Relay.TLS)
	}
	if c.Relay.Smarthost != "" {
		if _, _, err := net.SplitHostPort(c.Relay.Smarthost); err != nil {
			add("relay.smarthost", "%q is not host:port", c.Relay.Smarthost)
		}
	}
	if (c.Relay.Username == "") != (c.Relay.Password == "") {
		add("relay.username", "username and password go together")
	}
	if d := c.Relay.DKIM; d != (DKIMSign{}) {
		if d.Domain == "" || !validDomain(d.Domain) {
			add("relay.dkim.domain", "must be a domain name")
		}
		if d.Selector == "" {
			add("relay.dkim.selector", "must be set")
		}
		if _, err := os.Stat(d.PrivateKeyFile); err != nil {
			add("relay.dkim.private_key_file", "cannot read: %v", err)
		}
	}
	if s := c.Relay.SRS.Secret; s != "" && len(s) < 16 {
		add("relay.srs.secret", "must be at least 16 characters")
	}
	if d := c.Relay.SRS.Domain; d != "" && !validDomain(d) {
		add("relay.srs.domain", "%q is not a domain name", d)
	}
	positive(add, "relay.max_received", int64(c.Relay.MaxReceived))

	// mailbox
	checkListen(add, "mailbox.imap_listen", c.Mailbox.IMAPListen, false)
	checkListen(add, "mailbox.imaps_listen", c.Mailbox.IMAPSListen, false)
	checkListen(add, "mailbox.pop3_listen", c.Mailbox.POP3Listen, false)
	checkListen(add, "mailbox.pop3s_listen", c.Mailbox.POP3SListen, false)
	checkTLS(add, "mailbox.tls", c.Mailbox.TLS)
	if (c.Mailbox.IMAPSListen != "" || c.Mailbox.POP3SListen != "") && !c.Mailbox.TLS.Enabled() {
		add("mailbox.tls", "imaps_listen and pop3s_listen need a certificate")
	}
	users := map[string]bool{}
	addrOwner := map[string]string{}
	for i, u := range c.Mailbox.Users {
		key := fmt.Sprintf("mailbox.users[%d]", i)
		if !nameRE.MatchString(u.Name) {
			add(key+".name", "%q must be letters, digits, '_', '.', '-'", u.Name)
		}
		if users[u.Name] {
			add(key+".name", "user %q is defined twice", u.Name)
		}
		users[u.Name] = true
		if !validHash(u.PasswordHash) {
			add(key+".password_hash", "must be a bcrypt ($2b$...) or argon2id ($argon2id$...) hash; make one with `mailhook user add`")
		}
		for j, a := range u.Addresses {
			k := fmt.Sprintf("%s.addresses[%d]", key, j)
			domain, ok := addrDomain(a)
			if !ok {
				add(k, "%q is not an address", a)
				continue
			}
			if !c.HasDomain(domain) {
				add(k, "domain of %q is not in domains", a)
			}
			if o, dup := addrOwner[strings.ToLower(a)]; dup {
				add(k, "%q already belongs to user %q", a, o)
			}
			addrOwner[strings.ToLower(a)] = u.Name
		}
		if u.QuotaBytes < 0 {
			add(key+".quota_bytes", "must not be negative")
		}
	}

	// admin
	checkListen(add, "admin.listen", c.Admin.Listen, false)
	if u := c.Admin.PublicURL; u != "" {
		if pu, err := url.Parse(u); err != nil || (pu.Scheme != "http" && pu.Scheme != "https") || pu.Host == "" {
			add("admin.public_url", "%q is not an http or https URL", RedactURL(u))
		}
	}
	positive(add, "retention", int64(c.Retention))

	// routes: what their rules say is route.CheckConfig's to check (a
	// Check given to Load).
	if len(c.Routes) == 0 {
		add("routes", "define at least one route; mail that matches no route is refused")
	}
	sortErrors(errs)
	return errs
}

// HasDomain reports whether mail for domain is accepted.
func (c *Config) HasDomain(domain string) bool {
	domain = strings.ToLower(strings.TrimSuffix(domain, "."))
	for _, d := range c.Domains {
		if d == domain {
			return true
		}
	}
	return false
}

// urlReason is why url.Parse failed, without the URL itself (which
// *url.Error repeats, credentials and all).
func urlReason(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

func positive(add func(string, string, ...any), key string, v int64) {
	if v <= 0 {
		add(key, "must be positive")
	}
}

func checkListen(add func(string, string, ...any), key, addr string, required bool) {
	if addr == "" {
		if required {
			add(key, "must be set (like :25 or 127.0.0.1:2525)")
		}
		return
	}
	_, port, err := net.SplitHostPort(addr)
	if err != nil || port == "" {
		add(key, "%q is not host:port (like :25 or 127.0.0.1:2525)", addr)
	}
}

func checkTLS(add func(string, string, ...any), key string, t TLS) {
	if !t.Enabled() {
		return
	}
	if t.CertFile == "" || t.KeyFile == "" {
		add(key, "cert_file and key_file go together")
		return
	}
	if _, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile); err != nil {
		add(key, "cannot load the certificate and key: %v", err)
	}
}

func checkSecret(s string) error {
	b, ok := strings.CutPrefix(s, "whsec_")
	if !ok {
		return errors.New("must start with whsec_")
	}
	raw, err := base64.StdEncoding.DecodeString(b)
	if err != nil {
		return errors.New("the part after whsec_ is not base64")
	}
	if len(raw) < 24 || len(raw) > 64 {
		return fmt.Errorf("must decode to 24 to 64 bytes, got %d", len(raw))
	}
	return nil
}

func validHash(h string) bool {
	for _, p := range []string{"$2a$", "$2b$", "$2y$", "$argon2id$"} {
		if strings.HasPrefix(h, p) {
			return true
		}
	}
	return false
}

func addrDomain(a string) (string, bool) {
	if _, err := mail.ParseAddress(a); err != nil {
		return "", false
	}
	at := strings.LastIndexByte(a, '@')
	if at <= 0 {
		return "", false
	}
	return a[at+1:], validDomain(a[at+1:])
}

var labelRE = regexp.MustCompile(`^[a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?$`)

func validDomain(d string) bool {
	d = strings.TrimSuffix(d, ".")
	if d == "" || len(d) > 253 {
		return false
	}
	for _, l := range strings.Split(d, ".") {
		if !labelRE.MatchString(l) {
			return false
		}
	}
	return true
}
