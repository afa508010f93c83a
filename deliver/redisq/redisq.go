// Package redisq is the Redis queue backend: a deliver.Queue shared by
// several mailhook nodes, so any node can accept a message and any node can
// deliver it. It works with standalone Redis, Sentinel and Cluster through
// redis.UniversalClient (Redis 7; WAITAOF needs 7.2).
//
// # Keys and Redis Cluster
//
// Every key carries one hash tag, {prefix} (default {mailhook}):
//
//	{p}:job           hash  job id -> job JSON
//	{p}:att           hash  job id -> attempts started (saved before each attempt)
//	{p}:lease         hash  job id -> token of the lease a worker holds
//	{p}:leased        zset  job id -> lease expiry (ms)
//	{p}:ready:<kind>  zset  job id -> next attempt (ms), for ready and scheduled jobs
//	{p}:dead          zset  job id -> dead-letter time (ms)
//	{p}:msg           hash  msg id -> mail JSON
//	{p}:raw           hash  msg id -> raw message
//	{p}:msgjobs       hash  msg id -> jobs left
//
// Taking a job must atomically pop it from a sorted set of every due job
// and change that job's state; committing a message must atomically write
// the message and all of its jobs. In Redis Cluster a script may only touch
// keys of one slot, so per-message keys tagged {msgid} plus global sorted
// sets cannot be changed in one script. This backend therefore keeps the
// whole queue, raw messages included, in the one slot of {prefix}: every
// operation is one Lua script (see scripts.go), correct on Cluster, at the
// price that one shard (and its replicas) holds the queue. Run several
// queues (prefixes) to spread load over shards.
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
// the sender's retry commits the same message ID, which is a no-op, so the
// worst case is one extra 451, never a loss.
//
// Leases: Take first returns expired leases to the queue (a reaper in the
// same script), so a job whose worker died is taken again once its lease
// expires; Reap does the same on demand.
package redisq

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/mailhook/mailhook/deliver"
	"github.com/mailhook/mailhook/route"
)

