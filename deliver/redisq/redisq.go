// Package redisq is the Redis queue backend: a deliver.Backend shared by
// several mailhook nodes, so any node can accept a message and any node can
// deliver it. It works with standalone Redis, Sentinel and Cluster through
// redis.UniversalClient (Redis 7; WAITAOF needs 7.2).
//
// # Keys, shards and Redis Cluster
//
// The queue is split in Options.Shards shards, each one hash tag: {prefix}
// when there is one shard (the default, and the layout before shards), else
// {prefix:0} .. {prefix:N-1} (each adjusted to {prefix:k.j} where needed
// so that shard k's hash slot lies in the k-th of N equal slot ranges, see
// shardTags). A message and all of its jobs live in one
// shard, chosen from its commit key (deliver.CommitKey, the stable id), so
// a sender's retry lands where the first copy is — while Shards is
// unchanged: after a change, the retry of a message still queued in an old
// shard fails with deliver.ErrDuplicateJob (its job IDs are there), and one
// of a message already delivered is not found in the new shard's dedup
// entries and is committed again. Each shard holds:
//
//	{s}:job           hash  job id -> job JSON
//	{s}:att           hash  job id -> attempts started (saved before each attempt)
//	{s}:lease         hash  job id -> token of the lease a worker holds
//	{s}:leased        zset  job id -> lease expiry (ms)
//	{s}:ready:<kind>  zset  job id -> next attempt (ms), for ready and scheduled jobs
//	{s}:dead          zset  job id -> dead-letter time (ms)
//	{s}:msg           hash  msg id -> mail JSON
//	{s}:raw           hash  msg id -> raw message
//	{s}:msgjobs       hash  msg id -> jobs left
//	{s}:dedup         hash  commit key -> msg id
//	{s}:dedupexp      zset  commit key -> end of its dedup window (ms)
//
// and beside them, in the slot of {prefix}:
//
//	{prefix}:shards       set   every shard tag in use (old ones drain, then go)
//	{prefix}:nodes        zset  node instance -> heartbeat deadline (ms)
//	{prefix}:role:<role>  string  the instance holding a one-per-queue role
//
// Taking a job must atomically pop it from a sorted set of every due job
// and change that job's state; committing a message must atomically write
// the message and all of its jobs. In Redis Cluster a script may only touch
// keys of one slot, so every operation is one Lua script on one shard (see
// scripts.go, in the style of asynq). On Cluster the shards' tags hash to
// slots spread over the masters, so N shards spread the load and the bytes
// over up to N masters. Workers take from every shard, starting each Take
// at the next shard in turn so none starves; operator commands (Stats,
// List, ListDead, Replay, Drop) span every shard. Changing Shards keeps
// the jobs queued: the shards of the previous value stay registered and
// are read until empty.
//
// # Leases and nodes
//
// A lease token names its shard, the node instance that holds it (the node
// name and a random id per process) and the Take. Start registers the
// instance with a heartbeat; a node restarted under the same name returns
// the leases of its previous instances at once, and any node returns the
// leases of an instance whose heartbeat stopped, without waiting for the
// lease to expire. Take also returns expired leases to the queue (a reaper
// in the same script), the fallback for a node that never called Start.
//
// # Persistence: what "no loss" needs
//
// Commit returns after Redis executed the transaction in memory. For a
// 250 that survives a Redis crash, configure Redis with
// `appendonly yes` and `appendfsync always` (or `everysec`, losing up to a
// second on a power cut), and/or replicas, and set Options.WaitAOF (Redis
// 7.2+: WAITAOF, the commit is fsync'd locally and/or on replicas) or
// Options.WaitReplicas (WAIT: the commit reached that many replicas) so
// Commit returns an error — and the SMTP session a 451 — when that did not
// happen in time. After such an error the message is nevertheless queued;
// the sender's retry has the same commit key (deliver.CommitKey: envelope
// and content hash), so its commit is a no-op that waits again, and the
// sender gets its 250 once replication is confirmed: at worst extra 451s,
// never a loss and never a second copy within Options.DedupWindow.
package redisq

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/mailhook/mailhook/deliver"
	"github.com/mailhook/mailhook/inbound"
	"github.com/mailhook/mailhook/internal/safefile"
)

