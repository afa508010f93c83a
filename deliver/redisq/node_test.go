package redisq_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/mailhook/mailhook/deliver"
	"github.com/mailhook/mailhook/deliver/queuetest"
	"github.com/mailhook/mailhook/deliver/redisq"
)

func newQueue(t *testing.T, opts redisq.Options) *redisq.Queue {
	t.Helper()
	q, err := redisq.New(client(t), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { q.Close() })
	return q
}

func TestSuiteSharded(t *testing.T) {
	need(t)
	queuetest.Run(t, func(t *testing.T) deliver.Backend {
		q, err := redisq.New(client(t), redisq.Options{Prefix: prefix(), Shards: 4})
		if err != nil {
			t.Fatal(err)
		}
		return q
	})
}

// commitN commits n messages of one webhook job each, with distinct
// stable ids.
func commitN(t *testing.T, q deliver.Queue, tag string, n int) {
	t.Helper()
	for i := range n {
		m := queuetest.NewMail(t, fmt.Sprint(tag, "m", i), "x")
		m.StableID = fmt.Sprint(tag, "s", i)
		if err := q.Commit(t.Context(), m, []*deliver.Job{queuetest.NewJob(fmt.Sprint(tag, "j", i), m.ID, deliver.KindWebhook, time.Time{})}); err != nil {
			t.Fatal(err)
		}
	}
}

