package main

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"golang.org/x/crypto/bcrypt"

	"github.com/mailhook/mailhook/dns/dnstest"
)

// cluster is a set of `mailhook serve` nodes on one Redis, each a config
// of its own with node.name and node.roles; carol's mailbox is served by
// the node with the mailbox role.
type cluster struct {
	t        *testing.T
	rds      *redisServer
	dns      *dnstest.Server
	rcv      *receiver
	hash     []byte
	imap     string
	pop      string
	cfgs     map[string]string // node name -> config path
	smtp     map[string]string // node name -> SMTP address
	procs    map[string]*proc
	redisCfg string // the queue line's redis part
}

func newCluster(t *testing.T, redisCfg string) *cluster {
	hash, _ := bcrypt.GenerateFromPassword([]byte("correct horse"), bcrypt.MinCost)
	return &cluster{t: t, dns: dnstest.Start(t, ""), rcv: newReceiver(t, testSecret), hash: hash,
		imap: freePort(t), pop: freePort(t), cfgs: map[string]string{}, smtp: map[string]string{},
		procs: map[string]*proc{}, redisCfg: redisCfg}
}

// config writes node name's config: roles, the shared Redis queue, carol
// (every node routes to her; only the mailbox node opens her store).
func (c *cluster) config(name string, roles ...string) string {
	dir := c.t.TempDir()
	addr := freePort(c.t)
	extra := fmt.Sprintf(`mailbox:
  imap_listen: %q
  pop3_listen: %q
  allow_plaintext_auth: true
  users:
    - {name: carol, password_hash: %q, addresses: ["carol@example.test"]}
node: {name: %s, roles: [%s]}
`, c.imap, c.pop, c.hash, name, strings.Join(roles, ", "))
	cfg := writeConfig(c.t, dir, addr, c.dns.Addr(), c.rcv.srv.URL+"/hook", extra)
	os.WriteFile(cfg, []byte(strings.Replace(mustRead(c.t, cfg), "queue: {", "queue: {backend: redis, "+c.redisCfg+", ", 1)), 0o600)
	c.cfgs[name], c.smtp[name] = cfg, addr
	return cfg
}

func (c *cluster) start(name string) *proc {
	p := startServe(c.t, c.cfgs[name], c.smtp[name])
	c.procs[name] = p
	return p
}

// load sends n messages, alternately to the nodes' SMTP listeners, every
// third to carol's mailbox and the rest to the webhook, from 6 sessions
// at once; during is called after the k-th acknowledgement. It returns the
// subjects acknowledged (250), by destination.
func (c *cluster) load(prefix string, n int, nodes []string, k int, during func()) (hook, box map[string]bool) {
	hook, box = map[string]bool{}, map[string]bool{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	work := make(chan int)
	acks := 0
	for range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				subject := fmt.Sprintf("%s-%03d", prefix, i)
				rcpt := "support@example.test"
				if i%3 == 0 {
					rcpt = "carol@example.test"
				}
				msg := fmt.Sprintf("From: load@load.test\r\nTo: %s\r\nSubject: %s\r\n\r\nbody %s\r\n", rcpt, subject, subject)
				err := sendMail(c.smtp[nodes[i%len(nodes)]], nil, "load@load.test", []string{rcpt}, []byte(msg))
				if err != nil {
					continue // refused or the node is down: not acknowledged
				}
				mu.Lock()
				if i%3 == 0 {
					box[subject] = true
				} else {
					hook[subject] = true
				}
				acks++
				fire := acks == k
				mu.Unlock()
				if fire && during != nil {
					during()
				}
			}
		}()
	}
	for i := range n {
		work <- i
	}
	close(work)
	wg.Wait()
	return hook, box
}

// waitDelivered waits until every subject in hook reached the webhook and
// every subject in box is in carol's INBOX, read over IMAP.
func (c *cluster) waitDelivered(hook, box map[string]bool) {
	c.t.Helper()
	waitFor(c.t, 60*time.Second, func() bool {
		c.rcv.mu.Lock()
		seen := map[string]bool{}
		for _, ev := range c.rcv.events {
			seen[ev["message"].(map[string]any)["subject"].(string)] = true
		}
		c.rcv.mu.Unlock()
		for s := range hook {
			if !seen[s] {
				return false
			}
		}
		if len(box) == 0 {
			return true
		}
		in, err := imapSubjects(c.imap)
		if err != nil {
			return false
		}
		for s := range box {
			if !in[s] {
				return false
			}
		}
		return true
	})
}

func imapSubjects(addr string) (map[string]bool, error) {
	c, err := imapclient.DialInsecure(addr, nil)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	if err := c.Login("carol", "correct horse").Wait(); err != nil {
		return nil, err
	}
	sel, err := c.Select("INBOX", nil).Wait()
	if err != nil {
		return nil, err
	}
	out := map[string]bool{}
	if sel.NumMessages == 0 {
		return out, nil
	}
	all, err := c.Fetch(imap.SeqSet{imap.SeqRange{Start: 1, Stop: sel.NumMessages}}, &imap.FetchOptions{Envelope: true}).Collect()
	if err != nil {
		return nil, err
	}
	for _, m := range all {
		out[m.Envelope.Subject] = true
	}
	return out, nil
}