// Options configures New.
type Options struct {
	// Prefix names the queue; every key starts with "{Prefix". Default
	// "mailhook".
	Prefix string
	// Shards is the number of shards (hash tags) the queue spreads over;
	// default 1.
	Shards int
	// Node names this node in lease tokens and heartbeats (see Start);
	// default "node".
	Node string
	// Heartbeat is how often Start's loop renews this instance's
	// heartbeat; an instance missing three is dead and its leases return
	// to the queue. Default 1s.
	Heartbeat time.Duration
	// Logger receives reports of leases returned; nil discards.
	Logger *slog.Logger
	// WaitReplicas, when > 0, makes Commit wait (WAIT) until that many
	// replicas have the commit, failing after WaitTimeout.
	WaitReplicas int
	// WaitAOF, when set, makes Commit wait (WAITAOF, Redis 7.2+) until the
	// commit is fsync'd to the AOF locally (Local) and on Replicas replicas.
	WaitAOF *WaitAOF
	// WaitTimeout bounds WAIT and WAITAOF; default 1s.
	WaitTimeout time.Duration
	// DedupWindow is how long a commit key is remembered (see
	// deliver.Queue.Commit); default deliver.DefaultDedupWindow.
	DedupWindow time.Duration
	// MaxRawBytes refuses raw messages larger than this; 0 means no limit
	// beyond the SMTP listener's.
	MaxRawBytes int64
	// Now returns the current time; nil means time.Now.
	Now func() time.Time
}

// WaitAOF asks Commit to wait for AOF fsyncs (WAITAOF numlocal numreplicas).
type WaitAOF struct {
	Local    bool
	Replicas int
}

// Queue is the Redis deliver.Backend.
type Queue struct {
	c   redis.UniversalClient
	opt Options
	now func() time.Time
	log *slog.Logger

	shards    []*shard // current: where commits go
	kindNames string
	kShards   string // {prefix}:shards
	kNodes    string // {prefix}:nodes
	kRole     string // {prefix}:role:
	instance  string // node name "/" random id
	next      atomic.Uint32

	mu        sync.Mutex
	allShards []*shard          // current and draining
	where     map[string]*shard // msg id -> shard, from Take
	refreshed bool
	reaped    time.Time // last reap of the shards a Take did not take from
	stop      context.CancelFunc
	done      chan struct{}
	roles     []string
}

var _ deliver.Backend = (*Queue)(nil)

// New returns a queue on c. It does not take ownership of c: Close leaves
// it open.
func New(c redis.UniversalClient, opts Options) (*Queue, error) {
	if opts.Prefix == "" {
		opts.Prefix = "mailhook"
	}
	if strings.ContainsAny(opts.Prefix, "{}|") {
		return nil, fmt.Errorf("redisq: prefix %q must not contain braces or |", opts.Prefix)
	}
	if opts.Shards <= 0 {
		opts.Shards = 1
	}
	opts.Node = cmp.Or(opts.Node, "node")
	if strings.ContainsAny(opts.Node, "|/ ") {
		return nil, fmt.Errorf("redisq: node name %q must not contain |, / or spaces", opts.Node)
	}
	if opts.Heartbeat <= 0 {
		opts.Heartbeat = time.Second
	}
	if opts.WaitTimeout <= 0 {
		opts.WaitTimeout = time.Second
	}
	if opts.DedupWindow <= 0 {
		opts.DedupWindow = deliver.DefaultDedupWindow
	}
	if opts.WaitReplicas > 0 || opts.WaitAOF != nil {
		switch c.(type) {
		case *redis.Client, *redis.ClusterClient:
		default:
			return nil, fmt.Errorf("redisq: WAIT/WAITAOF need a *redis.Client or *redis.ClusterClient, not %T", c)
		}
	}
	q := &Queue{c: c, opt: opts, now: opts.Now, log: opts.Logger, where: map[string]*shard{}}
	if q.now == nil {
		q.now = time.Now
	}
	if q.log == nil {
		q.log = slog.New(slog.DiscardHandler)
	}
	for _, tag := range shardTags(opts.Prefix, opts.Shards) {
		q.shards = append(q.shards, newShard(tag))
	}
	q.allShards = q.shards
	p := "{" + opts.Prefix + "}:"
	q.kShards, q.kNodes, q.kRole = p+"shards", p+"nodes", p+"role:"
	q.instance = opts.Node + "/" + deliver.NewToken()[:12]
	var names []string
	for _, k := range deliver.Kinds {
		names = append(names, string(k))
	}
	q.kindNames = strings.Join(names, " ")
	return q, nil
}

