package redisq

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/mailhook/mailhook/deliver"
	"github.com/mailhook/mailhook/inbound"
)

// hgetMsg reads a message's field from the hash key picks in its shard.
func (q *Queue) hgetMsg(ctx context.Context, msgID string, key func(*shard) string) ([]byte, error) {
	sh, err := q.shardOfMsg(ctx, msgID)
	if err != nil {
		return nil, err
	}
	b, err := q.c.HGet(ctx, key(sh), msgID).Bytes()
	if errors.Is(err, redis.Nil) {
		err = deliver.ErrNotFound
	}
	return b, err
}

// Mail implements deliver.Messages.
func (q *Queue) Mail(ctx context.Context, msgID string) (*inbound.Mail, error) {
	b, err := q.hgetMsg(ctx, msgID, func(s *shard) string { return s.kMsg })
	if err != nil {
		return nil, fmt.Errorf("redisq: mail %s: %w", msgID, err)
	}
	if b, err = deliver.Unpack(b); err != nil {
		return nil, fmt.Errorf("redisq: mail %s: %w", msgID, err)
	}
	m, err := deliver.DecodeMail(b)
	if err != nil {
		return nil, fmt.Errorf("redisq: mail %s: %w", msgID, err)
	}
	return m, nil
}

// OpenRaw implements deliver.Messages. The message is read whole into memory
// (its size is bounded by the SMTP listener's limit).
func (q *Queue) OpenRaw(ctx context.Context, msgID string) (io.ReadCloser, error) {
	b, err := q.hgetMsg(ctx, msgID, func(s *shard) string { return s.kRaw })
	if err != nil {
		return nil, fmt.Errorf("redisq: raw %s: %w", msgID, err)
	}
	if b, err = deliver.Unpack(b); err != nil {
		return nil, fmt.Errorf("redisq: raw %s: %w", msgID, err)
	}
	return io.NopCloser(bytes.NewReader(b)), nil
}

// Stats implements deliver.Operator, summed over every shard. Expired leases
// count as leased until a Take or Reap returns them.
func (q *Queue) Stats(ctx context.Context) (deliver.Stats, error) {
	q.lazyRefresh(ctx)
	nowMs := ms(q.now())
	now := strconv.FormatInt(nowMs, 10)
	var ready, sched, leased, dead []*redis.IntCmd
	var first []*redis.ZSliceCmd
	_, err := q.c.Pipelined(ctx, func(p redis.Pipeliner) error {
		for _, sh := range q.all() {
			for _, k := range sh.kReady {
				ready = append(ready, p.ZCount(ctx, k, "-inf", now))
				sched = append(sched, p.ZCount(ctx, k, "("+now, "+inf"))
				first = append(first, p.ZRangeWithScores(ctx, k, 0, 0))
			}
			leased = append(leased, p.ZCard(ctx, sh.kLeased))
			dead = append(dead, p.ZCard(ctx, sh.kDead))
		}
		return nil
	})
	if err != nil {
		return deliver.Stats{}, fmt.Errorf("redisq: stats: %w", err)
	}
	var st deliver.Stats
	for i := range leased {
		st.Leased += int(leased[i].Val())
		st.Dead += int(dead[i].Val())
	}
	var min float64 = -1
	for i := range ready {
		st.Ready += int(ready[i].Val())
		st.Scheduled += int(sched[i].Val())
		if z := first[i].Val(); len(z) == 1 && z[0].Score <= float64(nowMs) && (min < 0 || z[0].Score < min) {
			min = z[0].Score
		}
	}
	if min >= 0 {
		st.OldestAge = time.Duration(nowMs-int64(min)) * time.Millisecond
	}
	return st, nil
}

// ShardKeys counts the jobs in each current shard, by tag: how evenly the
// queue spreads (over Cluster masters, when the tags hash to their slots).
func (q *Queue) ShardKeys(ctx context.Context) (map[string]int64, error) {
	out := map[string]int64{}
	for _, sh := range q.all() {
		n, err := q.c.HLen(ctx, sh.kJob).Result()
		if err != nil {
			return nil, fmt.Errorf("redisq: shard %s: %w", sh.tag, err)
		}
		out[sh.tag] = n
	}
	return out, nil
}

