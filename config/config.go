// Package config loads mailhook's configuration: a YAML file read with viper,
// every key overridable by a MAILHOOK_* environment variable, defaults in one
// place (Defaults), unknown keys refused, and Validate reporting every problem
// at once, each naming its key. The parts another package compiles, like
// the routes, are checked by that package's rule, a Check given to Load.
// This package imports no stage of the pipeline; only it touches viper.
package config

import (
	"slices"
	"time"
)

// Config is the whole configuration. The mapstructure tags are the config
// keys of DESIGN.md; they are a contract: extend, never rename.
type Config struct {
	Hostname string   `mapstructure:"hostname"`
	DataDir  string   `mapstructure:"data_dir"`
	Domains  []string `mapstructure:"domains"`

	Node     Node               `mapstructure:"node"`
	Log      Log                `mapstructure:"log"`
	SMTP     SMTP               `mapstructure:"smtp"`
	Verify   Verify             `mapstructure:"verify"`
	Parse    Parse              `mapstructure:"parse"`
	Queue    Queue              `mapstructure:"queue"`
	Webhooks map[string]Webhook `mapstructure:"webhooks"`
	Relay    Relay              `mapstructure:"relay"`
	Mailbox  Mailbox            `mapstructure:"mailbox"`
	Admin    Admin              `mapstructure:"admin"`
	Routes   []Rule             `mapstructure:"routes"`
	// Reply configures signed reply addresses (package replyaddr).
	Reply Reply `mapstructure:"reply"`
	// Retention is how long accepted messages (raw source, route
	// decisions, every delivery attempt) stay inspectable and replayable in
	// the admin API and dashboard; mailbox mail is not touched by it.
	Retention time.Duration `mapstructure:"retention"`
}

// Node says what this process does when several share one Redis queue.
type Node struct {
	// Name identifies the node in leases and logs; default the hostname
	// of the machine. It must be unique among the nodes of one queue and
	// stay the same across restarts, so a restarted node returns the
	// leases of its previous instance at once.
	Name string `mapstructure:"name"`
	// Roles: "mx" runs the SMTP listener, "deliver" takes webhook and
	// relay jobs, "mailbox" holds the mailbox store (takes mailbox jobs
	// and serves IMAP and POP3; one node per queue). Default all three.
	Roles []string `mapstructure:"roles"`
}

// The node roles.
const (
	RoleMX      = "mx"
	RoleDeliver = "deliver"
	RoleMailbox = "mailbox"
)

// Has reports whether the node has role r.
func (n Node) Has(r string) bool { return slices.Contains(n.Roles, r) }

// Log configures log/slog output.
type Log struct {
	Level  string `mapstructure:"level"`  // debug info warn error
	Format string `mapstructure:"format"` // text json
}

// TLS names a certificate and key in PEM files.
type TLS struct {
	CertFile string `mapstructure:"cert_file"`
	KeyFile  string `mapstructure:"key_file"`
}

// Enabled reports whether a certificate is configured.
func (t TLS) Enabled() bool { return t.CertFile != "" || t.KeyFile != "" }

// SMTP configures the MX listener.
type SMTP struct {
	Listen          string `mapstructure:"listen"`
	TLS             TLS    `mapstructure:"tls"`
	MaxMessageBytes int64  `mapstructure:"max_message_bytes"`
	MaxRecipients   int    `mapstructure:"max_recipients"`
	// MaxLineLength bounds command and data lines (RFC 5321 §4.5.3.1.6
	// allows 1000; real mail exceeds it, so the default is lenient).
	MaxLineLength int `mapstructure:"max_line_length"`
	// MaxErrors error replies in one session, then 421 and close.
	MaxErrors int `mapstructure:"max_errors"`
	// MaxCommands commands in one session, then 421 and close.
	MaxCommands int `mapstructure:"max_commands"`
	// MaxConnections in all, and per client IP; past them 421 at connect.
	MaxConnections      int           `mapstructure:"max_connections"`
	MaxConnectionsPerIP int           `mapstructure:"max_connections_per_ip"`
	ReadTimeout         time.Duration `mapstructure:"read_timeout"`
	WriteTimeout        time.Duration `mapstructure:"write_timeout"`
	// ShutdownTimeout bounds how long sessions in flight may take to finish
	// on SIGTERM.
	ShutdownTimeout time.Duration `mapstructure:"shutdown_timeout"`
	// MaxSessionTime bounds a whole SMTP connection, however busy; then
	// 421 4.4.2 and close.
	MaxSessionTime time.Duration `mapstructure:"max_session_time"`
	// MinDataRate is the slowest DATA/BDAT transfer accepted, in bytes a
	// second, after the first 30 seconds of DATA; slower clients get
	// 421 4.4.2 and are closed (like Postfix's smtpd_min_data_rate).
	// 0 switches it off.
	MinDataRate int64 `mapstructure:"min_data_rate"`
}

