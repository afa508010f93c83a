package admin

// Message records: what was accepted, each attempt, replays and drops, and
// the summary the list shows.

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/mailhook/mailhook/deliver"
	"github.com/mailhook/mailhook/inbound"
	"github.com/mailhook/mailhook/internal/clip"
	"github.com/mailhook/mailhook/parse"
	"github.com/mailhook/mailhook/route"
)

// MessageSummary is one line of the message list.
type MessageSummary struct {
	ID         string    `json:"id"`
	ReceivedAt time.Time `json:"received_at"`
	UpdatedAt  time.Time `json:"updated_at"`
	MailFrom   string    `json:"mail_from"`
	RcptTo     []string  `json:"rcpt_to"`
	From       string    `json:"from"`
	Subject    string    `json:"subject"`
	// MessageID is the Message-ID header field; StableID the webhook
	// JSON's id (see inbound.Mail.StableID).
	MessageID string `json:"message_id,omitempty"`
	StableID  string `json:"stable_id,omitempty"`
	// Routes are the names of the rules that matched, in order, once each.
	Routes    []string `json:"routes"`
	Status    string   `json:"status"`
	Jobs      int      `json:"jobs"`
	Delivered int      `json:"delivered"`
}

// MessageDetail is everything recorded about one message.
type MessageDetail struct {
	MessageSummary
	RawSize   int64            `json:"raw_size"`
	Envelope  inbound.Envelope `json:"envelope"`
	Auth      *inbound.Auth    `json:"auth"`
	Spam      *inbound.Spam    `json:"spam,omitempty"`
	Message   *parse.Message   `json:"message"`
	Decisions []route.Decision `json:"decisions"`
	Jobs      []JobRecord      `json:"jobs"`
	// Timeline lists what happened to the message, oldest first.
	Timeline []Event `json:"timeline"`
	// Truncated lists what was cut to keep the record bounded.
	Truncated []string `json:"truncated,omitempty"`
	// HasRaw reports whether the raw source is kept.
	HasRaw bool `json:"has_raw"`
}

// JobRecord is one job of a message as the activity store saw it.
type JobRecord struct {
	ID       string          `json:"id"`
	Kind     deliver.Kind    `json:"kind"`
	Target   string          `json:"target"`
	Route    string          `json:"route"`
	Rcpts    []string        `json:"rcpts,omitempty"`
	Status   string          `json:"status"`
	Attempts []AttemptRecord `json:"attempts"`
	// Sent is the last webhook body sent for the job (RecordSent): JSON
	// when it was kept whole, else absent and SentText holds its start.
	Sent          json.RawMessage `json:"sent,omitempty"`
	SentText      string          `json:"sent_text,omitempty"`
	SentTruncated bool            `json:"sent_truncated,omitempty"`
	// QueueState and NextAt are the job's live state in the queue, filled
	// by the API when the queue still holds the job.
	QueueState deliver.State `json:"queue_state,omitempty"`
	NextAt     *time.Time    `json:"next_at,omitempty"`
}

// AttemptRecord is one delivery attempt.
type AttemptRecord struct {
	At          time.Time `json:"at"`
	Status      int       `json:"status,omitempty"`
	StatusClass string    `json:"status_class"`
	LatencyMS   float64   `json:"latency_ms"`
	Error       string    `json:"error,omitempty"`
	Response    string    `json:"response,omitempty"`
	Outcome     string    `json:"outcome"`
}

// Event is one entry of a message's timeline.
type Event struct {
	At time.Time `json:"at"`
	// Type is accepted, attempt, replayed or dropped.
	Type   string `json:"type"`
	JobID  string `json:"job_id,omitempty"`
	Kind   string `json:"kind,omitempty"`
	Target string `json:"target,omitempty"`
	// The rest is set for attempts.
	Outcome   string  `json:"outcome,omitempty"`
	Status    int     `json:"status,omitempty"`
	LatencyMS float64 `json:"latency_ms,omitempty"`
	Error     string  `json:"error,omitempty"`
}