func ms(t time.Time) int64 { return t.UnixMilli() }

func kindIndex(k deliver.Kind) int { return slices.Index(deliver.Kinds, k) }

func (s *shard) readyKey(k deliver.Kind) (string, error) {
	i := kindIndex(k)
	if i < 0 {
		return "", fmt.Errorf("redisq: unknown kind %q", k)
	}
	return s.kReady[i], nil
}

// Commit implements deliver.Queue.
func (q *Queue) Commit(ctx context.Context, mail *inbound.Mail, jobs []*deliver.Job) (err error) {
	if mail != nil && mail.RawPath != "" {
		// The queue owns the file whatever happens.
		defer os.Remove(mail.RawPath)
	}
	now := q.now()
	if err := deliver.ValidateCommit(mail, jobs, now); err != nil {
		return err
	}
	if len(jobs) == 0 {
		return nil
	}
	raw := mail.Raw
	switch {
	case raw != nil:
		if q.opt.MaxRawBytes > 0 && int64(len(raw)) > q.opt.MaxRawBytes {
			return fmt.Errorf("redisq: commit %s: raw message over %d bytes", mail.ID, q.opt.MaxRawBytes)
		}
	case mail.RawPath == "":
		return errors.New("redisq: commit: mail without raw message")
	default:
		if raw, err = q.readRaw(mail.RawPath); err != nil {
			return fmt.Errorf("redisq: commit %s: %w", mail.ID, err)
		}
	}
	mailJSON, err := deliver.EncodeMail(mail)
	if err != nil {
		return fmt.Errorf("redisq: commit %s: %w", mail.ID, err)
	}
	// Redis holds every queued message in memory and writes it to its
	// append-only file: both go compressed when that saves (deliver.Pack).
	mailJSON, raw = deliver.Pack(mailJSON), deliver.Pack(raw)
	ck := deliver.CommitKey(mail)
	sh := q.shardFor(ck)
	keys := append([]string{sh.kJob, sh.kMsg, sh.kRaw, sh.kMsgJobs, sh.kDedup, sh.kDedupExp}, sh.kReady...)
	args := []any{mail.ID, mailJSON, raw, len(jobs), ck, ms(now), q.opt.DedupWindow.Milliseconds()}
	for _, j := range jobs {
		b, err := json.Marshal(j)
		if err != nil {
			return fmt.Errorf("redisq: commit %s: %w", mail.ID, err)
		}
		args = append(args, j.ID, kindIndex(j.Kind)+1, ms(j.NextAt), b)
	}
	if err := q.uniqueElsewhere(ctx, sh, jobs); err != nil {
		return fmt.Errorf("redisq: commit %s: %w", mail.ID, err)
	}
	if q.opt.WaitReplicas > 0 || q.opt.WaitAOF != nil {
		err = q.commitAndWait(ctx, sh, keys, args)
	} else {
		err = commitScript.Run(ctx, q.c, keys, args...).Err()
	}
	if err != nil {
		if id, ok := strings.CutPrefix(replyCode(err), "DUPJOB "); ok {
			err = fmt.Errorf("%w: %q", deliver.ErrDuplicateJob, id)
		}
		return fmt.Errorf("redisq: commit %s: %w", mail.ID, err)
	}
	return nil
}

