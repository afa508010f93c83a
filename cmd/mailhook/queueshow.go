package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"time"

	"github.com/mailhook/mailhook/admin"
	"github.com/mailhook/mailhook/config"
	"github.com/mailhook/mailhook/deliver"
)

// directQueue is the queue backend the CLI opened itself (no server
// holds it).
type directQueue struct {
	deliver.Backend
	cfg *config.Config
}

// findMessage looks id up in the activity store and the queue directly.
// The Redis backend needs no lock, but a running server holds the activity
// store: then the server is asked, through its API.
func (q directQueue) findMessage(ctx context.Context, id string) (*admin.MessageDetail, error) {
	act, err := admin.OpenActivity(filepath.Join(q.cfg.DataDir, "activity"), admin.ActivityOptions{Retention: q.cfg.Retention})
	if err != nil {
		if aq, aerr := newAdminQueue(q.cfg); aerr == nil {
			if d, err := aq.findMessage(ctx, id); err == nil {
				return d, nil
			}
		}
		act = nil
	} else {
		defer act.Close()
	}
	d, err := admin.FindMessage(ctx, q.Backend, act, id, time.Now())
	if errors.Is(err, admin.ErrNotFound) {
		return nil, fmt.Errorf("%s: no message, stable id or job has this id (delivered messages stay inspectable for retention, %s)", id, q.cfg.Retention)
	}
	return d, err
}

func (q directQueue) retryAll(ctx context.Context) (int, error) {
	return admin.RetryAllScheduled(ctx, q.Backend)
}

func (q *adminQueue) findMessage(ctx context.Context, id string) (*admin.MessageDetail, error) {
	var d admin.MessageDetail
	err := q.do(ctx, "GET", "/api/messages/"+url.PathEscape(id), &d)
	if errors.Is(err, deliver.ErrNotFound) {
		return nil, fmt.Errorf("%s: no message, stable id or job has this id", id)
	}
	if err != nil {
		return nil, err
	}
	return &d, nil
}

// retryNow makes the job id, or every waiting job of the message id names,
// due now, and returns the jobs it retried.
func retryNow(ctx context.Context, q cliQueue, id string) ([]string, error) {
	err := q.RetryNow(ctx, id)
	if err == nil {
		return []string{id}, nil
	}
	if !errors.Is(err, deliver.ErrNotFound) {
		return nil, explainRetry(id, err)
	}
	d, ferr := q.findMessage(ctx, id)
	if ferr != nil {
		return nil, ferr
	}
	var done []string
	for _, j := range d.Jobs {
		if j.QueueState != deliver.StateScheduled && j.QueueState != deliver.StateReady {
			continue
		}
		if err := q.RetryNow(ctx, j.ID); err != nil {
			return done, explainRetry(j.ID, err)
		}
		done = append(done, j.ID)
	}
	if len(done) == 0 {
		return nil, fmt.Errorf("message %s has no job waiting for a retry (see `mailhook queue show %s`)", d.ID, id)
	}
	return done, nil
}

func explainRetry(id string, err error) error {
	switch {
	case errors.Is(err, deliver.ErrIsDead):
		return fmt.Errorf("job %s is dead-lettered: `mailhook queue replay %s` brings it back", id, id)
	case errors.Is(err, deliver.ErrInFlight):
		return fmt.Errorf("job %s: an attempt is running now", id)
	case apiStatus(err) == http.StatusConflict:
		// Through the API, the server's reply says which.
		return fmt.Errorf("job %s: %w", id, err)
	}
	return err
}

// printMessage prints a message and its jobs for a person; the job whose
// id was asked for is marked.
func printMessage(w io.Writer, d *admin.MessageDetail, asked string, now time.Time) {
	row := func(k, v string) {
		if v != "" {
			fmt.Fprintf(w, "%-11s %s\n", k, v)
		}
	}
	row("message", d.ID)
	row("stable id", d.StableID)
	row("received", fmt.Sprintf("%s (%s ago)", d.ReceivedAt.Local().Format(time.DateTime), now.Sub(d.ReceivedAt).Round(time.Second)))
	row("mail from", d.Envelope.MailFrom)
	row("rcpt to", strings.Join(d.Envelope.RcptTo, ", "))
	if m := d.Message; m != nil {
		if m.From != nil {
			row("from", strings.TrimSpace(m.From.Name+" <"+m.From.Address+">"))
		}
		row("subject", m.Subject)
		row("message-id", m.MessageID)
	} else {
		row("from", d.From)
		row("subject", d.Subject)
		row("message-id", d.MessageID)
	}
	row("size", fmt.Sprintf("%d bytes", d.RawSize))
	row("routes", strings.Join(d.Routes, ", "))
	row("status", d.Status)
	for _, j := range d.Jobs {
		mark := ""
		if j.ID == asked {
			mark = "   <- " + asked
		}
		fmt.Fprintf(w, "\njob %s: %s -> %s (route %s)%s\n", j.ID, j.Kind, j.Target, j.Route, mark)
		state := j.Status
		if j.QueueState != "" {
			state += "; in the queue: " + string(j.QueueState)
			if j.NextAt != nil && j.QueueState == deliver.StateScheduled {
				state += fmt.Sprintf(", next attempt %s (in %s)", j.NextAt.Local().Format(time.TimeOnly), j.NextAt.Sub(now).Round(time.Second))
			}
		}
		fmt.Fprintf(w, "  status    %s\n", state)
		if len(j.Rcpts) > 0 {
			fmt.Fprintf(w, "  rcpts     %s\n", strings.Join(j.Rcpts, ", "))
		}
		for i, a := range j.Attempts {
			result := "ok"
			switch {
			case a.Status != 0:
				result = fmt.Sprint(a.Status)
			case a.Error != "":
				result = "error"
			}
			fmt.Fprintf(w, "  attempt %d %s  %s  %.1f ms", i+1, a.At.Local().Format(time.DateTime), result, a.LatencyMS)
			if a.Outcome != "" {
				fmt.Fprintf(w, "  %s", a.Outcome)
			}
			if a.Error != "" {
				fmt.Fprintf(w, "  error: %s", oneLine(a.Error, 200))
			}
			if a.Response != "" {
				fmt.Fprintf(w, "  response: %s", oneLine(a.Response, 200))
			}
			fmt.Fprintln(w)
		}
		if n := len(j.Sent) + len(j.SentText); n > 0 {
			fmt.Fprintf(w, "  webhook JSON sent: %d bytes (--json shows it)\n", n)
		}
	}
}