// load reads jobs of one shard with their attempt count and lease; missing
// ids are skipped.
func (q *Queue) load(ctx context.Context, sh *shard, ids []string) ([]*deliver.Job, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	var js, atts, leases *redis.SliceCmd
	var untils *redis.FloatSliceCmd
	_, err := q.c.TxPipelined(ctx, func(p redis.Pipeliner) error {
		js = p.HMGet(ctx, sh.kJob, ids...)
		atts = p.HMGet(ctx, sh.kAtt, ids...)
		leases = p.HMGet(ctx, sh.kLease, ids...)
		untils = p.ZMScore(ctx, sh.kLeased, ids...)
		return nil
	})
	if err != nil {
		return nil, err
	}
	var out []*deliver.Job
	for i := range ids {
		s, ok := js.Val()[i].(string)
		if !ok {
			continue
		}
		j := new(deliver.Job)
		if err := json.Unmarshal([]byte(s), j); err != nil {
			return nil, fmt.Errorf("job %s: %w", ids[i], err)
		}
		if a, ok := atts.Val()[i].(string); ok {
			j.Attempts, _ = strconv.Atoi(a)
		}
		if l, ok := leases.Val()[i].(string); ok {
			j.Lease = l
			if u := untils.Val()[i]; u > 0 {
				j.LeaseUntil = time.UnixMilli(int64(u))
			}
		}
		out = append(out, j)
	}
	return out, nil
}

// get returns one job and its shard.
func (q *Queue) get(ctx context.Context, jobID string) (*deliver.Job, *shard, error) {
	q.lazyRefresh(ctx)
	sh, err := q.shardOfJob(ctx, jobID)
	if err != nil {
		return nil, nil, err
	}
	js, err := q.load(ctx, sh, []string{jobID})
	if err == nil && len(js) == 0 {
		err = deliver.ErrNotFound
	}
	if err != nil {
		return nil, nil, err
	}
	return js[0], sh, nil
}

// Get implements deliver.Operator.
func (q *Queue) Get(ctx context.Context, jobID string) (*deliver.Job, error) {
	j, _, err := q.get(ctx, jobID)
	if err != nil {
		return nil, fmt.Errorf("redisq: get %s: %w", jobID, err)
	}
	return j, nil
}

// ref is a job id with the shard that holds it.
type ref struct {
	id    string
	sh    *shard
	score float64
}

// List implements deliver.Operator. It reads every job ID of every shard to
// order them: it is for operators, not for the delivery path.
func (q *Queue) List(ctx context.Context, opts deliver.ListOptions) ([]*deliver.Job, error) {
	q.lazyRefresh(ctx)
	var refs []ref
	for _, sh := range q.all() {
		ids, err := q.c.HKeys(ctx, sh.kJob).Result()
		if err != nil {
			return nil, fmt.Errorf("redisq: list: %w", err)
		}
		for _, id := range ids {
			refs = append(refs, ref{id: id, sh: sh})
		}
	}
	slices.SortFunc(refs, func(a, b ref) int { return cmp.Compare(a.id, b.id) })
	if opts.After != "" {
		i, found := slices.BinarySearchFunc(refs, opts.After, func(r ref, id string) int { return cmp.Compare(r.id, id) })
		if found {
			i++
		}
		refs = refs[i:]
	}
	return q.collect(ctx, refs, opts, opts)
}

// collect loads refs in chunks (of one shard each), keeping those matching
// filter, up to opts' limit, in the order of refs.
func (q *Queue) collect(ctx context.Context, refs []ref, filter, opts deliver.ListOptions) ([]*deliver.Job, error) {
	var out []*deliver.Job
	now := q.now()
	for len(refs) > 0 && len(out) < opts.Lim() {
		n := 1
		for n < len(refs) && n < 200 && refs[n].sh == refs[0].sh {
			n++
		}
		chunk := refs[:n]
		refs = refs[n:]
		ids := make([]string, len(chunk))
		for i, r := range chunk {
			ids[i] = r.id
		}
		js, err := q.load(ctx, chunk[0].sh, ids)
		if err != nil {
			return nil, fmt.Errorf("redisq: list: %w", err)
		}
		for _, j := range js {
			if filter.Matches(j, now) && len(out) < opts.Lim() {
				out = append(out, j)
			}
		}
	}
	return out, nil
}

// ListDead implements deliver.Operator: dead jobs of every shard, most
// recently dead first.
func (q *Queue) ListDead(ctx context.Context, opts deliver.ListOptions) ([]*deliver.Job, error) {
	q.lazyRefresh(ctx)
	var refs []ref
	for _, sh := range q.all() {
		zs, err := q.c.ZRangeWithScores(ctx, sh.kDead, 0, -1).Result()
		if err != nil {
			return nil, fmt.Errorf("redisq: list dead: %w", err)
		}
		for _, z := range zs {
			refs = append(refs, ref{id: z.Member.(string), sh: sh, score: z.Score})
		}
	}
	slices.SortFunc(refs, func(a, b ref) int {
		return cmp.Or(cmp.Compare(b.score, a.score), cmp.Compare(b.id, a.id))
	})
	if opts.After != "" {
		i := slices.IndexFunc(refs, func(r ref) bool { return r.id == opts.After })
		if i < 0 {
			return nil, fmt.Errorf("redisq: list dead after %s: %w", opts.After, deliver.ErrNotFound)
		}
		refs = refs[i+1:]
	}
	filter := opts
	filter.State = ""
	return q.collect(ctx, refs, filter, opts)
}

