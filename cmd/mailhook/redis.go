package main

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/mailhook/mailhook/config"
	"github.com/mailhook/mailhook/deliver"
	"github.com/mailhook/mailhook/deliver/redisq"
)

// openRedisQueue opens the Redis backend with a universal client:
// standalone (addr), Cluster (several addrs) or Sentinel (addrs and
// master_name). It checks that Redis answers before returning.
func openRedisQueue(cfg *config.Config, log *slog.Logger) (deliver.Queue, func(), error) {
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
	opts := redisq.Options{Prefix: r.Prefix, WaitReplicas: r.WaitReplicas}
	if r.WaitAOF {
		opts.WaitAOF = &redisq.WaitAOF{Local: true, Replicas: r.WaitReplicas}
		opts.WaitReplicas = 0
	}
	q, err := redisq.New(c, opts)
	if err != nil {
		c.Close()
		return nil, nil, err
	}
	log.Info("redis queue", "addrs", addrs, "prefix", r.Prefix)
	return q, func() { c.Close() }, nil
}
