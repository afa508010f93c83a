package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/mailhook/mailhook/admin"
	"github.com/mailhook/mailhook/config"
	"github.com/mailhook/mailhook/deliver"
	"github.com/mailhook/mailhook/deliver/pebbleq"
	"github.com/mailhook/mailhook/internal/clip"
)

func init() {
	register(command{name: "queue stats", summary: "count jobs by state", run: queueCmd("stats")})
	register(command{name: "queue list", summary: "list jobs (--kind, --state, --limit)", run: queueCmd("list")})
	register(command{name: "queue dead", summary: "list dead letters with their last attempt", run: queueCmd("dead")})
	register(command{name: "queue show", summary: "show a message and its jobs by any id: msg_id, JSON id, webhook-id or job id (--json)", run: queueCmd("show")})
	register(command{name: "queue retry", summary: "attempt waiting jobs now (ID: a job or every job of a message; or --all)", run: queueCmd("retry")})
	register(command{name: "queue replay", summary: "replay a dead letter (ID, or --all --since T)", run: queueCmd("replay")})
	register(command{name: "queue drop", summary: "delete a job", run: queueCmd("drop")})
}

// cliQueue is what the `queue` verbs use: the operator's verbs, and two
// that a running server answers in one request each (finding a message by
// any of its ids needs the activity store, which that server holds).
type cliQueue interface {
	deliver.Operator
	// findMessage finds the message any of whose ids is id, as the admin
	// API's GET /api/messages/{id} does.
	findMessage(ctx context.Context, id string) (*admin.MessageDetail, error)
	// retryAll brings every scheduled job forward and returns how many.
	retryAll(ctx context.Context) (int, error)
}

// openQueueForCLI opens the configured queue directly, or, while `mailhook
// serve` holds the embedded store, reaches it through the server's admin
// API. The function it returns closes what it opened.
func openQueueForCLI(cfg *config.Config) (cliQueue, func(), error) {
	log := slog.New(slog.DiscardHandler)
	switch cfg.Queue.Backend {
	case "redis":
		q, closeClient, err := openRedisQueue(cfg, log)
		if err != nil {
			return nil, nil, err
		}
		return directQueue{q, cfg}, func() { q.Close(); closeClient() }, nil
	default:
		q, err := pebbleq.Open(cfg.DataDir, pebbleq.Options{Logger: log})
		if err == nil {
			return directQueue{q, cfg}, func() { q.Close() }, nil
		}
		if !errors.Is(err, pebbleq.ErrLocked) {
			return nil, nil, err
		}
		// A running server holds the store: ask it, through its API.
		aq, aerr := newAdminQueue(cfg)
		if aerr != nil {
			return nil, nil, fmt.Errorf("%w; %v", err, aerr)
		}
		return aq, func() {}, nil
	}
}