// drain takes and acks until nothing is due, returning the job ids seen.
func drain(t *testing.T, q deliver.Queue) map[string]int {
	t.Helper()
	seen := map[string]int{}
	for {
		js, err := q.Take(t.Context(), deliver.Kinds, 7, time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		if len(js) == 0 {
			return seen
		}
		for _, j := range js {
			seen[j.ID]++
			if err := q.Ack(t.Context(), j); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// TestShardsSpread: messages spread over every shard, and a Take reaches
// them all.
func TestShardsSpread(t *testing.T) {
	need(t)
	q := newQueue(t, redisq.Options{Prefix: prefix(), Shards: 4})
	commitN(t, q, "a", 80)
	per, err := q.ShardKeys(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if len(per) != 4 {
		t.Fatalf("ShardKeys = %v, want 4 shards", per)
	}
	for tag, n := range per {
		if n == 0 || n > 40 {
			t.Errorf("shard %s holds %d of 80 jobs", tag, n)
		}
	}
	if seen := drain(t, q); len(seen) != 80 {
		t.Errorf("drained %d jobs, want 80", len(seen))
	}
}

// TestShardsChange: jobs queued under one shards value are delivered by a
// queue opened with another (the old shards drain), and then forgotten.
func TestShardsChange(t *testing.T) {
	need(t)
	p := prefix()
	one := newQueue(t, redisq.Options{Prefix: p})
	commitN(t, one, "a", 20)
	if err := one.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	three := newQueue(t, redisq.Options{Prefix: p, Shards: 3})
	commitN(t, three, "b", 20)
	st, err := three.Stats(t.Context())
	if err != nil || st.Ready != 40 {
		t.Fatalf("Stats over old and new shards = %+v, %v; want 40 ready", st, err)
	}
	seen := drain(t, three)
	if len(seen) != 40 {
		t.Errorf("drained %d jobs, want all 40", len(seen))
	}
	if err := three.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	per, err := three.ShardKeys(t.Context())
	if err != nil || len(per) != 3 {
		t.Errorf("ShardKeys after the old shard drained = %v, %v; want the 3 current", per, err)
	}
}

// TestRestartReleasesLeases: a node started again under its name returns
// the leases of its previous instance (killed holding them) at once, not
// after the lease.
func TestRestartReleasesLeases(t *testing.T) {
	need(t)
	p := prefix()
	old := newQueue(t, redisq.Options{Prefix: p, Node: "a", Shards: 2})
	if err := old.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	commitN(t, old, "a", 5)
	js, err := old.Take(t.Context(), deliver.Kinds, 5, time.Hour)
	if err != nil || len(js) != 5 {
		t.Fatalf("Take = %v, %v", len(js), err)
	}
	for _, j := range js {
		if !strings.Contains(j.Lease, "|"+old.Instance()+"|") {
			t.Fatalf("lease %q does not name the instance %s", j.Lease, old.Instance())
		}
	}
	// "kill -9": the old instance's loop stops without a Close.
	other := newQueue(t, redisq.Options{Prefix: p, Node: "b", Shards: 2, Heartbeat: time.Hour})
	if err := other.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	if got, _ := other.Take(t.Context(), deliver.Kinds, 5, time.Hour); len(got) != 0 {
		t.Fatalf("another node took %d leased jobs", len(got))
	}
	again := newQueue(t, redisq.Options{Prefix: p, Node: "a", Shards: 2})
	if err := again.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	got, err := again.Take(t.Context(), deliver.Kinds, 10, time.Hour)
	if err != nil || len(got) != 5 {
		t.Fatalf("Take after the restart = %d jobs, %v; want the 5 leased by the previous instance", len(got), err)
	}
	if err := old.Ack(t.Context(), js[0]); !errors.Is(err, deliver.ErrLeaseLost) {
		t.Errorf("Ack by the previous instance = %v, want ErrLeaseLost", err)
	}
}

// TestDeadNodeLeases: when a node's heartbeat stops, another node returns
// its leases after a few heartbeats, not after the (hour-long) lease.
func TestDeadNodeLeases(t *testing.T) {
	need(t)
	p := prefix()
	hb := 20 * time.Millisecond
	dead := newQueue(t, redisq.Options{Prefix: p, Node: "dead", Heartbeat: hb})
	if err := dead.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	commitN(t, dead, "a", 3)
	if js, err := dead.Take(t.Context(), deliver.Kinds, 3, time.Hour); err != nil || len(js) != 3 {
		t.Fatalf("Take = %v, %v", js, err)
	}
	// Its heartbeat stops as a crash leaves it: Close unregisters, so the
	// last heartbeat is put back.
	dead.Close()
	if err := client(t).ZAdd(t.Context(), "{"+p+"}:nodes", redis.Z{Score: float64(time.Now().UnixMilli()), Member: dead.Instance()}).Err(); err != nil {
		t.Fatal(err)
	}
	live := newQueue(t, redisq.Options{Prefix: p, Node: "live", Heartbeat: hb})
	if err := live.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	var got []*deliver.Job
	for len(got) < 3 {
		js, err := live.Take(t.Context(), deliver.Kinds, 3, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, js...)
		if time.Now().After(deadline) {
			t.Fatalf("took %d of the dead node's 3 leased jobs", len(got))
		}
		time.Sleep(hb)
	}
}

// TestMailboxRole: one node per queue holds the mailbox role; a second
// node claiming it is refused, naming the holder; the same node restarted
// takes it over.
func TestMailboxRole(t *testing.T) {
	need(t)
	p := prefix()
	b := newQueue(t, redisq.Options{Prefix: p, Node: "b"})
	if err := b.Start(t.Context(), "mailbox"); err != nil {
		t.Fatal(err)
	}
	a := newQueue(t, redisq.Options{Prefix: p, Node: "a"})
	err := a.Start(t.Context(), "mailbox")
	if !errors.Is(err, redisq.ErrRoleHeld) || !strings.Contains(err.Error(), `"b"`) {
		t.Errorf("second mailbox node: Start = %v, want ErrRoleHeld naming b", err)
	}
	if h, err := a.RoleHolder(t.Context(), "mailbox"); err != nil || h != "b" {
		t.Errorf("RoleHolder = %q, %v; want b", h, err)
	}
	b2 := newQueue(t, redisq.Options{Prefix: p, Node: "b"})
	if err := b2.Start(t.Context(), "mailbox"); err != nil {
		t.Errorf("node b restarted: Start = %v, want the role back", err)
	}
}
