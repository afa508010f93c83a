package webhook

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/mailhook/mailhook/deliver"
	"github.com/mailhook/mailhook/inbound"
)

// Synchronous endpoints (config webhooks.NAME.mode: sync). Their event is
// POSTed during DATA, after verification and routing and before the queue
// commit, and the answer becomes the SMTP reply:
//
//   - 2xx: the endpoint has the message; it is not queued for it (250);
//   - 4xx other than 408 and 429: the application refuses the message:
//     550 5.7.1 with the first line of a text/plain body as the text;
//   - 5xx, 408, 429, 3xx, a timeout (sync_timeout) or a connection error:
//     451 4.3.0 (on_failure: defer, the default: the sender retries), or the
//     job is queued like an asynchronous one (on_failure: queue), with this
//     attempt in its history.
//
// A message routed to several sync endpoints is POSTed to them at once; it
// is refused if any refuses (and then nothing is queued for it), deferred if
// any deferring endpoint failed, and accepted otherwise. The webhook-id is
// the job id the queue would use, so a job queued after a failure carries
// the same webhook-id as the sync attempt.

// Modes and failure policies.
const (
	ModeAsync          = "async"
	ModeSync           = "sync"
	OnFailureDefer     = "defer"
	OnFailureQueue     = "queue"
	DefaultSyncTimeout = 10 * time.Second
	// MaxRefusalText bounds the text of a refusal taken from the
	// endpoint's response.
	MaxRefusalText = 200
)

// DefaultRefusalText is the text of a 550 when the endpoint's 4xx has no
// usable text/plain body.
const DefaultRefusalText = "Message refused by the recipient's application"

// ErrSyncDeferred is the reply when a sync endpoint with on_failure: defer
// failed: a bare 451 4.3.0, so the sender retries.
var ErrSyncDeferred = &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0},
	Message: "The recipient's application is not available, please try again later"}

func checkSync(ep *endpoint, bad func(key, format string, args ...any)) {
	if ep.Mode != ModeAsync && ep.Mode != ModeSync {
		bad("mode", "%q, want async or sync", ep.Mode)
	}
	if ep.OnFailure != OnFailureDefer && ep.OnFailure != OnFailureQueue {
		bad("on_failure", "%q, want defer or queue", ep.OnFailure)
	}
	if ep.SyncTimeout < 0 {
		bad("sync_timeout", "negative")
	}
}

// IsSync reports whether the endpoint named name is synchronous.
func (s *Sender) IsSync(name string) bool {
	ep := s.eps[name]
	return ep != nil && ep.err == nil && ep.Mode == ModeSync
}

// Verdict is what one sync attempt means for the message.
type Verdict int

// The verdicts of SyncVerdict.
const (
	Accepted Verdict = iota // 2xx
	Refused                 // the application refused (4xx)
	Failed                  // no answer, or one that says try later
)

// SyncVerdict is the one place that reads a sync endpoint's answer: its
// verdict and, for Refused, the 550 reply. body is the start of the
// response body (as recorded in the attempt).
func SyncVerdict(status int, header http.Header, body string, err error) (Verdict, *smtp.SMTPError) {
	switch {
	case err != nil || status == 0:
		return Failed, nil
	case status >= 200 && status <= 299:
		return Accepted, nil
	case status == http.StatusRequestTimeout || status == http.StatusTooManyRequests:
		return Failed, nil // "try later", not "no"
	case status >= 400 && status <= 499:
		return Refused, &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 7, 1}, Message: refusalText(header, body)}
	default:
		return Failed, nil
	}
}

// refusalText is the first line of a text/plain body, as printable ASCII
// (an SMTP reply's text, RFC 5321 §4.2), at most MaxRefusalText bytes; or
// DefaultRefusalText.
func refusalText(header http.Header, body string) string {
	mt, _, err := mime.ParseMediaType(header.Get("Content-Type"))
	if err != nil || mt != "text/plain" {
		return DefaultRefusalText
	}
	line, _, _ := strings.Cut(strings.TrimLeft(body, " \t\r\n"), "\n")
	var b strings.Builder
	for _, r := range strings.TrimSpace(line) {
		if b.Len() >= MaxRefusalText {
			break
		}
		switch {
		case r >= 0x20 && r < 0x7f:
			b.WriteRune(r)
		case r == '\t':
			b.WriteByte(' ')
		default:
			b.WriteByte('?')
		}
	}
	if t := strings.TrimSpace(b.String()); t != "" {
		return t
	}
	return DefaultRefusalText
}

