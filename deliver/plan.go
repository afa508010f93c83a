package deliver

import (
	"context"
	"crypto/sha256"
	"encoding/base32"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/mailhook/mailhook/inbound"
	"github.com/mailhook/mailhook/route"
)

// Plan turns the routing decisions for one message into its jobs:
//   - one webhook job per (rule, endpoint), whatever the number of
//     recipients routed there (Rcpts lists them);
//   - one mailbox job per (user, folder);
//   - one relay job per destination domain of the forward addresses, with
//     the addresses for that domain deduplicated across recipients and rules.
//
// Reject and drop actions make no job. Job IDs are derived from the
// message's CommitKey (its stable id: envelope + content hash), kind, rule
// and target, so the same message planned again (the sending MTA retried
// after a lost 250) gets the same IDs, and the queue's Commit finds it
// already committed. Past the queue's dedup window a retry is delivered
// again with the same IDs: a webhook job's ID is its webhook-id, and
// receivers can drop the duplicate.
func Plan(mail *inbound.Mail, decisions []route.Decision, now time.Time) []*Job {
	var jobs []*Job
	byKey := map[string]*Job{}
	ck := CommitKey(mail)
	add := func(key string, mk func() *Job, rcpts ...string) {
		j := byKey[key]
		if j == nil {
			j = mk()
			j.ID = JobID(ck, key)
			j.MsgID = mail.ID
			j.CreatedAt = now
			j.NextAt = now
			byKey[key] = j
			jobs = append(jobs, j)
		}
		for _, r := range rcpts {
			if !slices.Contains(j.Rcpts, r) {
				j.Rcpts = append(j.Rcpts, r)
			}
		}
	}
	for _, d := range decisions {
		for i, a := range d.Actions {
			rule := ruleOf(&d, i)
			switch a.Kind {
			case route.ActWebhook:
				add("webhook\x00"+rule+"\x00"+a.Webhook, func() *Job {
					return &Job{Kind: KindWebhook, Target: a.Webhook, Route: rule, Action: a}
				}, d.Rcpt)
			case route.ActMailbox:
				add("mailbox\x00"+a.Mailbox+"\x00"+a.Folder, func() *Job {
					return &Job{Kind: KindMailbox, Target: a.Mailbox, Route: rule, Action: a}
				}, d.Rcpt)
			case route.ActForward:
				for _, addr := range a.Forward {
					dom := strings.ToLower(domainOf(addr))
					add("relay\x00"+dom, func() *Job {
						act := a
						act.Forward = nil
						return &Job{Kind: KindRelay, Target: dom, Route: rule, Action: act}
					}, addr)
				}
			}
		}
	}
	for _, j := range jobs {
		if j.Kind == KindRelay {
			// The relay action carries exactly the addresses of its domain.
			j.Action.Forward = slices.Clone(j.Rcpts)
		}
	}
	return jobs
}

// ruleOf names the rule that produced d.Actions[i]: the action's Rule,
// which Decide sets; for decisions made without it, with one rule or one
// action per rule the link is exact, otherwise the first rule is named.
func ruleOf(d *route.Decision, i int) string {
	switch {
	case d.Actions[i].Rule != "":
		return d.Actions[i].Rule
	case len(d.Rules) == 0:
		return ""
	case len(d.Rules) == len(d.Actions):
		return d.Rules[i]
	default:
		return d.Rules[0]
	}
}

func domainOf(addr string) string {
	if i := strings.LastIndexByte(addr, '@'); i >= 0 {
		return addr[i+1:]
	}
	return ""
}

var idEncoding = base32.NewEncoding("0123456789abcdefghijklmnopqrstuv").WithPadding(base32.NoPadding)

// JobID derives a stable job ID from a message's CommitKey and a key naming
// the job within the message: "msg_" and 26 base32 characters (128 bits of SHA-256).
func JobID(commitKey, key string) string {
	h := sha256.Sum256([]byte(commitKey + "\x00" + key))
	return "msg_" + idEncoding.EncodeToString(h[:16])
}

// Committer is the commit step of the SMTP listener: it plans a message's
// jobs and commits them in one transaction before the 250. It implements
// ingest's `Commit(ctx context.Context, m *inbound.Mail, d []route.Decision)
// error`.
type Committer struct {
	Queue Queue
	// Notify, when set, is called after each successful commit (give it
	// Runner.Notify so new jobs are taken at once).
	Notify func()
	// Committed, when set, is told of each message committed and the jobs
	// made for it, those Sync delivered included (the activity log records
	// them); it must not block.
	Committed func(m *inbound.Mail, d []route.Decision, jobs []*Job)
	// Now returns the current time; nil means time.Now.
	Now func() time.Time
	// Sync, when set, is given the planned jobs before the commit: it
	// delivers those that must be delivered while the sender waits
	// (synchronous webhooks, webhook.SyncStep.Run) and returns the jobs
	// left to commit. Its error refuses the message: nothing is committed.
	Sync func(ctx context.Context, m *inbound.Mail, jobs []*Job) ([]*Job, error)
	// Cache, when set, keeps each committed mail for this node's Runner
	// (give both the same MailCache).
	Cache *MailCache
}

// Commit plans and commits m. A message whose every action is a drop is
// accepted and discarded: its raw file is removed and Commit returns nil. An
// error means nothing was queued: Sync's refusal or deferral is the
// sender's reply (see ingest.Committer), any other error a 451 4.3.0.
func (c *Committer) Commit(ctx context.Context, m *inbound.Mail, d []route.Decision) error {
	now := time.Now
	if c.Now != nil {
		now = c.Now
	}
	jobs := Plan(m, d, now())
	queued := jobs
	if c.Sync != nil && len(jobs) > 0 {
		var err error
		if queued, err = c.Sync(ctx, m, jobs); err != nil {
			if m.RawPath != "" {
				os.Remove(m.RawPath)
			}
			return err
		}
	}
	if len(queued) == 0 {
		if m.RawPath != "" {
			os.Remove(m.RawPath)
		}
		if len(jobs) > 0 && c.Committed != nil {
			c.Committed(m, d, jobs) // every job was delivered synchronously
		}
		return nil
	}
	// Kept before the commit: a worker may take and settle a job the
	// moment it is committed.
	c.Cache.put(m, len(queued))
	if err := c.Queue.Commit(ctx, m, queued); err != nil {
		c.Cache.forget(m.ID)
		return err
	}
	if c.Notify != nil {
		c.Notify()
	}
	if c.Committed != nil {
		c.Committed(m, d, jobs)
	}
	return nil
}
