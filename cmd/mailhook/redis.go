package main

import (
	"errors"
	"log/slog"

	"github.com/mailhook/mailhook/config"
	"github.com/mailhook/mailhook/deliver"
)

// openRedisQueue opens the Redis backend; wired once deliver/redisq lands.
func openRedisQueue(cfg *config.Config, log *slog.Logger) (deliver.Queue, func(), error) {
	return nil, nil, errors.New("the redis backend is not built into this binary yet")
}
