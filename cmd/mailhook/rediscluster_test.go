package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/mailhook/mailhook/internal/testenv"
)

// redisNode is one redis-server of a test's Cluster or Sentinel setup.
type redisNode struct {
	addr string
	dir  string
	args []string
	cmd  *exec.Cmd
}

func (n *redisNode) start(t testing.TB, bin string) {
	t.Helper()
	n.cmd = exec.Command(bin, n.args...)
	n.cmd.Dir = n.dir
	if err := n.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	c := redis.NewClient(&redis.Options{Addr: n.addr})
	defer c.Close()
	waitFor(t, 10*time.Second, func() bool { return c.Ping(context.Background()).Err() == nil })
}

// kill is kill -9.
func (n *redisNode) kill() {
	if n.cmd != nil && n.cmd.Process != nil {
		n.cmd.Process.Kill()
		n.cmd.Wait()
		n.cmd = nil
	}
}

// redisCluster is a real Redis Cluster: masters with one replica each,
// AOF fsync'd on every write, built with redis-cli --cluster create.
type redisCluster struct {
	bin   string
	nodes []*redisNode
}

func startRedisCluster(t *testing.T, masters int) *redisCluster {
	t.Helper()
	bin := testenv.Tool(t, "apt-get install redis-server", "redis-server")
	cli := testenv.Tool(t, "apt-get install redis-tools", "redis-cli")
	rc := &redisCluster{bin: bin}
	var addrs []string
	for range masters * 2 {
		addr := freePort(t)
		_, port, _ := net.SplitHostPort(addr)
		dir := t.TempDir()
		n := &redisNode{addr: addr, dir: dir, args: []string{"--port", port, "--bind", "127.0.0.1",
			"--dir", dir, "--cluster-enabled", "yes", "--cluster-config-file", filepath.Join(dir, "nodes.conf"),
			"--cluster-node-timeout", "1500", "--appendonly", "yes", "--appendfsync", "always", "--save", ""}}
		n.start(t, bin)
		t.Cleanup(n.kill)
		rc.nodes = append(rc.nodes, n)
		addrs = append(addrs, addr)
	}
	args := append([]string{"--cluster", "create"}, addrs...)
	args = append(args, "--cluster-replicas", "1", "--cluster-yes")
	if out, err := exec.Command(cli, args...).CombinedOutput(); err != nil {
		t.Fatalf("redis-cli --cluster create: %v\n%s", err, out)
	}
	rc.waitOK(t)
	return rc
}

// waitOK waits until every running node says cluster_state:ok and every
// slot is served.
func (rc *redisCluster) waitOK(t testing.TB) {
	t.Helper()
	waitFor(t, 60*time.Second, func() bool {
		for _, n := range rc.nodes {
			if n.cmd == nil {
				continue
			}
			c := redis.NewClient(&redis.Options{Addr: n.addr})
			info, err := c.ClusterInfo(context.Background()).Result()
			c.Close()
			if err != nil || !strings.Contains(info, "cluster_state:ok") || !strings.Contains(info, "cluster_slots_ok:16384") {
				return false
			}
		}
		return true
	})
}

// masters returns the running masters' nodes.
func (rc *redisCluster) masters(t testing.TB) []*redisNode {
	t.Helper()
	var out []*redisNode
	for _, n := range rc.nodes {
		if n.cmd == nil {
			continue
		}
		c := redis.NewClient(&redis.Options{Addr: n.addr})
		info, err := c.Info(context.Background(), "replication").Result()
		c.Close()
		if err == nil && strings.Contains(info, "role:master") {
			out = append(out, n)
		}
	}
	return out
}

func (rc *redisCluster) addrs() string {
	var q []string
	for _, n := range rc.nodes {
		q = append(q, fmt.Sprintf("%q", n.addr))
	}
	return strings.Join(q, ", ")
}

// dbsize returns each running master's key count.
func dbsizes(t testing.TB, nodes []*redisNode) []int64 {
	var out []int64
	for _, n := range nodes {
		c := redis.NewClient(&redis.Options{Addr: n.addr})
		k, err := c.DBSize(context.Background()).Result()
		c.Close()
		if err != nil {
			t.Fatalf("DBSIZE on %s: %v", n.addr, err)
		}
		out = append(out, k)
	}
	return out
}