func queueCmd(verb string) func([]string, io.Reader, io.Writer, io.Writer) int {
	return func(args []string, _ io.Reader, stdout, stderr io.Writer) int {
		fs, path := newFlags("queue "+verb, stderr)
		all := fs.Bool("all", false, "replay: every dead letter since --since; retry: every scheduled job")
		since := fs.String("since", "", "replay --all: RFC 3339 time or a duration ago (like 2h)")
		kind := fs.String("kind", "", "list: only this kind (webhook, relay, mailbox)")
		state := fs.String("state", "", "list: only this state (ready, scheduled, leased, dead)")
		limit := fs.Int("limit", 100, "list, dead: at most this many")
		asJSON := fs.Bool("json", false, "print JSON")
		pos, err := parseFlags(fs, args)
		if err != nil {
			return exitErr(stderr, err)
		}
		cfg, err := loadConfig(*path, stderr)
		if err != nil {
			return 1
		}
		q, closeQ, err := openQueueForCLI(cfg)
		if err != nil {
			return exitErr(stderr, err)
		}
		defer closeQ()
		ctx := context.Background()
		out := func(v any) int {
			enc := json.NewEncoder(stdout)
			enc.SetIndent("", "  ")
			if err := enc.Encode(v); err != nil {
				return exitErr(stderr, err)
			}
			return 0
		}
		needID := func() (string, bool) {
			if len(pos) != 1 {
				fmt.Fprintf(stderr, "usage: mailhook queue %s ID\n", verb)
				return "", false
			}
			return pos[0], true
		}
		switch verb {
		case "stats":
			st, err := q.Stats(ctx)
			if err != nil {
				return exitErr(stderr, err)
			}
			if *asJSON {
				return out(st)
			}
			fmt.Fprintf(stdout, "ready %d\nscheduled %d\nleased %d\ndead %d\noldest %s\n", st.Ready, st.Scheduled, st.Leased, st.Dead, st.OldestAge.Round(time.Second))
		case "list", "dead":
			opts := deliver.ListOptions{Kind: deliver.Kind(*kind), State: deliver.State(*state), Limit: *limit}
			var jobs []*deliver.Job
			if verb == "dead" {
				jobs, err = q.ListDead(ctx, opts)
			} else {
				jobs, err = q.List(ctx, opts)
			}
			if err != nil {
				return exitErr(stderr, err)
			}
			if *asJSON {
				return out(jobs)
			}
			tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "JOB\tKIND\tTARGET\tROUTE\tATTEMPTS\tSTATE\tNEXT/DEAD\tLAST ERROR")
			now := time.Now()
			for _, j := range jobs {
				when := j.NextAt
				if !j.DeadAt.IsZero() {
					when = j.DeadAt
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\t%s\t%s\n", j.ID, j.Kind, j.Target, j.Route, j.Attempts,
					j.StateAt(now), when.Local().Format(time.DateTime), oneLine(j.LastError, 60))
			}
			tw.Flush()
		case "show":
			id, ok := needID()
			if !ok {
				return 2
			}
			d, err := q.findMessage(ctx, id)
			if err != nil {
				return exitErr(stderr, err)
			}
			if *asJSON {
				return out(d)
			}
			printMessage(stdout, d, id, time.Now())
		case "retry":
			if *all {
				n, err := q.retryAll(ctx)
				if err != nil {
					return exitErr(stderr, err)
				}
				fmt.Fprintf(stdout, "%d scheduled job(s): next attempt now\n", n)
				return 0
			}
			id, ok := needID()
			if !ok {
				return 2
			}
			ids, err := retryNow(ctx, q, id)
			if err != nil {
				return exitErr(stderr, err)
			}
			for _, j := range ids {
				fmt.Fprintf(stdout, "%s: next attempt now\n", j)
			}
		case "replay":
			if *all {
				t, err := parseSince(*since)
				if err != nil {
					return exitErr(stderr, err)
				}
				n, err := q.ReplayAll(ctx, t)
				if err != nil {
					return exitErr(stderr, err)
				}
				fmt.Fprintf(stdout, "replayed %d dead letter(s) since %s\n", n, t.Format(time.RFC3339))
				return 0
			}
			id, ok := needID()
			if !ok {
				return 2
			}
			if err := q.Replay(ctx, id); err != nil {
				return exitErr(stderr, err)
			}
			fmt.Fprintf(stdout, "replayed %s\n", id)
		case "drop":
			id, ok := needID()
			if !ok {
				return 2
			}
			if err := q.Drop(ctx, id); err != nil {
				return exitErr(stderr, err)
			}
			fmt.Fprintf(stdout, "dropped %s\n", id)
		}
		return 0
	}
}

// parseSince takes an RFC 3339 time or a duration ago; empty is the epoch.
func parseSince(s string) (time.Time, error) {
	if s == "" {
		return time.Unix(0, 0), nil
	}
	if d, err := time.ParseDuration(s); err == nil {
		return time.Now().Add(-d), nil
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("--since: %q is neither an RFC 3339 time nor a duration", s)
	}
	return t, nil
}

// oneLine fits s on one line of about n columns.
func oneLine(s string, n int) string {
	s = strings.ReplaceAll(s, "\n", " ")
	if len(s) <= n {
		return s
	}
	return clip.UTF8(s, n-1, "…")
}