// dialPOP3 logs in to a POP3 server as carol and returns a function that
// sends a command ("" reads only) and returns the reply line, and the
// reader for multi-line replies.
func dialPOP3(t *testing.T, addr string) (cmd func(string) string, r *bufio.Reader) {
	t.Helper()
	pc, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	pc.SetDeadline(time.Now().Add(10 * time.Second))
	r = bufio.NewReader(pc)
	cmd = func(s string) string {
		if s != "" {
			fmt.Fprintf(pc, "%s\r\n", s)
		}
		line, _ := r.ReadString('\n')
		return strings.TrimSpace(line)
	}
	cmd("")
	cmd("USER carol")
	if got := cmd("PASS correct horse"); !strings.HasPrefix(got, "+OK") {
		t.Fatalf("POP3 PASS: %q", got)
	}
	return cmd, r
}

// popStat returns what POP3 STAT reports for carol.
func popStat(t *testing.T, addr string) string {
	t.Helper()
	cmd, _ := dialPOP3(t, addr)
	defer cmd("QUIT")
	return cmd("STAT")
}

// TestNodeRoles: node a [mx, deliver] and node b [mx, deliver, mailbox]
// on one Redis. Mail accepted by a for carol is read over IMAP and POP3 on
// b; webhooks are delivered by both; a third node claiming the mailbox
// role is refused by check-config and at startup.
func TestNodeRoles(t *testing.T) {
	c := newCluster(t, "")
	c.rds = startRedis(t)
	c.redisCfg = fmt.Sprintf("redis: {addr: %q}", c.rds.addr)
	c.config("a", "mx", "deliver")
	c.config("b", "mx", "deliver", "mailbox")
	b := c.start("b")
	// Webhooks delivered by b while it is alone, and below by a alone:
	// each deliver node takes webhook jobs.
	first, firstBox := c.load("b-alone", 3, []string{"b"}, 0, nil)
	c.waitDelivered(first, firstBox)
	a := c.start("a")

	hook, box := c.load("roles", 30, []string{"a", "b"}, 0, nil)
	if len(hook) != 20 || len(box) != 10 {
		t.Fatalf("acknowledged %d webhook and %d mailbox messages, want 20 and 10", len(hook), len(box))
	}
	c.waitDelivered(hook, box)
	if got, want := popStat(t, c.pop), fmt.Sprintf("+OK %d ", len(box)+len(firstBox)); !strings.HasPrefix(got, want) {
		t.Errorf("POP3 STAT on b = %q, want %q", got, want)
	}
	if strings.Contains(a.out.String(), "imap") && strings.Contains(a.out.String(), "listening") {
		t.Errorf("node a (no mailbox role) serves IMAP:\n%s", a.out.String())
	}
	if _, err := os.Stat(strings.TrimSuffix(c.cfgs["a"], "config.yaml") + "data/mailboxes"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("node a (no mailbox role) made a mailbox store: %v", err)
	}
	if n := strings.Count(a.out.String(), "kind=mailbox"); n != 0 {
		t.Errorf("node a (no mailbox role) took %d mailbox jobs", n)
	}

	// A second mailbox node: check-config says who holds the role, and
	// serve refuses to start.
	cfg := c.config("c", "mx", "deliver", "mailbox")
	out, err := exec.Command(binary(t), "check-config", "--config", cfg).CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || !strings.Contains(string(out), `mailbox is held by node "b"`) {
		t.Errorf("check-config of a second mailbox node: %v\n%s", err, out)
	}
	out, err = exec.Command(binary(t), "serve", "--config", cfg).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "mailbox is held by node") {
		t.Errorf("serve of a second mailbox node: %v\n%s", err, out)
	}

	b.stop()
	last, _ := c.load("a-alone", 3, []string{"a"}, 0, nil)
	delete(last, "a-alone-000") // to carol: waits for b
	c.waitDelivered(last, nil)
	perA, perB := strings.Count(a.out.String(), "kind=webhook"), strings.Count(b.out.String(), "kind=webhook")
	t.Logf("webhook deliveries: node a %d, node b %d", perA, perB)
	if perA < 2 || perB < 2 {
		t.Errorf("webhook deliveries per node a %d, b %d: want both to deliver", perA, perB)
	}
	a.stop()
}

// TestNodeKill9: kill -9 of either node in the middle of a load loses
// nothing acknowledged, and its restart returns the jobs it had leased at
// once (queue.lease is left at its default of minutes: the wait below
// would run out before those leases expired).
func TestNodeKill9(t *testing.T) {
	for _, victim := range []string{"a", "b"} {
		t.Run(victim, func(t *testing.T) {
			c := newCluster(t, "")
			c.rds = startRedis(t)
			c.redisCfg = fmt.Sprintf("redis: {addr: %q}", c.rds.addr)
			c.config("a", "mx", "deliver")
			c.config("b", "mx", "deliver", "mailbox")
			c.start("b")
			c.start("a")
			hook, box := c.load("kill-"+victim, 90, []string{"a", "b"}, 20, func() { c.procs[victim].kill() })
			t.Logf("acknowledged %d webhook and %d mailbox messages around the kill of node %s", len(hook), len(box), victim)
			c.start(victim)
			c.waitDelivered(hook, box)
		})
	}
}