// msgRecord is what bMsgs holds. Its Message is nil: the parsed message is
// kept apart in bParsed, written once by RecordAccepted, so that the record
// each attempt reads and rewrites stays small (records written before that
// hold it inline, and keep it).
type msgRecord struct {
	MessageDetail
	// Stub is true for a record made by RecordAttempt for a message that
	// RecordAccepted has not (yet) recorded.
	Stub bool `json:"stub,omitempty"`
}

// RecordAccepted records a message the gateway accepted, with the rule
// decisions for its recipients and the jobs committed for it. It is safe to
// call after RecordAttempt has already seen one of its jobs (a fast worker):
// the attempts recorded so far are kept. Until the record is written it
// holds on to mail.Raw, the envelope and decisions, which must not change
// (they are read-only once the message is accepted).
func (a *Activity) RecordAccepted(mail *inbound.Mail, decisions []route.Decision, jobs []*deliver.Job) error {
	if mail == nil || mail.ID == "" {
		return errors.New("admin: activity: record accepted: mail without id")
	}
	now := a.now()
	d := MessageDetail{
		RawSize:   mail.RawSize,
		Envelope:  mail.Envelope,
		Auth:      mail.Auth,
		Spam:      mail.Spam,
		Decisions: decisions,
	}
	d.ID, d.StableID = mail.ID, mail.StableID
	d.ReceivedAt = mail.ReceivedAt
	if d.ReceivedAt.IsZero() {
		d.ReceivedAt = now
	}
	d.Message, d.Truncated = trimMessage(mail.Message)
	for _, j := range jobs {
		d.Jobs = append(d.Jobs, newJobRecord(j))
	}
	d.Timeline = []Event{{At: d.ReceivedAt, Type: "accepted"}}
	if d.Decisions == nil {
		d.Decisions = []route.Decision{}
	}
	if m := d.Message; m != nil {
		d.Subject = clip.UTF8(m.Subject, maxSummaryText, "")
		d.MessageID = clip.UTF8(m.MessageID, maxSummaryText, "")
		if m.From != nil {
			d.From = clip.UTF8(m.From.Address, maxSummaryText, "")
		}
	}
	parsed, err := deliver.EncodeMessage(d.Message) // bParsed's form, packed
	if err != nil {
		return fmt.Errorf("admin: activity: record accepted %s: %w", mail.ID, err)
	}
	parsed = deliver.Pack(parsed)
	d.Message = nil
	var raw []byte
	if mail.Raw != nil && !hasAttachmentURL(mail) {
		// A small message that never had a file: its raw copy goes into
		// the (unsynced, batched) transaction instead of a file of its
		// own (KeepRaw; KeepLinked wrote one already for a message whose
		// attachments have URLs).
		raw = deliver.Pack(mail.Raw)
	}
	id := mail.ID
	return a.db.c.add(&writeOp{what: "record accepted " + id, size: len(parsed) + len(raw) + 1024, fn: func(b *wbatch, _ *writeOp) error {
		old, err := b.record(id)
		if err != nil && !errors.Is(err, ErrNotFound) {
			return err
		}
		rec := &msgRecord{MessageDetail: d}
		// Copy, as this may run again.
		rec.Jobs = slices.Clone(d.Jobs)
		rec.Timeline = slices.Clone(d.Timeline)
		if old != nil {
			if !old.Stub {
				// The same acceptance recorded twice: keep the first.
				return nil
			}
			mergeStub(rec, old)
			if err := b.tx.Bucket(bIndex).Delete(timeKey(old.ReceivedAt, old.ID)); err != nil {
				return err
			}
		}
		for _, j := range rec.Jobs {
			if err := putID(b.tx, idxJob, j.ID, id); err != nil {
				return err
			}
		}
		if rec.StableID != "" && rec.StableID != id {
			if err := putID(b.tx, idxAlias, rec.StableID, id); err != nil {
				return err
			}
		}
		if err := b.tx.Bucket(bParsed).Put([]byte(id), parsed); err != nil {
			return err
		}
		if raw != nil {
			if err := b.tx.Bucket(bRawMsg).Put([]byte(id), raw); err != nil {
				return err
			}
		}
		b.put(rec, now)
		b.series(d.ReceivedAt, func(c *seriesCell) { c.Accepted++ })
		return nil
	}})
}

