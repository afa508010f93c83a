package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/mailhook/mailhook/internal/testenv"
)

// TestSentinelFailover: a master, a replica and three sentinels (quorum
// 2); mailhook reaches the master through the sentinels and commits with
// WAIT 1. The master is killed with -9 mid-load: commits answer 4xx until
// the sentinels promote the replica (and, with WAIT 1, until the old
// master is back as its replica), and nothing acknowledged is lost.
func TestSentinelFailover(t *testing.T) {
	bin := testenv.Tool(t, "apt-get install redis-server", "redis-server")
	sbin := testenv.Tool(t, "apt-get install redis-sentinel", "redis-sentinel")
	node := func(extra ...string) *redisNode {
		addr := freePort(t)
		_, port, _ := net.SplitHostPort(addr)
		dir := t.TempDir()
		n := &redisNode{addr: addr, dir: dir, args: append([]string{"--port", port, "--bind", "127.0.0.1", "--dir", dir,
			"--appendonly", "yes", "--appendfsync", "always", "--save", ""}, extra...)}
		n.start(t, bin)
		t.Cleanup(n.kill)
		return n
	}
	master := node()
	_, mport, _ := net.SplitHostPort(master.addr)
	replica := node("--replicaof", "127.0.0.1", mport)
	var sentinels []*redisNode
	var saddrs []string
	for range 3 {
		addr := freePort(t)
		_, port, _ := net.SplitHostPort(addr)
		dir := t.TempDir()
		conf := filepath.Join(dir, "sentinel.conf")
		os.WriteFile(conf, []byte(fmt.Sprintf(`port %s
bind 127.0.0.1
dir %s
sentinel monitor mh 127.0.0.1 %s 2
sentinel down-after-milliseconds mh 1000
sentinel failover-timeout mh 5000
sentinel parallel-syncs mh 1
`, port, dir, mport)), 0o600)
		s := &redisNode{addr: addr, dir: dir, args: []string{conf}}
		s.start(t, sbin)
		t.Cleanup(s.kill)
		sentinels = append(sentinels, s)
		saddrs = append(saddrs, fmt.Sprintf("%q", addr))
	}
	// Every sentinel knows the replica before the master goes.
	waitFor(t, 30*time.Second, func() bool {
		for _, s := range sentinels {
			c := redis.NewSentinelClient(&redis.Options{Addr: s.addr})
			rs, err := c.Replicas(context.Background(), "mh").Result()
			c.Close()
			if err != nil || len(rs) == 0 {
				return false
			}
		}
		return true
	})
	masterAddr := func() string {
		c := redis.NewSentinelClient(&redis.Options{Addr: sentinels[0].addr})
		defer c.Close()
		a, err := c.GetMasterAddrByName(context.Background(), "mh").Result()
		if err != nil || len(a) != 2 {
			return ""
		}
		return net.JoinHostPort(a[0], a[1])
	}

	// A settle lost while the master was down returns after queue.lease.
	c := newCluster(t, fmt.Sprintf("lease: 5s, redis: {addrs: [%s], master_name: mh, wait_replicas: 1}", strings.Join(saddrs, ", ")))
	c.config("a", "mx", "deliver", "mailbox")
	p := c.start("a")

	stop := make(chan struct{})
	go func() {
		defer close(stop)
		time.Sleep(500 * time.Millisecond)
		master.kill()
		deadline := time.Now().Add(60 * time.Second)
		for masterAddr() != replica.addr && time.Now().Before(deadline) {
			time.Sleep(50 * time.Millisecond)
		}
	}()
	acked, deferred := loadThrough(t, c.smtp["a"], "sentinel", stop, 30)
	if got := masterAddr(); got != replica.addr {
		t.Fatalf("sentinels name master %s, want the promoted replica %s", got, replica.addr)
	}
	t.Logf("during the failover: %d acknowledged, %d answered 4xx", len(acked), deferred)
	if deferred == 0 {
		t.Error("no commit answered 4xx while the master was down")
	}
	// The old master comes back; the sentinels make it the new master's
	// replica, and commits (WAIT 1) are acknowledged again.
	master.start(t, bin)
	stop2 := make(chan struct{})
	close(stop2)
	waitFor(t, 60*time.Second, func() bool {
		got, _ := loadThrough(t, c.smtp["a"], fmt.Sprintf("after-%d", time.Now().UnixNano()), stop2, 1)
		for s := range got {
			acked[s] = true
		}
		return len(got) > 0
	})
	waitWebhooks(t, c.rcv, acked)
	p.stop()
}