// SyncStep delivers the jobs of synchronous endpoints while the sender
// waits. Its Run is deliver.Committer's Sync hook.
type SyncStep struct {
	// Sender returns the sender in use (a reload may replace it).
	Sender func() *Sender
	// OnAttempt, when set, is told of each attempt as the runner's
	// OnAttempt is (activity log, metrics), with outcome "delivered",
	// "dead" (refused) or "retry" (failed: deferred or queued).
	OnAttempt func(job *deliver.Job, mail *inbound.Mail, a deliver.Attempt, outcome deliver.Settlement)
	// OnRefusedAttempt, when set, is told instead of OnAttempt of the
	// attempts of a message the step refuses or defers: the message was
	// not accepted, so ingest records it as a refusal (with the
	// endpoint's text) rather than as a message with jobs.
	OnRefusedAttempt func(job *deliver.Job, mail *inbound.Mail, a deliver.Attempt, outcome deliver.Settlement)
	// Logger gets one line per sync attempt (default: discard).
	Logger *slog.Logger
}

// syncResult is one sync job's attempt.
type syncResult struct {
	job     *deliver.Job
	out     deliver.Outcome
	verdict Verdict
	reply   *smtp.SMTPError
}

// Run POSTs the jobs of sync endpoints among jobs, at once, and returns the
// jobs left to commit: the others, and those of failed on_failure: queue
// endpoints. Its error, a bare *smtp.SMTPError, is the reply when the
// message is refused (550) or deferred (451); then nothing is committed.
func (st *SyncStep) Run(ctx context.Context, m *inbound.Mail, jobs []*deliver.Job) ([]*deliver.Job, error) {
	s := st.Sender()
	var rest, syncJobs []*deliver.Job
	for _, j := range jobs {
		if j.Kind == deliver.KindWebhook && s.IsSync(j.Target) {
			syncJobs = append(syncJobs, j)
		} else {
			rest = append(rest, j)
		}
	}
	if len(syncJobs) == 0 {
		return jobs, nil
	}
	// The raw message is in memory (small ones) or in the spool file,
	// until the queue's commit takes it.
	raw := func() (io.ReadCloser, error) {
		if m.Raw != nil {
			return io.NopCloser(bytes.NewReader(m.Raw)), nil
		}
		return os.Open(m.RawPath)
	}
	results := make([]syncResult, len(syncJobs))
	var wg sync.WaitGroup
	for i, j := range syncJobs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() {
				if p := recover(); p != nil {
					results[i] = syncResult{job: j, verdict: Failed,
						out: deliver.Outcome{Attempt: deliver.Attempt{At: time.Now(), Error: fmt.Sprintf("webhook: sync attempt panicked: %v", p)}}}
				}
			}()
			j.Attempts++
			r, out := s.attempt(ctx, j, m, raw, true)
			v, reply := SyncVerdict(r.status, r.header, r.response, r.err)
			results[i] = syncResult{job: j, out: out, verdict: v, reply: reply}
		}()
	}
	wg.Wait()

	var refusal *smtp.SMTPError
	deferred := false
	for _, r := range results {
		switch {
		case r.verdict == Refused && refusal == nil:
			refusal = r.reply
		case r.verdict == Failed && s.eps[r.job.Target].OnFailure != OnFailureQueue:
			deferred = true
		}
	}
	log := st.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	for _, r := range results {
		outcome := deliver.SettleDelivered
		switch r.verdict {
		case Refused:
			outcome = deliver.SettleDead
		case Failed:
			outcome = deliver.SettleRetry
			if refusal == nil && !deferred {
				// on_failure: queue, and the message is accepted: the
				// queued job carries this attempt.
				r.job.AddAttempt(r.out.Attempt)
				rest = append(rest, r.job)
			}
		}
		log.Info("sync webhook", "msg_id", m.ID, "route", r.job.Route, "endpoint", r.job.Target,
			"status", r.out.Attempt.Status, "latency", r.out.Attempt.Latency, "outcome", outcome, "error", r.out.Attempt.Error)
		tell := st.OnAttempt
		if (refusal != nil || deferred) && st.OnRefusedAttempt != nil {
			tell = st.OnRefusedAttempt
		}
		if tell != nil {
			tell(r.job, m, r.out.Attempt, outcome)
		}
	}
	switch {
	case refusal != nil:
		return nil, refusal
	case deferred:
		return nil, ErrSyncDeferred
	}
	return rest, nil
}