// Replay implements deliver.Operator.
func (q *Queue) Replay(ctx context.Context, jobID string) error {
	if err := q.replay(ctx, jobID, q.now()); err != nil {
		return fmt.Errorf("redisq: replay %s: %w", jobID, err)
	}
	return nil
}

func (q *Queue) replay(ctx context.Context, jobID string, now time.Time) error {
	j, sh, err := q.get(ctx, jobID)
	if err != nil {
		return err
	}
	if j.DeadAt.IsZero() {
		return deliver.ErrNotDead
	}
	rk, err := sh.readyKey(j.Kind)
	if err != nil {
		return err
	}
	j.DeadAt = time.Time{}
	j.NextAt = now
	j.ReplayedAt = now
	j.ReplayedAttempts = j.Attempts
	b, err := json.Marshal(j)
	if err != nil {
		return err
	}
	err = replayScript.Run(ctx, q.c, []string{sh.kJob, sh.kDead, rk}, jobID, b, ms(now)).Err()
	switch {
	case err == nil:
		return nil
	case replyCode(err) == "NOTDEAD":
		return deliver.ErrNotDead
	case replyCode(err) == "NOTFOUND":
		return deliver.ErrNotFound
	}
	return err
}

// ReplayAll implements deliver.Operator.
func (q *Queue) ReplayAll(ctx context.Context, since time.Time) (int, error) {
	q.lazyRefresh(ctx)
	now := q.now()
	n := 0
	for _, sh := range q.all() {
		ids, err := q.c.ZRangeByScore(ctx, sh.kDead, &redis.ZRangeBy{Min: strconv.FormatInt(ms(since), 10), Max: "+inf"}).Result()
		if err != nil {
			return n, fmt.Errorf("redisq: replay all: %w", err)
		}
		for _, id := range ids {
			err := q.replay(ctx, id, now)
			if errors.Is(err, deliver.ErrNotDead) || errors.Is(err, deliver.ErrNotFound) {
				continue // replayed or dropped meanwhile
			}
			if err != nil {
				return n, fmt.Errorf("redisq: replay all: %s: %w", id, err)
			}
			n++
		}
	}
	return n, nil
}

// Drop implements deliver.Operator.
func (q *Queue) Drop(ctx context.Context, jobID string) error {
	j, sh, err := q.get(ctx, jobID)
	if err != nil {
		return fmt.Errorf("redisq: drop: %w", err)
	}
	keys, err := sh.settleKeys(j.Kind)
	if err != nil {
		return err
	}
	err = dropScript.Run(ctx, q.c, keys, jobID, j.MsgID).Err()
	if err != nil && replyCode(err) == "NOTFOUND" {
		err = deliver.ErrNotFound
	}
	if err != nil {
		return fmt.Errorf("redisq: drop %s: %w", jobID, err)
	}
	return nil
}

// RetryNow implements deliver.Operator.
func (q *Queue) RetryNow(ctx context.Context, jobID string) error {
	for range 5 { // the job changed under us: read it again
		err := q.retryNow(ctx, jobID)
		if replyCode(err) == "CHANGED" {
			continue
		}
		if err != nil {
			return fmt.Errorf("redisq: retry now %s: %w", jobID, err)
		}
		return nil
	}
	return fmt.Errorf("redisq: retry now %s: the job keeps changing", jobID)
}

func (q *Queue) retryNow(ctx context.Context, jobID string) error {
	q.lazyRefresh(ctx)
	sh, err := q.shardOfJob(ctx, jobID)
	if err != nil {
		return err
	}
	cur, err := q.c.HGet(ctx, sh.kJob, jobID).Result()
	if errors.Is(err, redis.Nil) {
		return deliver.ErrNotFound
	}
	if err != nil {
		return err
	}
	j, err := q.Get(ctx, jobID) // read after cur: the script's compare catches a change
	if err != nil {
		return err
	}
	now := q.now()
	if waiting, err := j.Waiting(now); !waiting {
		return err
	}
	stored := new(deliver.Job)
	if err := json.Unmarshal([]byte(cur), stored); err != nil {
		return err
	}
	stored.NextAt = now
	b, err := json.Marshal(stored)
	if err != nil {
		return err
	}
	rk, err := sh.readyKey(j.Kind)
	if err != nil {
		return err
	}
	err = retryNowScript.Run(ctx, q.c, []string{sh.kJob, rk}, jobID, cur, b, ms(now)).Err()
	switch replyCode(err) {
	case "NOTFOUND":
		return deliver.ErrNotFound
	case "NOTREADY":
		return deliver.ErrInFlight // taken (or dead-lettered) since we read it
	}
	return err
}