// Options configures New.
type Options struct {
	// Prefix names the queue; every key is "{Prefix}:...". Default
	// "mailhook".
	Prefix string
	// WaitReplicas, when > 0, makes Commit wait (WAIT) until that many
	// replicas have the commit, failing after WaitTimeout.
	WaitReplicas int
	// WaitAOF, when set, makes Commit wait (WAITAOF, Redis 7.2+) until the
	// commit is fsync'd to the AOF locally (Local) and on Replicas replicas.
	WaitAOF *WaitAOF
	// WaitTimeout bounds WAIT and WAITAOF; default 1s.
	WaitTimeout time.Duration
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

// Queue is the Redis deliver.Queue.
type Queue struct {
	c   redis.UniversalClient
	opt Options
	now func() time.Time

	kJob, kAtt, kLease, kLeased, kDead, kMsg, kRaw, kMsgJobs string
	kReady                                                   []string // in deliver.Kinds order
	kindNames                                                string
}

var _ deliver.Queue = (*Queue)(nil)

// New returns a queue on c. It does not take ownership of c: Close leaves
// it open.
func New(c redis.UniversalClient, opts Options) (*Queue, error) {
	if opts.Prefix == "" {
		opts.Prefix = "mailhook"
	}
	if strings.ContainsAny(opts.Prefix, "{}") {
		return nil, fmt.Errorf("redisq: prefix %q must not contain braces", opts.Prefix)
	}
	if opts.WaitTimeout <= 0 {
		opts.WaitTimeout = time.Second
	}
	if opts.WaitReplicas > 0 || opts.WaitAOF != nil {
		switch c.(type) {
		case *redis.Client, *redis.ClusterClient:
		default:
			return nil, fmt.Errorf("redisq: WAIT/WAITAOF need a *redis.Client or *redis.ClusterClient, not %T", c)
		}
	}
	q := &Queue{c: c, opt: opts, now: opts.Now}
	if q.now == nil {
		q.now = time.Now
	}
	p := "{" + opts.Prefix + "}:"
	q.kJob, q.kAtt, q.kLease, q.kLeased = p+"job", p+"att", p+"lease", p+"leased"
	q.kDead, q.kMsg, q.kRaw, q.kMsgJobs = p+"dead", p+"msg", p+"raw", p+"msgjobs"
	var names []string
	for _, k := range deliver.Kinds {
		q.kReady = append(q.kReady, p+"ready:"+string(k))
		names = append(names, string(k))
	}
	q.kindNames = strings.Join(names, " ")
	return q, nil
}

// Close implements deliver.Queue; the client stays open.
func (q *Queue) Close() error { return nil }

func ms(t time.Time) int64 { return t.UnixMilli() }

func kindIndex(k deliver.Kind) int { return slices.Index(deliver.Kinds, k) }

func (q *Queue) readyKey(k deliver.Kind) (string, error) {
	i := kindIndex(k)
	if i < 0 {
		return "", fmt.Errorf("redisq: unknown kind %q", k)
	}
	return q.kReady[i], nil
}

// Commit implements deliver.Queue.
func (q *Queue) Commit(ctx context.Context, mail *route.Mail, jobs []*deliver.Job) (err error) {
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
	mailJSON, err := json.Marshal(mail)
	if err != nil {
		return fmt.Errorf("redisq: commit %s: %w", mail.ID, err)
	}
	keys := append([]string{q.kJob, q.kMsg, q.kRaw, q.kMsgJobs}, q.kReady...)
	args := []any{mail.ID, mailJSON, raw, len(jobs)}
	for _, j := range jobs {
		b, err := json.Marshal(j)
		if err != nil {
			return fmt.Errorf("redisq: commit %s: %w", mail.ID, err)
		}
		args = append(args, j.ID, kindIndex(j.Kind)+1, ms(j.NextAt), b)
	}
	if q.opt.WaitReplicas > 0 || q.opt.WaitAOF != nil {
		err = q.commitAndWait(ctx, keys, args)
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

func (q *Queue) readRaw(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	var r io.Reader = f
	if q.opt.MaxRawBytes > 0 {
		if st.Size() > q.opt.MaxRawBytes {
			return nil, fmt.Errorf("raw message over %d bytes", q.opt.MaxRawBytes)
		}
		r = io.LimitReader(f, q.opt.MaxRawBytes+1)
	}
	// Sized from the file, as os.ReadFile does: one allocation, not
	// io.ReadAll's doubling from 512 bytes.
	buf := bytes.NewBuffer(make([]byte, 0, st.Size()+bytes.MinRead))
	if _, err := buf.ReadFrom(r); err != nil {
		return nil, err
	}
	b := buf.Bytes()
	if q.opt.MaxRawBytes > 0 && int64(len(b)) > q.opt.MaxRawBytes {
		return nil, fmt.Errorf("raw message over %d bytes", q.opt.MaxRawBytes)
	}
	return b, nil
}

// commitAndWait runs the commit and WAIT/WAITAOF on one connection to the
// node that holds the queue: both count the writes of their own connection.
func (q *Queue) commitAndWait(ctx context.Context, keys []string, args []any) error {
	var node *redis.Client
	switch c := q.c.(type) {
	case *redis.Client:
		node = c
	case *redis.ClusterClient:
		var err error
		if node, err = c.MasterForKey(ctx, q.kJob); err != nil {
			return err
		}
	}
	conn := node.Conn()
	defer conn.Close()
	res, err := commitScript.Run(ctx, conn, keys, args...).Int()
	if err != nil {
		return err
	}
	if res == 0 {
		return nil // already queued by an earlier commit
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

func newToken() string {
	var b [12]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// reapBatch bounds the expired leases returned per Take.
const reapBatch = 100

// Take implements deliver.Queue.
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
	return q.take(ctx, want, n, lease)
}

// Reap returns jobs whose lease expired to the queue now (Take does it
// too).
func (q *Queue) Reap(ctx context.Context) error {
	_, err := q.take(ctx, nil, 0, 0)
	return err
}

func (q *Queue) take(ctx context.Context, want []any, n int, lease time.Duration) ([]*deliver.Job, error) {
	now := q.now()
	until := now.Add(lease)
	keys := append([]string{q.kJob, q.kAtt, q.kLease, q.kLeased}, q.kReady...)
	args := append([]any{ms(now), n, ms(until), newToken(), reapBatch, q.kindNames}, want...)
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
		out = append(out, j)
	}
	return out, nil
}

func (q *Queue) settleKeys(k deliver.Kind) ([]string, error) {
	rk, err := q.readyKey(k)
	if err != nil {
		return nil, err
	}
	return []string{q.kJob, q.kAtt, q.kLease, q.kLeased, rk, q.kDead, q.kMsg, q.kRaw, q.kMsgJobs}, nil
}

func (q *Queue) settle(ctx context.Context, op string, job *deliver.Job, j *deliver.Job, score time.Time) error {
	keys, err := q.settleKeys(job.Kind)
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

// Mail implements deliver.Queue.
func (q *Queue) Mail(ctx context.Context, msgID string) (*route.Mail, error) {
	b, err := q.c.HGet(ctx, q.kMsg, msgID).Bytes()
	if errors.Is(err, redis.Nil) {
		err = deliver.ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("redisq: mail %s: %w", msgID, err)
	}
	m := new(route.Mail)
	if err := json.Unmarshal(b, m); err != nil {
		return nil, fmt.Errorf("redisq: mail %s: %w", msgID, err)
	}
	return m, nil
}

// OpenRaw implements deliver.Queue. The message is read whole into memory
// (its size is bounded by the SMTP listener's limit).
func (q *Queue) OpenRaw(ctx context.Context, msgID string) (io.ReadCloser, error) {
	b, err := q.c.HGet(ctx, q.kRaw, msgID).Bytes()
	if errors.Is(err, redis.Nil) {
		err = deliver.ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("redisq: raw %s: %w", msgID, err)
	}
	return io.NopCloser(bytes.NewReader(b)), nil
}

// Stats implements deliver.Queue. Expired leases count as leased until a
// Take or Reap returns them.
func (q *Queue) Stats(ctx context.Context) (deliver.Stats, error) {
	nowMs := ms(q.now())
	now := strconv.FormatInt(nowMs, 10)
	var ready, sched []*redis.IntCmd
	var first []*redis.ZSliceCmd
	var leased, dead *redis.IntCmd
	_, err := q.c.TxPipelined(ctx, func(p redis.Pipeliner) error {
		for _, k := range q.kReady {
			ready = append(ready, p.ZCount(ctx, k, "-inf", now))
			sched = append(sched, p.ZCount(ctx, k, "("+now, "+inf"))
			first = append(first, p.ZRangeWithScores(ctx, k, 0, 0))
		}
		leased = p.ZCard(ctx, q.kLeased)
		dead = p.ZCard(ctx, q.kDead)
		return nil
	})
	if err != nil {
		return deliver.Stats{}, fmt.Errorf("redisq: stats: %w", err)
	}
	st := deliver.Stats{Leased: int(leased.Val()), Dead: int(dead.Val())}
	var min float64 = -1
	for i := range q.kReady {
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

// load reads jobs with their attempt count and lease; missing ids are
// skipped.
func (q *Queue) load(ctx context.Context, ids []string) ([]*deliver.Job, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	var js, atts, leases *redis.SliceCmd
	var untils *redis.FloatSliceCmd
	_, err := q.c.TxPipelined(ctx, func(p redis.Pipeliner) error {
		js = p.HMGet(ctx, q.kJob, ids...)
		atts = p.HMGet(ctx, q.kAtt, ids...)
		leases = p.HMGet(ctx, q.kLease, ids...)
		untils = p.ZMScore(ctx, q.kLeased, ids...)
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

// Get implements deliver.Queue.
func (q *Queue) Get(ctx context.Context, jobID string) (*deliver.Job, error) {
	js, err := q.load(ctx, []string{jobID})
	if err == nil && len(js) == 0 {
		err = deliver.ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("redisq: get %s: %w", jobID, err)
	}
	return js[0], nil
}

// List implements deliver.Queue. It reads every job ID to order them: it is
// for operators, not for the delivery path.
func (q *Queue) List(ctx context.Context, opts deliver.ListOptions) ([]*deliver.Job, error) {
	ids, err := q.c.HKeys(ctx, q.kJob).Result()
	if err != nil {
		return nil, fmt.Errorf("redisq: list: %w", err)
	}
	slices.Sort(ids)
	if opts.After != "" {
		i, found := slices.BinarySearch(ids, opts.After)
		if found {
			i++
		}
		ids = ids[i:]
	}
	return q.collect(ctx, ids, opts, opts)
}

// collect loads ids in chunks, keeping those matching filter, up to limit.
func (q *Queue) collect(ctx context.Context, ids []string, filter, opts deliver.ListOptions) ([]*deliver.Job, error) {
	var out []*deliver.Job
	now := q.now()
	for len(ids) > 0 && len(out) < opts.Lim() {
		chunk := ids[:min(len(ids), 200)]
		ids = ids[len(chunk):]
		js, err := q.load(ctx, chunk)
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

// ListDead implements deliver.Queue.
func (q *Queue) ListDead(ctx context.Context, opts deliver.ListOptions) ([]*deliver.Job, error) {
	start := int64(0)
	if opts.After != "" {
		r, err := q.c.ZRevRank(ctx, q.kDead, opts.After).Result()
		if errors.Is(err, redis.Nil) {
			return nil, fmt.Errorf("redisq: list dead after %s: %w", opts.After, deliver.ErrNotFound)
		}
		if err != nil {
			return nil, fmt.Errorf("redisq: list dead: %w", err)
		}
		start = r + 1
	}
	filter := opts
	filter.State = ""
	var out []*deliver.Job
	for len(out) < opts.Lim() {
		ids, err := q.c.ZRevRange(ctx, q.kDead, start, start+199).Result()
		if err != nil {
			return nil, fmt.Errorf("redisq: list dead: %w", err)
		}
		if len(ids) == 0 {
			break
		}
		start += int64(len(ids))
		o := opts
		o.Limit = opts.Lim() - len(out)
		js, err := q.collect(ctx, ids, filter, o)
		if err != nil {
			return nil, err
		}
		out = append(out, js...)
	}
	return out, nil
}

// Replay implements deliver.Queue.
func (q *Queue) Replay(ctx context.Context, jobID string) error {
	if err := q.replay(ctx, jobID, q.now()); err != nil {
		return fmt.Errorf("redisq: replay %s: %w", jobID, err)
	}
	return nil
}

func (q *Queue) replay(ctx context.Context, jobID string, now time.Time) error {
	j, err := q.Get(ctx, jobID)
	if err != nil {
		return err
	}
	if j.DeadAt.IsZero() {
		return deliver.ErrNotDead
	}
	rk, err := q.readyKey(j.Kind)
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
	err = replayScript.Run(ctx, q.c, []string{q.kJob, q.kDead, rk}, jobID, b, ms(now)).Err()
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

// ReplayAll implements deliver.Queue.
func (q *Queue) ReplayAll(ctx context.Context, since time.Time) (int, error) {
	ids, err := q.c.ZRangeByScore(ctx, q.kDead, &redis.ZRangeBy{Min: strconv.FormatInt(ms(since), 10), Max: "+inf"}).Result()
	if err != nil {
		return 0, fmt.Errorf("redisq: replay all: %w", err)
	}
	now := q.now()
	n := 0
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
	return n, nil
}

// Drop implements deliver.Queue.
func (q *Queue) Drop(ctx context.Context, jobID string) error {
	j, err := q.Get(ctx, jobID)
	if err != nil {
		return fmt.Errorf("redisq: drop: %w", err)
	}
	keys, err := q.settleKeys(j.Kind)
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

var _ deliver.NowRetrier = (*Queue)(nil)

// RetryNow implements deliver.NowRetrier.
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
	cur, err := q.c.HGet(ctx, q.kJob, jobID).Result()
	if errors.Is(err, redis.Nil) {
		return deliver.ErrNotFound
	}
	if err != nil {
		return err
	}
	j, err := q.Get(ctx, jobID)
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
	rk, err := q.readyKey(j.Kind)
	if err != nil {
		return err
	}
	err = retryNowScript.Run(ctx, q.c, []string{q.kJob, rk}, jobID, cur, b, ms(now)).Err()
	switch replyCode(err) {
	case "NOTFOUND":
		return deliver.ErrNotFound
	case "NOTREADY":
		return deliver.ErrInFlight // taken (or dead-lettered) since we read it
	}
	return err
}