// Verify configures SPF, DKIM and DMARC.
type Verify struct {
	DNSResolver    string        `mapstructure:"dns_resolver"`
	EnforceDMARC   bool          `mapstructure:"enforce_dmarc"`
	LookupTimeout  time.Duration `mapstructure:"lookup_timeout"`
	MessageTimeout time.Duration `mapstructure:"message_timeout"`
	// OnTempError is what a DNS temperror does to the message: "accept"
	// (accept and flag) or "defer" (451 4.4.3).
	OnTempError string `mapstructure:"on_temperror"`
	// MultipleFrom is what to do with From fields that do not give
	// exactly one author address (several fields or addresses, or a From
	// only a lenient reading understands): "reject" (550 5.7.1) or
	// "strictest" (DMARC judges every domain any reading recovers, the
	// strictest policy wins; RFC 7489 §6.6.1).
	MultipleFrom string `mapstructure:"multiple_from"`
	// Rspamd asks rspamd for a spam verdict (rspamd.go); off by default.
	Rspamd Rspamd `mapstructure:"rspamd"`
}

// Parse configures MIME parsing limits.
type Parse struct {
	InlineLimit     int64 `mapstructure:"inline_limit"`
	MaxDepth        int   `mapstructure:"max_depth"`
	MaxParts        int   `mapstructure:"max_parts"`
	MaxHeaderBytes  int64 `mapstructure:"max_header_bytes"`
	MaxDecodedBytes int64 `mapstructure:"max_decoded_bytes"`
}

// Queue configures the durable queue.
type Queue struct {
	Backend     string      `mapstructure:"backend"` // embedded | redis
	Redis       Redis       `mapstructure:"redis"`
	Retry       Retry       `mapstructure:"retry"`
	Concurrency Concurrency `mapstructure:"concurrency"`
	// Lease is how long a taken job stays with its worker before it returns
	// to the queue (the visibility timeout).
	Lease time.Duration `mapstructure:"lease"`
	// DedupWindow is how long a committed message's stable id is
	// remembered: the sender's retry of it within the window (after a
	// lost 250, or a 451 for an unconfirmed commit) is not queued again.
	DedupWindow time.Duration `mapstructure:"dedup_window"`
}

// Redis configures the Redis backend (standalone, Sentinel or Cluster).
type Redis struct {
	Addr       string   `mapstructure:"addr"`
	Addrs      []string `mapstructure:"addrs"`       // several: Cluster, or Sentinels with master_name
	MasterName string   `mapstructure:"master_name"` // Sentinel
	Username   string   `mapstructure:"username"`
	Password   string   `mapstructure:"password"`
	DB         int      `mapstructure:"db"`
	Prefix     string   `mapstructure:"prefix"`
	// Shards spreads the queue over N hash tags {prefix:0}..{prefix:N-1}
	// (1: the one tag {prefix}), so Redis Cluster spreads it over masters.
	// Changing it keeps the jobs already queued: the old shards drain.
	Shards int `mapstructure:"shards"`
	// WaitReplicas makes each commit wait (WAIT) until that many replicas
	// acknowledged it before mailhook answers 250.
	WaitReplicas int `mapstructure:"wait_replicas"`
	// WaitAOF makes each commit wait (WAITAOF) until the local AOF is fsync'd.
	WaitAOF bool `mapstructure:"wait_aof"`
}

// Retry is the retry schedule of every job.
type Retry struct {
	Schedule []time.Duration `mapstructure:"schedule"`
	MaxAge   time.Duration   `mapstructure:"max_age"`
}

// Concurrency is the number of workers per job kind.
type Concurrency struct {
	Webhook int `mapstructure:"webhook"`
	Relay   int `mapstructure:"relay"`
	Mailbox int `mapstructure:"mailbox"`
}

