package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/mailhook/mailhook/admin"
	"github.com/mailhook/mailhook/deliver"
	"github.com/mailhook/mailhook/inbound"
	"github.com/mailhook/mailhook/ingest"
	"github.com/mailhook/mailhook/internal/safefile"
	"github.com/mailhook/mailhook/route"
)

// openAdmin opens the activity log and the metrics, which the SMTP
// listener and the workers feed whether or not the admin listener runs.
func (a *app) openAdmin() error {
	act, err := admin.OpenActivity(filepath.Join(a.cfg.DataDir, "activity"), admin.ActivityOptions{Retention: a.cfg.Retention, Logger: a.log})
	if err != nil {
		return fmt.Errorf("activity: %w", err)
	}
	a.activity = act
	a.activityW = admin.NewWriter(admin.WriterOptions{Logger: a.log})
	a.closers = append(a.closers, func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := a.activityW.Close(ctx); err != nil {
			a.log.Warn("activity log: records still pending at exit were dropped", "pending", a.activityW.Pending())
		}
		act.Close()
	})
	a.metrics = admin.NewMetrics(admin.MetricsOptions{Backend: a.cfg.Queue.Backend, Writer: a.activityW, Stats: func() (deliver.Stats, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		return a.queue.Stats(ctx)
	}})
	// The key that signs attachment URLs, kept in data_dir.
	key, err := safefile.LoadOrCreateSecret(filepath.Join(a.cfg.DataDir, "attachment.key"), 32, 32)
	if err != nil {
		return fmt.Errorf("attachment key: %w", err)
	}
	a.attachKey = key
	return nil
}

// attachmentLinker completes the parsed message's attachments over
// parse.inline_limit: a URL under the admin listener signed with the key
// kept in data_dir, valid as long as the raw message is kept.
func (a *app) attachmentLinker() *admin.AttachmentLinker {
	base, _ := admin.AttachmentBase(a.cfg)
	return &admin.AttachmentLinker{Key: admin.AttachmentKey(a.attachKey), Base: base, TTL: a.cfg.Retention}
}

// adminServer adds the admin listener when admin.listen is set.
func (a *app) adminServer() error {
	if _, warn := admin.AttachmentBase(a.cfg); warn != "" {
		a.log.Warn(warn)
	}
	if a.cfg.Admin.Listen == "" {
		return nil
	}
	srv := admin.NewServer(admin.ServerOptions{
		Token:          a.cfg.Admin.Token,
		Queue:          a.queue,
		Activity:       a.activity,
		Metrics:        a.metrics,
		Ready:          a.ready,
		AttachmentKey:  a.attachKey,
		AttachmentOnce: a.cfg.Admin.AttachmentOnce,
		Parse:          parseOptions(a.cfg),
		Logger:         a.log,
		EnablePprof:    a.cfg.Admin.Pprof,
		MintReply:      a.mintReply,
		RunningConfig:  func() map[string]string { return *a.running.Load() },
		Wake:           a.runner.Notify,
	})
	l, err := net.Listen("tcp", a.cfg.Admin.Listen)
	if err != nil {
		return fmt.Errorf("admin.listen: %w", err)
	}
	a.log.Info("listening", "service", "admin", "addr", l.Addr().String(), "api", a.cfg.Admin.Token != "")
	a.servers = append(a.servers, server{name: "admin", serve: func() error {
		err := srv.Serve(l)
		if errors.Is(err, http.ErrServerClosed) {
			return nil
		}
		return err
	}, shutdown: srv.Shutdown})
	return nil
}

// ready is /readyz: the queue answers, the activity store and the mailbox
// store are writable.
func (a *app) ready(ctx context.Context) error {
	if _, err := a.queue.Stats(ctx); err != nil {
		return fmt.Errorf("queue: %w", err)
	}
	if err := a.activity.Writable(ctx); err != nil {
		return fmt.Errorf("activity store: %w", err)
	}
	if a.store != nil {
		if _, err := os.Stat(a.store.Dir()); err != nil {
			return fmt.Errorf("mailbox store: %w", err)
		}
	}
	return nil
}