// mergeStub keeps what RecordAttempt recorded before RecordAccepted.
func mergeStub(rec, stub *msgRecord) {
	for _, sj := range stub.Jobs {
		i := slices.IndexFunc(rec.Jobs, func(j JobRecord) bool { return j.ID == sj.ID })
		if i < 0 {
			rec.Jobs = append(rec.Jobs, sj)
			continue
		}
		rec.Jobs[i].Status, rec.Jobs[i].Attempts = sj.Status, sj.Attempts
	}
	for _, ev := range stub.Timeline {
		if ev.Type != "accepted" {
			rec.Timeline = append(rec.Timeline, ev)
		}
	}
}

func newJobRecord(j *deliver.Job) JobRecord {
	return JobRecord{
		ID: j.ID, Kind: j.Kind, Target: j.Target, Route: j.Route,
		Rcpts: slices.Clone(j.Rcpts), Status: StatusQueued, Attempts: []AttemptRecord{},
	}
}

// trimMessage returns a copy of m small enough to keep: attachment contents
// dropped (their size and hash stay) and bodies cut at maxBodyText.
func trimMessage(m *parse.Message) (*parse.Message, []string) {
	if m == nil {
		return nil, nil
	}
	c := *m
	var cut []string
	c.Attachments = slices.Clone(m.Attachments)
	for i := range c.Attachments {
		c.Attachments[i].Content = ""
	}
	if len(c.Text) > maxBodyText {
		c.Text, cut = clip.UTF8(c.Text, maxBodyText, ""), append(cut, "message.text")
	}
	if len(c.HTML) > maxBodyText {
		c.HTML, cut = clip.UTF8(c.HTML, maxBodyText, ""), append(cut, "message.html")
	}
	if len(c.StrippedText) > maxBodyText {
		c.StrippedText, cut = clip.UTF8(c.StrippedText, maxBodyText, ""), append(cut, "message.stripped_text")
	}
	return &c, cut
}

// RecordAttempt records one delivery attempt of job and how the Runner
// settled it: it appends to the message's timeline and updates the job's
// and the message's status. A released attempt (mailhook stopping) leaves
// the job queued and counts as neither delivered nor failed. The attempt's
// Body, when set, becomes the job's sent body (as RecordSent keeps it; a
// copy, so the caller may reuse Body), in the same transaction.
func (a *Activity) RecordAttempt(job *deliver.Job, at deliver.Attempt, outcome deliver.Settlement) error {
	if job == nil || job.ID == "" || job.MsgID == "" {
		return errors.New("admin: activity: record attempt: job without id or message id")
	}
	var status string
	switch outcome {
	case deliver.SettleDelivered:
		status = StatusDelivered
	case deliver.SettleRetry:
		status = StatusRetrying
	case deliver.SettleDead:
		status = StatusDead
	case deliver.SettleReleased:
		status = StatusQueued
	default:
		return fmt.Errorf("admin: activity: record attempt: unknown outcome %q", outcome)
	}
	now := a.now()
	if at.At.IsZero() {
		at.At = now
	}
	ar := newAttemptRecord(at, string(outcome))
	ar.Error, ar.Response = clip.UTF8(ar.Error, maxErrorText, ""), clip.UTF8(ar.Response, maxResponse, "")
	var sent []byte
	if len(at.Body) > 0 {
		sent = a.sentValue(at.Body)
	}
	// The caller may reuse job once this returns.
	job = &deliver.Job{ID: job.ID, MsgID: job.MsgID, Kind: job.Kind, Target: job.Target, Route: job.Route,
		Rcpts: slices.Clone(job.Rcpts), CreatedAt: job.CreatedAt}
	return a.db.c.add(&writeOp{what: "record attempt " + job.ID, size: len(sent) + 1024, fn: func(b *wbatch, _ *writeOp) error {
		if sent != nil {
			if err := b.tx.Bucket(bSent).Put(sentKey(job.MsgID, job.ID), sent); err != nil {
				return err
			}
		}
		rec, err := b.record(job.MsgID)
		if errors.Is(err, ErrNotFound) {
			rec = &msgRecord{Stub: true}
			rec.ID, rec.ReceivedAt = job.MsgID, job.CreatedAt
			if rec.ReceivedAt.IsZero() {
				rec.ReceivedAt = at.At
			}
			rec.Decisions = []route.Decision{}
		} else if err != nil {
			return err
		}
		i := slices.IndexFunc(rec.Jobs, func(j JobRecord) bool { return j.ID == job.ID })
		if i < 0 {
			rec.Jobs = append(rec.Jobs, newJobRecord(job))
			i = len(rec.Jobs) - 1
			if err := putID(b.tx, idxJob, job.ID, job.MsgID); err != nil {
				return err
			}
		}
		j := &rec.Jobs[i]
		j.Status = status
		j.Rcpts = slices.Clone(job.Rcpts)
		j.Attempts = append(j.Attempts, ar)
		if len(j.Attempts) > maxAttempts {
			j.Attempts = slices.Clone(j.Attempts[len(j.Attempts)-maxAttempts:])
		}
		rec.addEvent(Event{
			At: ar.At, Type: "attempt", JobID: job.ID, Kind: string(job.Kind), Target: job.Target,
			Outcome: string(outcome), Status: ar.Status, LatencyMS: ar.LatencyMS, Error: ar.Error,
		})
		b.put(rec, now)
		if outcome == deliver.SettleReleased {
			return nil
		}
		b.series(ar.At, func(c *seriesCell) {
			if outcome == deliver.SettleDelivered {
				c.Delivered++
			} else {
				c.Failed++
			}
		})
		return nil
	}})
}