// loadThrough sends messages to addr from 6 sessions until stop is
// closed, then n more; it returns the subjects acknowledged (250) and the
// count of 4xx replies. Any other failure fails the test.
func loadThrough(t *testing.T, addr, prefix string, stop <-chan struct{}, after int) (acked map[string]bool, deferred int) {
	acked = map[string]bool{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	next, extra := 0, -1
	for range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				mu.Lock()
				select {
				case <-stop:
					if extra < 0 {
						extra = next + after
					}
				default:
				}
				if extra >= 0 && next >= extra {
					mu.Unlock()
					return
				}
				subject := fmt.Sprintf("%s-%04d", prefix, next)
				next++
				mu.Unlock()
				err := sendOne(addr, subject)
				mu.Lock()
				switch {
				case err == nil:
					acked[subject] = true
				case smtpCode(err)/100 == 4:
					deferred++
				default:
					t.Errorf("send %s: %v (want 250 or 4xx)", subject, err)
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return acked, deferred
}

// waitWebhooks waits until every subject in acked reached the receiver.
func waitWebhooks(t *testing.T, rcv *receiver, acked map[string]bool) {
	t.Helper()
	waitFor(t, 90*time.Second, func() bool {
		rcv.mu.Lock()
		defer rcv.mu.Unlock()
		seen := map[string]bool{}
		for _, ev := range rcv.events {
			seen[ev["message"].(map[string]any)["subject"].(string)] = true
		}
		for s := range acked {
			if !seen[s] {
				return false
			}
		}
		return true
	})
}

// TestRedisClusterFailover: a 3-master Redis Cluster with a replica each,
// queue.redis.shards 6: the queue's keys land on every master; a master
// killed with -9 mid-load makes commits answer 4xx until its replica takes
// over (WAIT 1 makes a 250 mean "on the replica too"), and nothing
// acknowledged is lost.
func TestRedisClusterFailover(t *testing.T) {
	rc := startRedisCluster(t, 3)
	// A settle (ack, retry) lost while a master was down leaves its job
	// leased: it returns after queue.lease, kept short here.
	c := newCluster(t, fmt.Sprintf("lease: 5s, redis: {addrs: [%s], shards: 6, wait_replicas: 1}", rc.addrs()))
	cfg := c.config("a", "mx", "deliver")
	// Retries every second for a minute: the held-back jobs below must not
	// be dead-lettered while the keys are counted.
	os.WriteFile(cfg, []byte(strings.Replace(mustRead(t, cfg), "schedule: [200ms, 500ms, 1s]",
		"schedule: [200ms, 500ms"+strings.Repeat(", 1s", 60)+"], max_age: 1h", 1)), 0o600)
	p := c.start("a")

	// Keys on every master: hold deliveries back (the receiver answers
	// 503) so the jobs stay queued while the keys are counted.
	hold := make(chan struct{})
	c.rcv.status = func() int {
		select {
		case <-hold:
			return 200
		default:
			return 503
		}
	}
	before, box := c.load("spread", 60, []string{"a"}, 0, nil) // box: mailbox jobs, with no mailbox node here
	sizes := dbsizes(t, rc.masters(t))
	t.Logf("keys per master with 60 messages queued: %v", sizes)
	if len(sizes) != 3 {
		t.Fatalf("%d masters, want 3", len(sizes))
	}
	var total int64
	for _, k := range sizes {
		total += k
	}
	for i, k := range sizes {
		if k == 0 || 2*k > total {
			t.Errorf("master %d holds %d of %d keys: the shards did not spread", i, k, total)
		}
	}
	out := run1(t, "queue", "stats", "--config", c.cfgs["a"])
	var ready, sched, leased, dead int
	fmt.Sscanf(out, "ready %d\nscheduled %d\nleased %d\ndead %d", &ready, &sched, &leased, &dead)
	// A commit whose WAIT timed out answered 451 and is queued all the
	// same (the sender's retry is deduplicated): between the acknowledged
	// and the sent.
	if n := ready + sched + leased; n < len(before)+len(box) || n > 60 {
		t.Errorf("queue stats over 6 shards count %d jobs, want %d to 60:\n%s", n, len(before)+len(box), out)
	}
	close(hold)
	waitWebhooks(t, c.rcv, before)

	// Kill a master mid-load.
	stop := make(chan struct{})
	victim := rc.masters(t)[0]
	go func() {
		time.Sleep(500 * time.Millisecond)
		victim.kill()
		t.Logf("killed master %s", victim.addr)
		// The failover is done when three masters serve every slot.
		defer close(stop)
		deadline := time.Now().Add(60 * time.Second)
		for len(rc.masters(t)) != 3 && time.Now().Before(deadline) {
			time.Sleep(50 * time.Millisecond)
		}
	}()
	acked, deferred := loadThrough(t, c.smtp["a"], "failover", stop, 60)
	t.Logf("during the failover: %d acknowledged, %d answered 4xx", len(acked), deferred)
	rc.waitOK(t)
	victim.start(t, rc.bin) // back, as a replica of its successor
	if deferred == 0 {
		t.Error("no commit answered 4xx while a master was down")
	}
	waitWebhooks(t, c.rcv, acked)
	p.stop()
}