// Webhook is one endpoint.
type Webhook struct {
	URL string `mapstructure:"url"`
	// Secret is one "whsec_..." secret; Secrets several during a rotation.
	Secret  string   `mapstructure:"secret"`
	Secrets []string `mapstructure:"secrets"`
	// SigningKeys are optional ed25519 "whsk_" keys: each adds an
	// asymmetric "v1a" signature, verified with the "whpk_" public key.
	SigningKeys  []string          `mapstructure:"signing_keys"`
	Timeout      time.Duration     `mapstructure:"timeout"`
	Concurrency  int               `mapstructure:"concurrency"`
	Headers      map[string]string `mapstructure:"headers"`
	Raw          bool              `mapstructure:"raw"`
	AllowPrivate bool              `mapstructure:"allow_private"`
	// Mode is "async" (default: queued after the 250) or "sync" (POSTed
	// during DATA; the answer becomes the SMTP reply).
	Mode string `mapstructure:"mode"`
	// SyncTimeout bounds a sync POST (default DefaultSyncTimeout).
	SyncTimeout time.Duration `mapstructure:"sync_timeout"`
	// OnFailure is what a sync endpoint's failure (5xx, timeout, no
	// connection) does: "defer" (451, the sender retries; default) or
	// "queue" (accepted and delivered through the queue).
	OnFailure string `mapstructure:"on_failure"`
}

// Sync webhook limits. The client waits for the reply to the final dot
// through verification and the sync POST; RFC 5321 §4.5.3.2.6 gives it 10
// minutes, but some clients give up much sooner.
const (
	DefaultSyncTimeout = 10 * time.Second
	MaxSyncTimeout     = 60 * time.Second
)

// Reply configures signed reply addresses reply+<thread>.<mac>@domain.
type Reply struct {
	// Secrets verify reply addresses; the first signs new ones (rotate by
	// putting a new one first). Empty: reply addresses are off.
	Secrets []string `mapstructure:"secrets"`
	// Domain of minted addresses; default: the first of domains.
	Domain string `mapstructure:"domain"`
	// TTL is how long a minted address stays valid when the minter gives
	// none; zero: no expiry.
	TTL time.Duration `mapstructure:"ttl"`
}

// AllSecrets returns Secret and Secrets together.
func (w Webhook) AllSecrets() []string {
	var s []string
	if w.Secret != "" {
		s = append(s, w.Secret)
	}
	return append(s, w.Secrets...)
}

// Relay configures forwarding.
type Relay struct {
	Smarthost   string        `mapstructure:"smarthost"`
	Username    string        `mapstructure:"username"`
	Password    string        `mapstructure:"password"`
	TLS         string        `mapstructure:"tls"` // none | opportunistic | required | implicit
	SRS         SRS           `mapstructure:"srs"`
	DKIM        DKIMSign      `mapstructure:"dkim"`
	MaxReceived int           `mapstructure:"max_received"`
	Timeout     time.Duration `mapstructure:"timeout"`
}

// SRS configures the Sender Rewriting Scheme.
type SRS struct {
	Secret string `mapstructure:"secret"`
	Domain string `mapstructure:"domain"` // default: the first of domains
}

// DKIMSign configures DKIM signing of relayed mail.
type DKIMSign struct {
	Domain         string `mapstructure:"domain"`
	Selector       string `mapstructure:"selector"`
	PrivateKeyFile string `mapstructure:"private_key_file"`
}

// Mailbox configures local mailboxes and the IMAP and POP3 servers.
type Mailbox struct {
	AllowPlaintextAuth bool   `mapstructure:"allow_plaintext_auth"`
	IMAPListen         string `mapstructure:"imap_listen"`
	IMAPSListen        string `mapstructure:"imaps_listen"`
	POP3Listen         string `mapstructure:"pop3_listen"`
	POP3SListen        string `mapstructure:"pop3s_listen"`
	TLS                TLS    `mapstructure:"tls"`
	Users              []User `mapstructure:"users"`
}

// User is a mailbox user.
type User struct {
	Name         string   `mapstructure:"name"`
	PasswordHash string   `mapstructure:"password_hash"`
	Addresses    []string `mapstructure:"addresses"`
	QuotaBytes   int64    `mapstructure:"quota_bytes"`
}

// Admin configures the admin listener.
type Admin struct {
	Listen string `mapstructure:"listen"`
	Token  string `mapstructure:"token"`
	// PublicURL is the base of the attachment URLs put in webhooks for
	// attachments over parse.inline_limit (like https://mx.example.test:8025);
	// empty leaves such attachments without a URL.
	PublicURL string `mapstructure:"public_url"`
	// Pprof serves /debug/pprof/ behind the token, for profiling.
	Pprof bool `mapstructure:"pprof"`
	// AttachmentOnce makes each attachment URL work for one download;
	// by default a URL works until it expires (retention).
	AttachmentOnce bool `mapstructure:"attachment_once"`
}