func (r *msgRecord) addEvent(ev Event) {
	r.Timeline = append(r.Timeline, ev)
	if len(r.Timeline) > maxTimeline {
		// Keep the first event (the acceptance) and the latest ones.
		r.Timeline = append(r.Timeline[:1:1], r.Timeline[len(r.Timeline)-maxTimeline+1:]...)
	}
}

// RecordReplayed notes that an operator replayed a dead job: it is queued
// again.
func (a *Activity) RecordReplayed(jobID string) error {
	return a.setJobStatus(jobID, StatusQueued, "replayed")
}

// RecordDropped notes that an operator dropped a job.
func (a *Activity) RecordDropped(jobID string) error {
	return a.setJobStatus(jobID, jobDropped, "dropped")
}

func (a *Activity) setJobStatus(jobID, status, event string) error {
	now := a.now()
	err := a.db.c.do(&writeOp{what: event + " " + jobID, fn: func(b *wbatch, op *writeOp) error {
		msgID := getID(b.tx, idxJob, jobID)
		if msgID == nil {
			op.res = ErrNotFound
			return nil
		}
		rec, err := b.record(string(msgID))
		if errors.Is(err, ErrNotFound) {
			op.res = ErrNotFound
			return nil
		} else if err != nil {
			return err
		}
		i := slices.IndexFunc(rec.Jobs, func(j JobRecord) bool { return j.ID == jobID })
		if i < 0 {
			op.res = ErrNotFound
			return nil
		}
		rec.Jobs[i].Status = status
		rec.addEvent(Event{At: now, Type: event, JobID: jobID, Kind: string(rec.Jobs[i].Kind), Target: rec.Jobs[i].Target})
		b.put(rec, now)
		return nil
	}})
	if err != nil {
		return fmt.Errorf("admin: activity: %s %s: %w", event, jobID, err)
	}
	return nil
}

// newAttemptRecord is at as the activity store and the API show it.
func newAttemptRecord(at deliver.Attempt, outcome string) AttemptRecord {
	class := statusClass(at.Status)
	if at.Status == 0 && at.Error == "" {
		class = "none" // no reply code and no error: a mailbox append
	}
	return AttemptRecord{
		At: at.At, Status: at.Status, StatusClass: class,
		LatencyMS: float64(at.Latency) / float64(time.Millisecond),
		Error:     at.Error, Response: at.Response, Outcome: outcome,
	}
}

