package redisq

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// ErrRoleHeld means another node holds a one-per-queue role.
var ErrRoleHeld = errors.New("redisq: role held by another node")

// deadAfter is how many heartbeats an instance may miss before the other
// nodes return its leases.
const deadAfter = 3

// Instance is this queue's node instance id: the node name, "/", and a
// random id made by New.
func (q *Queue) Instance() string { return q.instance }

// Start registers this node instance and keeps it alive until ctx ends or
// Close: it claims the one-per-queue roles given (ErrRoleHeld, naming the
// holder, when another live node has one), returns the leases of this
// node's previous instances at once, then heartbeats, returning the leases
// of every instance whose heartbeat stopped for deadAfter beats, and
// re-reads the shards in use.
func (q *Queue) Start(ctx context.Context, exclusiveRoles ...string) error {
	if err := q.refreshShards(ctx); err != nil {
		return err
	}
	q.mu.Lock()
	q.refreshed = true
	q.mu.Unlock()
	for _, r := range exclusiveRoles {
		if err := q.claim(ctx, r); err != nil {
			return err
		}
	}
	q.roles = exclusiveRoles
	if err := q.beat(ctx); err != nil {
		return err
	}
	ids, err := q.c.ZRange(ctx, q.kNodes, 0, -1).Result()
	if err != nil {
		return fmt.Errorf("redisq: nodes: %w", err)
	}
	var prev []string
	for _, id := range ids {
		if id != q.instance && strings.HasPrefix(id, q.opt.Node+"/") {
			prev = append(prev, id)
		}
	}
	if err := q.release(ctx, prev); err != nil {
		return err
	}
	loopCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	q.stop, q.done = cancel, make(chan struct{})
	go q.loop(ctx, loopCtx)
	return nil
}

func (q *Queue) claim(ctx context.Context, role string) error {
	ttl := deadAfter * q.opt.Heartbeat
	holder, err := claimScript.Run(ctx, q.c, []string{q.kRole + role}, q.instance, q.opt.Node+"/", ttl.Milliseconds()).Text()
	if err != nil {
		return fmt.Errorf("redisq: claim %s: %w", role, err)
	}
	if holder != "" {
		node, _, _ := strings.Cut(holder, "/")
		return fmt.Errorf("%w: %s is held by node %q (exactly one node per queue may have it)", ErrRoleHeld, role, node)
	}
	return nil
}

// RoleHolder returns the node holding a one-per-queue role, "" when none.
func (q *Queue) RoleHolder(ctx context.Context, role string) (string, error) {
	v, err := q.c.Get(ctx, q.kRole+role).Result()
	if errors.Is(err, redis.Nil) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("redisq: role %s: %w", role, err)
	}
	node, _, _ := strings.Cut(v, "/")
	return node, nil
}

func (q *Queue) beat(ctx context.Context) error {
	deadline := q.now().Add(deadAfter * q.opt.Heartbeat)
	if err := q.c.ZAdd(ctx, q.kNodes, redis.Z{Score: float64(ms(deadline)), Member: q.instance}).Err(); err != nil {
		return fmt.Errorf("redisq: heartbeat: %w", err)
	}
	return nil
}

// release returns the leases of instances to the queue, in every shard,
// and forgets the instances.
func (q *Queue) release(ctx context.Context, instances []string) error {
	if len(instances) == 0 {
		return nil
	}
	args := []any{ms(q.now()), q.kindNames}
	for _, id := range instances {
		args = append(args, id)
	}
	n := 0
	for _, sh := range q.all() {
		keys := append([]string{sh.kJob, sh.kLease, sh.kLeased}, sh.kReady...)
		got, err := releaseScript.Run(ctx, q.c, keys, args...).Int()
		if err != nil {
			return fmt.Errorf("redisq: release leases of %v: %w", instances, err)
		}
		n += got
	}
	members := make([]any, len(instances))
	for i, id := range instances {
		members[i] = id
	}
	if err := q.c.ZRem(ctx, q.kNodes, members...).Err(); err != nil {
		return fmt.Errorf("redisq: nodes: %w", err)
	}
	q.log.Info("leases of stopped node instances returned to the queue", "instances", strings.Join(instances, ","), "jobs", n)
	return nil
}

// loop heartbeats until loopCtx ends (Close) or ctx does.
func (q *Queue) loop(ctx, loopCtx context.Context) {
	defer close(q.done)
	defer func() {
		if p := recover(); p != nil {
			q.log.Error("redisq heartbeat panicked", "panic", p, "stack", string(debug.Stack()))
		}
	}()
	t := time.NewTicker(q.opt.Heartbeat)
	defer t.Stop()
	for n := 1; ; n++ {
		select {
		case <-ctx.Done():
			return
		case <-loopCtx.Done():
			return
		case <-t.C:
		}
		bctx, cancel := context.WithTimeout(loopCtx, 5*q.opt.Heartbeat)
		if err := q.tick(bctx, n); err != nil {
			q.log.Warn("redis queue heartbeat", "error", err)
		}
		cancel()
	}
}

func (q *Queue) tick(ctx context.Context, n int) error {
	if err := q.beat(ctx); err != nil {
		return err
	}
	for _, r := range q.roles {
		if err := q.claim(ctx, r); err != nil {
			q.log.Error("lost a one-per-queue role", "role", r, "error", err)
		}
	}
	dead, err := q.c.ZRangeByScore(ctx, q.kNodes, &redis.ZRangeBy{Min: "-inf", Max: fmt.Sprint(ms(q.now()))}).Result()
	if err != nil {
		return fmt.Errorf("redisq: nodes: %w", err)
	}
	if err := q.release(ctx, dead); err != nil {
		return err
	}
	if n%10 == 0 {
		return q.refreshShards(ctx)
	}
	return nil
}

// lazyRefresh reads the shards in use once, for a queue used without
// Start (the command line).
func (q *Queue) lazyRefresh(ctx context.Context) {
	q.mu.Lock()
	done := q.refreshed
	q.mu.Unlock()
	if done {
		return
	}
	if err := q.refreshShards(ctx); err == nil {
		q.mu.Lock()
		q.refreshed = true
		q.mu.Unlock()
	}
}

// Close implements deliver.Backend: it stops the heartbeat, gives up the
// roles and the instance's registration (its leases are the runner's to
// settle first); the client stays open.
func (q *Queue) Close() error {
	if q.stop == nil {
		return nil
	}
	q.stop()
	<-q.done
	q.stop = nil
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	for _, r := range q.roles {
		unclaimScript.Run(ctx, q.c, []string{q.kRole + r}, q.instance)
	}
	return q.c.ZRem(ctx, q.kNodes, q.instance).Err()
}
