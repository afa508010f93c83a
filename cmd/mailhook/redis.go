package main

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/mailhook/mailhook/config"
	"github.com/mailhook/mailhook/deliver/redisq"
)

// openRedisQueue opens the Redis backend with a universal client:
// standalone (addr), Cluster (several addrs) or Sentinel (addrs and
// master_name). It checks that Redis answers before returning.
func openRedisQueue(cfg *config.Config, log *slog.Logger) (*redisq.Queue, func(), error) {
	r := cfg.Queue.Redis
	addrs := r.Addrs
	if len(addrs) == 0 {
		addrs = []string{r.Addr}
	}
	c := redis.NewUniversalClient(&redis.UniversalOptions{
		Addrs:      addrs,
		MasterName: r.MasterName,
		Username:   r.Username,
		Password:   r.Password,
		DB:         r.DB,
	})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.Ping(ctx).Err(); err != nil {
		c.Close()
		return nil, nil, fmt.Errorf("cannot reach Redis at %v: %w", addrs, err)
	}
	opts := redisq.Options{
		Prefix: r.Prefix, Shards: r.Shards, Node: nodeName(cfg), Logger: log,
		WaitReplicas: r.WaitReplicas, DedupWindow: cfg.Queue.DedupWindow,
	}
	if r.WaitAOF {
		opts.WaitAOF = &redisq.WaitAOF{Local: true, Replicas: r.WaitReplicas}
		opts.WaitReplicas = 0
	}
	q, err := redisq.New(c, opts)
	if err != nil {
		c.Close()
		return nil, nil, err
	}
	log.Info("redis queue", "addrs", addrs, "prefix", r.Prefix, "shards", r.Shards, "node", opts.Node, "instance", q.Instance())
	return q, func() { c.Close() }, nil
}

// nodeName is node.name, or the machine's hostname and a hash of the
// data_dir: the same across restarts of one node (which is how a restarted
// node finds its previous instance's leases) and different for two nodes
// on one machine.
func nodeName(cfg *config.Config) string {
	if cfg.Node.Name != "" {
		return cfg.Node.Name
	}
	h, _ := os.Hostname()
	dir, err := filepath.Abs(cfg.DataDir)
	if err != nil {
		dir = cfg.DataDir
	}
	sum := sha256.Sum256([]byte(dir))
	return cmp.Or(h, "node") + "-" + hex.EncodeToString(sum[:3])
}

// holdsMailbox reports whether this node holds the mailbox store: it has
// the role and there are mailbox users.
func holdsMailbox(cfg *config.Config) bool {
	return cfg.Node.Has(config.RoleMailbox) && len(cfg.Mailbox.Users) > 0
}

// startRedisNode registers this node on the shared queue: it claims the
// mailbox role when the node has it (refusing to start when another live
// node holds it: exactly one node per queue holds the mailbox store), and
// returns the leases of this node's previous process at once.
func startRedisNode(q *redisq.Queue, cfg *config.Config) error {
	var exclusive []string
	if holdsMailbox(cfg) {
		exclusive = append(exclusive, config.RoleMailbox)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := q.Start(ctx, exclusive...); err != nil {
		return fmt.Errorf("node.roles: %w", err)
	}
	return nil
}

// checkMailboxRole tells check-config whether another node holds the
// mailbox role this config claims; "" when not (or Redis is unreachable:
// then the reason is the second result).
func checkMailboxRole(cfg *config.Config) (holder, note string) {
	q, closeClient, err := openRedisQueue(cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		return "", "not checked: " + err.Error()
	}
	defer closeClient()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	h, err := q.RoleHolder(ctx, config.RoleMailbox)
	if err != nil {
		return "", "not checked: " + err.Error()
	}
	if h == "" || h == nodeName(cfg) {
		return "", ""
	}
	return h, ""
}