// uniqueElsewhere checks that no other shard holds one of jobs' IDs: the
// commit script checks its own shard. Plan's job IDs derive from the
// commit key, which also picks the shard, so this only catches IDs made
// otherwise; it is one pipelined round trip, and only with several shards.
func (q *Queue) uniqueElsewhere(ctx context.Context, sh *shard, jobs []*deliver.Job) error {
	all := q.all()
	if len(all) == 1 {
		return nil
	}
	type probe struct {
		id  string
		cmd *redis.BoolCmd
	}
	var probes []probe
	_, err := q.c.Pipelined(ctx, func(p redis.Pipeliner) error {
		for _, o := range all {
			if o == sh {
				continue
			}
			for _, j := range jobs {
				probes = append(probes, probe{j.ID, p.HExists(ctx, o.kJob, j.ID)})
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, p := range probes {
		if p.cmd.Val() {
			return fmt.Errorf("%w: %q", deliver.ErrDuplicateJob, p.id)
		}
	}
	return nil
}

// readRaw returns the raw message at path, refused over MaxRawBytes.
func (q *Queue) readRaw(path string) ([]byte, error) {
	b, err := safefile.ReadUpTo(path, q.opt.MaxRawBytes)
	if errors.Is(err, safefile.ErrTooLarge) {
		return nil, fmt.Errorf("raw message over %d bytes", q.opt.MaxRawBytes)
	}
	return b, err
}

// commitAndWait runs the commit and WAIT/WAITAOF on one connection to the
// node that holds the queue: both count the writes of their own connection.
func (q *Queue) commitAndWait(ctx context.Context, sh *shard, keys []string, args []any) error {
	var node *redis.Client
	switch c := q.c.(type) {
	case *redis.Client:
		node = c
	case *redis.ClusterClient:
		var err error
		if node, err = c.MasterForKey(ctx, sh.kJob); err != nil {
			return err
		}
	}
	conn := node.Conn()
	defer conn.Close()
	// A commit found already queued (res 0) waits too: it is the sender's
	// retry after a 451 for an earlier WAIT that timed out, and the 250 it
	// gets now must mean what any 250 means.
	if err := commitScript.Run(ctx, conn, keys, args...).Err(); err != nil {
		return err
	}
	tmo := q.opt.WaitTimeout.Milliseconds()
	if n := q.opt.WaitReplicas; n > 0 {
		got, err := conn.Do(ctx, "WAIT", n, tmo).Int()
		if err != nil {
			return fmt.Errorf("wait: %w", err)
		}
		if got < n {
			return fmt.Errorf("wait: commit reached %d of %d replicas in %v", got, n, q.opt.WaitTimeout)
		}
	}
	if w := q.opt.WaitAOF; w != nil {
		local := 0
		if w.Local {
			local = 1
		}
		got, err := conn.Do(ctx, "WAITAOF", local, w.Replicas, tmo).Int64Slice()
		if err != nil {
			return fmt.Errorf("waitaof: %w", err)
		}
		if len(got) != 2 || got[0] < int64(local) || got[1] < int64(w.Replicas) {
			return fmt.Errorf("waitaof: commit fsync'd locally %v, on replicas %v, want %d and %d", got[:1], got[1:], local, w.Replicas)
		}
	}
	return nil
}

// replyCode returns a script's error reply without the "ERR " Redis adds
// to replies that carry no code of their own.
func replyCode(err error) string {
	var re redis.Error
	if !errors.As(err, &re) {
		return ""
	}
	return strings.TrimPrefix(re.Error(), "ERR ")
}

// reapBatch bounds the expired leases returned per Take.
const reapBatch = 100

// Take implements deliver.Queue. It takes from every shard, starting at
// the next one in turn, until it has n jobs.
func (q *Queue) Take(ctx context.Context, kinds []deliver.Kind, n int, lease time.Duration) ([]*deliver.Job, error) {
	if n <= 0 {
		return nil, nil
	}
	var want []any
	for _, k := range kinds {
		if i := kindIndex(k); i >= 0 {
			want = append(want, i+1)
		}
	}
	q.lazyRefresh(ctx)
	all := q.all()
	if len(all) == 1 {
		return q.take(ctx, all[0], want, n, lease)
	}
	plan, err := q.plan(ctx, all, want, n)
	if err != nil {
		return nil, err
	}
	// The shards' scripts run side by side: each is a write its master
	// persists (an fsync with appendfsync always) before answering, and
	// on Cluster the shards sit on different masters.
	start := int(q.next.Add(1))
	got := make([][]*deliver.Job, len(all))
	errs := make([]error, len(all))
	var wg sync.WaitGroup
	for i := range all {
		sh := all[(start+i)%len(all)]
		if plan[sh] == 0 {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() {
				if p := recover(); p != nil {
					errs[i] = fmt.Errorf("redisq: take: panic: %v", p)
				}
			}()
			got[i], errs[i] = q.take(ctx, sh, want, plan[sh], lease)
		}()
	}
	wg.Wait()
	var out []*deliver.Job
	for i := range got {
		out = append(out, got[i]...)
	}
	return out, errors.Join(errs...)
}

// plan decides how many jobs to take from each shard so that a Take
// across shards returns the n due jobs with the oldest NextAt, as one
// shard's script does: it reads the due heads of every shard in one
// pipeline. Shards not planned are reaped of expired leases once a second.
func (q *Queue) plan(ctx context.Context, all []*shard, want []any, n int) (map[*shard]int, error) {
	now := q.now()
	max := fmt.Sprint(ms(now))
	type head struct {
		sh    *shard
		score float64
		id    string
	}
	cmds := map[*shard][]*redis.ZSliceCmd{}
	_, err := q.c.Pipelined(ctx, func(p redis.Pipeliner) error {
		for _, sh := range all {
			for _, w := range want {
				k := sh.kReady[w.(int)-1]
				cmds[sh] = append(cmds[sh], p.ZRangeByScoreWithScores(ctx, k, &redis.ZRangeBy{Min: "-inf", Max: max, Count: int64(n)}))
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("redisq: take: %w", err)
	}
	var heads []head
	for sh, cs := range cmds {
		for _, c := range cs {
			for _, z := range c.Val() {
				heads = append(heads, head{sh, z.Score, z.Member.(string)})
			}
		}
	}
	slices.SortFunc(heads, func(a, b head) int { return cmp.Or(cmp.Compare(a.score, b.score), cmp.Compare(a.id, b.id)) })
	plan := map[*shard]int{}
	for _, h := range heads[:min(n, len(heads))] {
		plan[h.sh]++
	}
	q.mu.Lock()
	reap := now.Sub(q.reaped) >= time.Second
	if reap {
		q.reaped = now
	}
	q.mu.Unlock()
	if reap {
		for _, sh := range all {
			if plan[sh] == 0 {
				if _, err := q.take(ctx, sh, nil, 0, 0); err != nil {
					return nil, err
				}
			}
		}
	}
	return plan, nil
}

// Reap returns jobs whose lease expired to the queue now (Take does it
// too).
func (q *Queue) Reap(ctx context.Context) error {
	for _, sh := range q.all() {
		if _, err := q.take(ctx, sh, nil, 0, 0); err != nil {
			return err
		}
	}
	return nil
}

func (q *Queue) take(ctx context.Context, sh *shard, want []any, n int, lease time.Duration) ([]*deliver.Job, error) {
	now := q.now()
	until := now.Add(lease)
	keys := append([]string{sh.kJob, sh.kAtt, sh.kLease, sh.kLeased}, sh.kReady...)
	token := sh.tag + "|" + q.instance + "|" + deliver.NewToken()
	args := append([]any{ms(now), n, ms(until), token, reapBatch, q.kindNames}, want...)
	res, err := takeScript.Run(ctx, q.c, keys, args...).Slice()
	if err != nil {
		return nil, fmt.Errorf("redisq: take: %w", err)
	}
	var out []*deliver.Job
	for i := 0; i+3 < len(res); i += 4 {
		s, _ := res[i+3].(string)
		j := new(deliver.Job)
		if err := json.Unmarshal([]byte(s), j); err != nil {
			// Cannot happen for jobs this package wrote; the lease
			// expires and the job stays visible to operators.
			return out, fmt.Errorf("redisq: take: job %v: %w", res[i], err)
		}
		att, _ := res[i+1].(int64)
		j.Attempts = int(att)
		j.Lease, _ = res[i+2].(string)
		j.LeaseUntil = time.UnixMilli(ms(until))
		q.remember(j.MsgID, sh)
		out = append(out, j)
	}
	return out, nil
}

func (s *shard) settleKeys(k deliver.Kind) ([]string, error) {
	rk, err := s.readyKey(k)
	if err != nil {
		return nil, err
	}
	return []string{s.kJob, s.kAtt, s.kLease, s.kLeased, rk, s.kDead, s.kMsg, s.kRaw, s.kMsgJobs}, nil
}

func (q *Queue) settle(ctx context.Context, op string, job *deliver.Job, j *deliver.Job, score time.Time) error {
	sh, err := q.tokenShard(job.Lease)
	if err != nil {
		return fmt.Errorf("redisq: %s %s: %w", op, job.ID, deliver.ErrLeaseLost)
	}
	keys, err := sh.settleKeys(job.Kind)
	if err != nil {
		return err
	}
	var payload []byte
	if j != nil {
		if payload, err = json.Marshal(j); err != nil {
			return fmt.Errorf("redisq: %s %s: %w", op, job.ID, err)
		}
	}
	err = settleScript.Run(ctx, q.c, keys, job.ID, job.Lease, op, payload, ms(score), job.MsgID).Err()
	if err != nil {
		if replyCode(err) == "LEASELOST" {
			err = deliver.ErrLeaseLost
		}
		return fmt.Errorf("redisq: %s %s: %w", op, job.ID, err)
	}
	if j != nil {
		*job = *j
	}
	return nil
}

// Ack implements deliver.Queue.
func (q *Queue) Ack(ctx context.Context, job *deliver.Job) error {
	// Keeping delivered messages for inspection (a retention period) is a
	// later feature: it would go here instead of deleting.
	return q.settle(ctx, "ack", job, nil, time.Time{})
}

// Retry implements deliver.Queue.
func (q *Queue) Retry(ctx context.Context, job *deliver.Job, next time.Time, a deliver.Attempt) error {
	j := *job
	j.History = slices.Clone(job.History)
	j.Lease, j.LeaseUntil = "", time.Time{}
	j.NextAt = next
	j.AddAttempt(a)
	return q.settle(ctx, "retry", job, &j, next)
}

// Dead implements deliver.Queue.
func (q *Queue) Dead(ctx context.Context, job *deliver.Job, a deliver.Attempt) error {
	j := *job
	j.History = slices.Clone(job.History)
	j.Lease, j.LeaseUntil = "", time.Time{}
	j.DeadAt = q.now()
	j.AddAttempt(a)
	return q.settle(ctx, "dead", job, &j, j.DeadAt)
}
