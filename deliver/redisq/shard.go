package redisq

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"slices"
	"strings"

	"github.com/redis/go-redis/v9"

	"github.com/mailhook/mailhook/deliver"
)

// shard is one hash tag's set of keys: a complete queue for the messages
// whose commit key hashes to it. Every script touches one shard only, so
// each runs in one Redis Cluster slot.
type shard struct {
	tag                                                      string // "{prefix}" or "{prefix:k}"
	kJob, kAtt, kLease, kLeased, kDead, kMsg, kRaw, kMsgJobs string
	kDedup, kDedupExp                                        string
	kReady                                                   []string // in deliver.Kinds order
}

func newShard(tag string) *shard {
	p := tag + ":"
	s := &shard{tag: tag}
	s.kJob, s.kAtt, s.kLease, s.kLeased = p+"job", p+"att", p+"lease", p+"leased"
	s.kDead, s.kMsg, s.kRaw, s.kMsgJobs = p+"dead", p+"msg", p+"raw", p+"msgjobs"
	s.kDedup, s.kDedupExp = p+"dedup", p+"dedupexp"
	for _, k := range deliver.Kinds {
		s.kReady = append(s.kReady, p+"ready:"+string(k))
	}
	return s
}

// shardTags names the n shards of prefix: the one tag {prefix} for n = 1
// (the layout before shards existed), else {prefix:k} for k in 0..n-1 —
// or {prefix:k.j} for the first j that puts shard k's hash slot in the
// k-th of n equal ranges of the 16384 slots. Redis Cluster gives each
// master a contiguous range of slots (redis-cli --cluster create makes
// equal ones), so n shards a multiple of the masters spread evenly over
// them, whatever the prefix. Every node computes the same tags.
func shardTags(prefix string, n int) []string {
	if n <= 1 {
		return []string{"{" + prefix + "}"}
	}
	tags := make([]string, n)
	for k := range tags {
		lo, hi := k*slots/n, (k+1)*slots/n
		tag := fmt.Sprintf("%s:%d", prefix, k)
		for j := 0; ; j++ {
			if s := slot(tag); s >= lo && s < hi {
				break
			}
			tag = fmt.Sprintf("%s:%d.%d", prefix, k, j)
		}
		tags[k] = "{" + tag + "}"
	}
	return tags
}

// slots is the number of Redis Cluster hash slots.
const slots = 16384

// slot is the Redis Cluster hash slot of a hash tag's content: CRC16
// (XMODEM: polynomial 0x1021, initial 0) modulo 16384, as the Redis
// Cluster specification defines it ("Keys distribution model"). go-redis
// computes it in an internal package only.
func slot(tag string) int {
	var crc uint16
	for i := 0; i < len(tag); i++ {
		crc ^= uint16(tag[i]) << 8
		for range 8 {
			if crc&0x8000 != 0 {
				crc = crc<<1 ^ 0x1021
			} else {
				crc <<= 1
			}
		}
	}
	return int(crc) % slots
}

// shardFor returns the current shard of a commit key: the same key (a
// sender's retry) always lands in the same shard, where Commit finds it.
func (q *Queue) shardFor(commitKey string) *shard {
	h := fnv.New32a()
	h.Write([]byte(commitKey))
	return q.shards[h.Sum32()%uint32(len(q.shards))]
}

// all returns every shard to read from: the current ones and those a
// previous configuration (another shards value) left with jobs, which are
// drained rather than abandoned.
func (q *Queue) all() []*shard {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.allShards
}

// byTag returns the shard of tag, known or not.
func (q *Queue) byTag(tag string) *shard {
	q.mu.Lock()
	defer q.mu.Unlock()
	for _, s := range q.allShards {
		if s.tag == tag {
			return s
		}
	}
	return newShard(tag)
}

// refreshShards registers the current shards in {prefix}:shards and reads
// back every shard registered, dropping old ones that are empty.
func (q *Queue) refreshShards(ctx context.Context) error {
	var tags []any
	for _, s := range q.shards {
		tags = append(tags, s.tag)
	}
	if err := q.c.SAdd(ctx, q.kShards, tags...).Err(); err != nil {
		return fmt.Errorf("redisq: shards: %w", err)
	}
	reg, err := q.c.SMembers(ctx, q.kShards).Result()
	if err != nil {
		return fmt.Errorf("redisq: shards: %w", err)
	}
	slices.Sort(reg)
	all := slices.Clone(q.shards)
	for _, tag := range reg {
		if slices.ContainsFunc(all, func(s *shard) bool { return s.tag == tag }) {
			continue
		}
		old := newShard(tag)
		empty, err := q.empty(ctx, old)
		if err != nil {
			return err
		}
		if empty {
			q.c.SRem(ctx, q.kShards, tag)
			continue
		}
		all = append(all, old)
	}
	q.mu.Lock()
	q.allShards = all
	q.mu.Unlock()
	return nil
}

// empty reports whether a shard holds no message and no job.
func (q *Queue) empty(ctx context.Context, s *shard) (bool, error) {
	var cmds []*redis.IntCmd
	_, err := q.c.Pipelined(ctx, func(p redis.Pipeliner) error {
		cmds = append(cmds, p.HLen(ctx, s.kJob), p.HLen(ctx, s.kMsg))
		return nil
	})
	if err != nil {
		return false, fmt.Errorf("redisq: shard %s: %w", s.tag, err)
	}
	return cmds[0].Val() == 0 && cmds[1].Val() == 0, nil
}

// shardOfJob finds the shard holding a job.
func (q *Queue) shardOfJob(ctx context.Context, jobID string) (*shard, error) {
	return q.find(ctx, func(s *shard) string { return s.kJob }, jobID)
}

// shardOfMsg finds the shard holding a message: the one Take last saw it
// in, else a look in every shard.
func (q *Queue) shardOfMsg(ctx context.Context, msgID string) (*shard, error) {
	q.mu.Lock()
	s := q.where[msgID]
	q.mu.Unlock()
	if s != nil {
		return s, nil
	}
	return q.find(ctx, func(s *shard) string { return s.kMsg }, msgID)
}

// find asks every shard, in one pipeline, whether its hash key(s) holds
// field.
func (q *Queue) find(ctx context.Context, key func(*shard) string, field string) (*shard, error) {
	all := q.all()
	if len(all) == 1 {
		return all[0], nil
	}
	cmds := make([]*redis.BoolCmd, len(all))
	_, err := q.c.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, s := range all {
			cmds[i] = p.HExists(ctx, key(s), field)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	for i, c := range cmds {
		if c.Val() {
			return all[i], nil
		}
	}
	return nil, deliver.ErrNotFound
}

// remember notes the shard a taken job's message is in, for Mail and
// OpenRaw; the map is bounded by starting over.
func (q *Queue) remember(msgID string, s *shard) {
	if len(q.shards) == 1 && len(q.all()) == 1 {
		return
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.where) > 10000 {
		clear(q.where)
	}
	q.where[msgID] = s
}

// tokenShard returns the shard a lease token was issued by: tokens start
// with the shard's tag.
func (q *Queue) tokenShard(token string) (*shard, error) {
	tag, _, ok := strings.Cut(token, "|")
	if !ok || !strings.HasPrefix(tag, "{") {
		return nil, errors.New("redisq: lease token of another format")
	}
	return q.byTag(tag), nil
}