// beforeCommit runs at end of data, before the queue commit: the quota
// check, and a link to the raw message kept for the retention period
// (before the queue takes the file).
func (a *app) beforeCommit(ctx context.Context, m *inbound.Mail, d []route.Decision) error {
	if a.store != nil {
		if reply := a.store.QuotaReply(ctx, m, d); reply != nil {
			return ingest.Refuse(reply, ingest.ReasonMailboxFull)
		}
	}
	if a.activity == nil {
		return nil
	}
	if m.RawPath == "" {
		// Held in memory: RecordAccepted keeps m.Raw, but attachment URLs
		// may be fetched before it runs.
		if err := a.activity.KeepLinked(m); err != nil {
			a.log.Warn("activity: keeping the raw message", "msg_id", m.ID, "error", err)
		}
		return nil
	}
	if err := a.activity.KeepRaw(m.ID, m.RawPath); err != nil {
		a.log.Warn("activity: keeping the raw message", "msg_id", m.ID, "error", err)
	}
	return nil
}

// observer feeds the metrics and the activity log from the SMTP listener.
type observer struct{ a *app }

func (o observer) Connection(ip string) { o.a.metrics.SMTPConnection() }

func (o observer) Accepted(m *inbound.Mail, ds []route.Decision) {
	a := o.a
	var routes []string
	for _, d := range ds {
		routes = append(routes, d.Rules...)
		for _, r := range d.Rules {
			a.metrics.RouteMatch(r)
		}
	}
	a.metrics.MessageAccepted(routes)
	if m.Auth != nil {
		for k, v := range m.Auth.Summary() {
			if k != "dmarc_policy" {
				a.metrics.VerifyResult(k, v)
			}
		}
	}
	if m.Message != nil {
		a.metrics.ParseWarnings(len(m.Message.Warnings))
	}
}

// committed records a committed message with the jobs the committer made
// for it, off the SMTP reply's path (the activity writer). The webhook
// JSON each webhook job sends is recorded by its attempts (onAttempt), as
// sent: it is not encoded again here.
func (a *app) committed(m *inbound.Mail, ds []route.Decision, jobs []*deliver.Job) {
	a.activityW.Go(func() {
		if err := a.activity.RecordAccepted(m, ds, jobs); err != nil {
			a.log.Warn("activity: recording an accepted message", "msg_id", m.ID, "error", err)
		}
	})
}

func (o observer) Refused(ip, from string, rcpts []string, r ingest.Refusal, stage string) {
	o.a.metrics.MessageRefused(string(r.Reason))
	e := r.Reply
	ev := admin.Refused{At: time.Now(), RemoteIP: ip, MailFrom: from, Rcpts: slices.Clone(rcpts), Code: e.Code,
		Enhanced: fmt.Sprintf("%d.%d.%d", e.EnhancedCode[0], e.EnhancedCode[1], e.EnhancedCode[2]), Reason: e.Message, Stage: stage}
	o.a.activityW.Go(func() {
		if err := o.a.activity.RecordRefused(ev); err != nil {
			o.a.log.Warn("activity: recording a refusal", "error", err)
		}
	})
}

// onAttempt feeds the metrics and the activity log from the workers.
func (a *app) onAttempt(job *deliver.Job, mail *inbound.Mail, at deliver.Attempt, outcome deliver.Settlement) {
	a.metrics.Attempt(string(job.Kind), job.Target, at.Status, at.Latency, string(outcome))
	if outcome == deliver.SettleDelivered && mail != nil {
		a.metrics.Delivered(string(job.Kind), time.Since(mail.ReceivedAt))
	}
	j := *job
	j.History = nil
	a.activityW.Go(func() {
		if err := a.activity.RecordAttempt(&j, at, outcome); err != nil {
			a.log.Warn("activity: recording an attempt", "job_id", j.ID, "error", err)
		}
	})
}

// onRefusedAttempt counts a sync attempt of a message that was refused
// or deferred; the refusal itself is recorded by the observer.
func (a *app) onRefusedAttempt(job *deliver.Job, _ *inbound.Mail, at deliver.Attempt, outcome deliver.Settlement) {
	a.metrics.Attempt(string(job.Kind), job.Target, at.Status, at.Latency, string(outcome))
}

// background runs the activity log's purge and queue sampling until ctx
// ends.
func (a *app) background(ctx context.Context) {
	go func() {
		defer func() { recover() }()
		if err := a.activity.Purge(ctx); err != nil && !errors.Is(err, context.Canceled) {
			a.log.Warn("activity purge stopped", "error", err)
		}
	}()
	go func() {
		defer func() { recover() }()
		if err := a.activity.SampleQueueEvery(ctx, time.Minute, a.queue.Stats); err != nil && !errors.Is(err, context.Canceled) {
			a.log.Warn("queue sampling stopped", "error", err)
		}
	}()
}