// statusClass names the class of an HTTP status or SMTP reply code for
// metrics and the dashboard: 2xx 3xx 4xx 5xx, or error when there was no
// reply at all.
func statusClass(status int) string {
	switch {
	case status >= 200 && status < 300:
		return "2xx"
	case status >= 300 && status < 400:
		return "3xx"
	case status >= 400 && status < 500:
		return "4xx"
	case status >= 500 && status < 600:
		return "5xx"
	}
	return "error"
}

func getRecord(tx *bolt.Tx, id string) (*msgRecord, error) {
	v := tx.Bucket(bMsgs).Get([]byte(id))
	if v == nil {
		return nil, ErrNotFound
	}
	rec := &msgRecord{}
	if err := json.Unmarshal(v, rec); err != nil {
		return nil, fmt.Errorf("decode record %s: %w", id, err)
	}
	return rec, nil
}

// putRecord recomputes the summary of rec (but From and Subject, which
// RecordAccepted set) and writes the record and its
// index entry, replacing the entry of the same ReceivedAt (a caller that
// changes ReceivedAt removes the old entry).
func putRecord(tx *bolt.Tx, rec *msgRecord, now time.Time) error {
	rec.UpdatedAt = now
	rec.MailFrom = rec.Envelope.MailFrom
	rec.RcptTo = rec.Envelope.RcptTo
	if rec.RcptTo == nil {
		rec.RcptTo = []string{}
	}
	rec.Routes = []string{}
	for _, d := range rec.Decisions {
		for _, r := range d.Rules {
			if !slices.Contains(rec.Routes, r) {
				rec.Routes = append(rec.Routes, r)
			}
		}
	}
	for _, j := range rec.Jobs {
		if j.Route != "" && !slices.Contains(rec.Routes, j.Route) {
			rec.Routes = append(rec.Routes, j.Route)
		}
	}
	rec.Status = messageStatus(rec.Jobs)
	rec.MessageSummary.Jobs = len(rec.Jobs)
	rec.MessageSummary.Delivered = 0
	for _, j := range rec.Jobs {
		if j.Status == StatusDelivered {
			rec.MessageSummary.Delivered++
		}
	}
	b, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	if err := tx.Bucket(bMsgs).Put([]byte(rec.ID), b); err != nil {
		return err
	}
	s, err := json.Marshal(rec.MessageSummary)
	if err != nil {
		return err
	}
	return tx.Bucket(bIndex).Put(timeKey(rec.ReceivedAt, rec.ID), s)
}

// messageStatus derives a message's status from its jobs' statuses.
func messageStatus(jobs []JobRecord) string {
	if len(jobs) == 0 {
		return StatusDropped
	}
	var delivered, retrying, queued, dropped int
	for _, j := range jobs {
		switch j.Status {
		case StatusDelivered:
			delivered++
		case StatusRetrying:
			retrying++
		case StatusQueued:
			queued++
		case jobDropped:
			dropped++
		}
	}
	switch {
	case retrying > 0:
		return StatusRetrying
	case queued > 0:
		return StatusQueued
	case delivered == len(jobs):
		return StatusDelivered
	case delivered > 0:
		return StatusPartial
	case dropped == len(jobs):
		return StatusDropped
	}
	return StatusDead
}

// timeKey orders keys by time: 8 bytes of big-endian Unix nanoseconds
// (clamped at zero) followed by id.
func timeKey(t time.Time, id string) []byte {
	k := make([]byte, 8+len(id))
	n := t.UnixNano()
	if t.IsZero() || n < 0 {
		n = 0
	}
	binary.BigEndian.PutUint64(k, uint64(n))
	copy(k[8:], id)
	return k
}

func keyTime(k []byte) time.Time {
	if len(k) < 8 {
		return time.Time{}
	}
	return time.Unix(0, int64(binary.BigEndian.Uint64(k))).UTC()
}
