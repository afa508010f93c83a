package admin

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"runtime/debug"
	"slices"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"

	"github.com/mailhook/mailhook/deliver"
	"github.com/mailhook/mailhook/inbound"
	"github.com/mailhook/mailhook/internal/clip"
	"github.com/mailhook/mailhook/internal/safefile"
	"github.com/mailhook/mailhook/parse"
	"github.com/mailhook/mailhook/route"
)

// Message statuses, as reported by MessageSummary.Status. A message's
// status is derived from the statuses of its jobs (see messageStatus).
const (
	StatusQueued    = "queued"              // accepted, no job finished yet
	StatusDelivered = "delivered"           // every job delivered
	StatusPartial   = "partially delivered" // some jobs delivered, the others dead or dropped
	StatusRetrying  = "retrying"            // at least one job failed and will be retried
	StatusDead      = "dead"                // no job delivered and none left to try
	StatusDropped   = "dropped"             // no jobs (a drop rule), or every job dropped by an operator
)

// Job statuses in JobRecord.Status (besides StatusQueued, StatusDelivered,
// StatusRetrying and StatusDead).
const jobDropped = "dropped"

// ErrNotFound means no such message (or raw copy) in the activity store.
var ErrNotFound = errors.New("admin: not found")

// Bounds on what one message may put into the activity store, so hostile
// mail cannot grow it without limit.
const (
	// DefaultRetention is how long records and raw copies are kept.
	DefaultRetention = 7 * 24 * time.Hour
	// DefaultMaxSentBytes bounds each webhook body kept by RecordSent.
	DefaultMaxSentBytes = 256 << 10
	maxBodyText         = 256 << 10 // Message.Text and Message.HTML kept
	maxTimeline         = 500       // events per message
	maxAttempts         = deliver.MaxHistory
	maxResponse         = 512  // bytes of an attempt's response kept
	maxErrorText        = 1024 // bytes of an attempt's error kept
	maxSummaryText      = 200  // subject and from in summaries
	// MaxPageSize is the largest page Messages returns.
	MaxPageSize = 500
)

// maxScan bounds the index entries one Messages call examines (a variable
// for tests).
var maxScan = 20000

var (
	bMsgs    = []byte("msgs")    // msg id -> msgRecord JSON
	bParsed  = []byte("parsed")  // msg id -> parse.Message JSON (trimmed)
	bIndex   = []byte("index")   // timeKey(ReceivedAt, id) -> MessageSummary JSON
	bJobs    = []byte("jobs")    // job id -> msg id
	bSent    = []byte("sent")    // job id -> 8-byte unix nanos + body
	bRefused = []byte("refused") // timeKey(At, seq) -> Refused JSON
	bSeries  = []byte("series")  // 8-byte unix minute -> seriesCell JSON
	bMeta    = []byte("meta")    // "probe" -> nil, written by Writable
	bClaims  = []byte("claims")  // one-time link key -> 8-byte unix expiry
	bAlias   = []byte("alias")   // stable id -> msg id
	bRawMsg  = []byte("raw")     // msg id -> raw message, for messages held in memory (inbound.Mail.Raw)
)

// ActivityOptions configures OpenActivity.
type ActivityOptions struct {
	// Retention is how long records and raw copies are kept; zero means
	// DefaultRetention.
	Retention time.Duration
	// Logger receives purge reports; nil discards.
	Logger *slog.Logger
	// Now returns the current time; nil means time.Now.
	Now func() time.Time
	// MaxSentBytes bounds each body kept by RecordSent; zero means
	// DefaultMaxSentBytes.
	MaxSentBytes int
}

// Activity is the message history kept for inspection: what was accepted
// (envelope, verification, parsed message, rule decisions), what was
// refused, every delivery attempt, the webhook bodies sent, a copy of each
// raw message, and per-minute counters for charts. It is a bbolt file
// (activity.db) and a raw/ directory under the directory given to
// OpenActivity.
//
// Activity is safe for concurrent use. It is a record, not a queue: nothing
// in it is needed to deliver mail, and callers must log, never act on, the
// errors its Record methods return, so a failing activity write can never
// fail mail acceptance.
type Activity struct {
	db        *bolt.DB
	dir       string
	rawDir    string
	retention time.Duration
	log       *slog.Logger
	now       func() time.Time
	maxSent   int
}

// OpenActivity opens (creating if needed) the activity store under dir.
func OpenActivity(dir string, opts ActivityOptions) (*Activity, error) {
	a := &Activity{
		dir:       dir,
		rawDir:    filepath.Join(dir, "raw"),
		retention: opts.Retention,
		log:       opts.Logger,
		now:       opts.Now,
		maxSent:   opts.MaxSentBytes,
	}
	if a.retention <= 0 {
		a.retention = DefaultRetention
	}
	if a.log == nil {
		a.log = slog.New(slog.DiscardHandler)
	}
	if a.now == nil {
		a.now = time.Now
	}
	if a.maxSent <= 0 {
		a.maxSent = DefaultMaxSentBytes
	}
	if err := os.MkdirAll(a.rawDir, 0o700); err != nil {
		return nil, fmt.Errorf("admin: activity: %w", err)
	}
	path := filepath.Join(dir, "activity.db")
	// The activity log is history for operators, not the queue: nothing
	// acknowledged depends on it. So it is written without an fsync per
	// transaction (a process crash loses nothing, the page cache has it;
	// an OS crash may lose recent records or, rarely, the file, which is
	// then set aside and started afresh rather than stopping mailhook).
	bopts := &bolt.Options{Timeout: time.Second, NoSync: true, NoFreelistSync: true}
	db, err := bolt.Open(path, 0o600, bopts)
	if errors.Is(err, bolterrors.ErrTimeout) {
		return nil, fmt.Errorf("admin: activity: %s is in use by another process", path)
	}
	if err != nil {
		aside := path + ".broken-" + time.Now().UTC().Format("20060102T150405")
		if rerr := os.Rename(path, aside); rerr == nil {
			a.log.Warn("admin: activity store unreadable; set aside, starting afresh", "error", err, "aside", aside)
			db, err = bolt.Open(path, 0o600, bopts)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("admin: activity: open %s: %w", path, err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bMsgs, bParsed, bIndex, bJobs, bSent, bRefused, bSeries, bMeta, bClaims, bAlias, bRawMsg} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("admin: activity: open %s: %w", path, err)
	}
	// Concurrent Record calls share one transaction; a lone caller waits
	// at most this long for company (history may lag by as much).
	db.MaxBatchDelay = 10 * time.Millisecond
	a.db = db
	return a, nil
}

// Close closes the store.
func (a *Activity) Close() error { return a.db.Close() }

// Retention returns how long records are kept.
func (a *Activity) Retention() time.Duration { return a.retention }

// Writable checks that the store accepts writes, for a readiness probe.
func (a *Activity) Writable(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	err := a.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bMeta).Put([]byte("probe"), nil)
	})
	if err != nil {
		return fmt.Errorf("admin: activity store not writable: %w", err)
	}
	return nil
}

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

// Refused is one refusal in the SMTP dialogue.
type Refused struct {
	At       time.Time `json:"at"`
	RemoteIP string    `json:"remote_ip"`
	MailFrom string    `json:"mail_from"`
	Rcpts    []string  `json:"rcpts,omitempty"`
	Code     int       `json:"code"`
	Enhanced string    `json:"enhanced"`
	Reason   string    `json:"reason"`
	// Stage is the SMTP stage that refused: connect, helo, mail, rcpt, data.
	Stage string `json:"stage"`
}

// RecordAccepted records a message the gateway accepted, with the rule
// decisions for its recipients and the jobs committed for it. It is safe to
// call after RecordAttempt has already seen one of its jobs (a fast worker):
// the attempts recorded so far are kept.
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
	parsed, err := json.Marshal(d.Message)
	if err != nil {
		return fmt.Errorf("admin: activity: record accepted %s: %w", mail.ID, err)
	}
	d.Message = nil
	err = a.db.Batch(func(tx *bolt.Tx) error {
		old, err := getRecord(tx, mail.ID)
		if err != nil && !errors.Is(err, ErrNotFound) {
			return err
		}
		rec := &msgRecord{MessageDetail: d}
		// Copy, as Batch may run this function again.
		rec.Jobs = slices.Clone(d.Jobs)
		rec.Timeline = slices.Clone(d.Timeline)
		if old != nil {
			if !old.Stub {
				// The same acceptance recorded twice: keep the first.
				return nil
			}
			mergeStub(rec, old)
			if err := tx.Bucket(bIndex).Delete(timeKey(old.ReceivedAt, old.ID)); err != nil {
				return err
			}
		}
		for _, j := range rec.Jobs {
			if err := tx.Bucket(bJobs).Put([]byte(j.ID), []byte(rec.ID)); err != nil {
				return err
			}
		}
		if rec.StableID != "" && rec.StableID != rec.ID {
			if err := tx.Bucket(bAlias).Put([]byte(rec.StableID), []byte(rec.ID)); err != nil {
				return err
			}
		}
		if err := tx.Bucket(bParsed).Put([]byte(rec.ID), parsed); err != nil {
			return err
		}
		if mail.Raw != nil {
			// A small message that never had a file: its raw copy goes
			// into this (unsynced, batched) transaction instead of a file
			// of its own (KeepRaw).
			if err := tx.Bucket(bRawMsg).Put([]byte(rec.ID), mail.Raw); err != nil {
				return err
			}
		}
		if err := putRecord(tx, rec, now); err != nil {
			return err
		}
		return bumpSeries(tx, d.ReceivedAt, func(c *seriesCell) { c.Accepted++ })
	})
	if err != nil {
		return fmt.Errorf("admin: activity: record accepted %s: %w", mail.ID, err)
	}
	return nil
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

// RecordRefused records a refusal in the SMTP dialogue.
func (a *Activity) RecordRefused(ev Refused) error {
	if ev.At.IsZero() {
		ev.At = a.now()
	}
	ev.MailFrom = clip.UTF8(ev.MailFrom, maxSummaryText*2, "")
	ev.Reason = clip.UTF8(ev.Reason, maxErrorText, "")
	if len(ev.Rcpts) > 100 {
		ev.Rcpts = ev.Rcpts[:100]
	}
	b, err := json.Marshal(ev)
	if err != nil {
		return fmt.Errorf("admin: activity: record refused: %w", err)
	}
	err = a.db.Batch(func(tx *bolt.Tx) error {
		bk := tx.Bucket(bRefused)
		seq, err := bk.NextSequence()
		if err != nil {
			return err
		}
		var s [8]byte
		binary.BigEndian.PutUint64(s[:], seq)
		if err := bk.Put(timeKey(ev.At, string(s[:])), b); err != nil {
			return err
		}
		return bumpSeries(tx, ev.At, func(c *seriesCell) { c.Refused++ })
	})
	if err != nil {
		return fmt.Errorf("admin: activity: record refused: %w", err)
	}
	return nil
}

// ErrClaimed means a one-time link was used already.
var ErrClaimed = errors.New("admin: link already used")

// Claim marks key (a one-time link's signature) as used until exp; it
// returns ErrClaimed when it was claimed before. Purge forgets claims once
// they expire, as the links they guard are dead by then.
func (a *Activity) Claim(key string, exp time.Time) error {
	var used bool
	err := a.db.Batch(func(tx *bolt.Tx) error {
		bk := tx.Bucket(bClaims)
		if used = bk.Get([]byte(key)) != nil; used {
			return nil
		}
		var v [8]byte
		binary.BigEndian.PutUint64(v[:], uint64(exp.Unix()))
		return bk.Put([]byte(key), v[:])
	})
	if err != nil {
		return fmt.Errorf("admin: activity: claim: %w", err)
	}
	if used {
		return ErrClaimed
	}
	return nil
}

// purgeClaims removes claims whose links have expired.
func purgeClaims(bk *bolt.Bucket, now time.Time) error {
	var old [][]byte
	c := bk.Cursor()
	for k, v := c.First(); k != nil; k, v = c.Next() {
		if len(v) != 8 || int64(binary.BigEndian.Uint64(v)) < now.Unix() {
			old = append(old, slices.Clone(k))
		}
	}
	for _, k := range old {
		if err := bk.Delete(k); err != nil {
			return err
		}
	}
	return nil
}

// Refusals returns up to limit refusals at or after since, newest first.
func (a *Activity) Refusals(since time.Time, limit int) ([]Refused, error) {
	return a.RefusalsMatching(since, limit, nil)
}

// maxRefusedScan bounds the refusals one RefusalsMatching call examines.
const maxRefusedScan = 50000

// RefusalsMatching is Refusals keeping only those match accepts (nil
// accepts all); it examines at most 50000 refusals.
func (a *Activity) RefusalsMatching(since time.Time, limit int, match func(*Refused) bool) ([]Refused, error) {
	if limit <= 0 || limit > MaxPageSize {
		limit = MaxPageSize
	}
	out := []Refused{}
	err := a.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bRefused).Cursor()
		floor := timeKey(since, "")
		scanned := 0
		for k, v := c.Last(); k != nil && len(out) < limit && scanned < maxRefusedScan; k, v = c.Prev() {
			if string(k) < string(floor) {
				break
			}
			scanned++
			var r Refused
			if json.Unmarshal(v, &r) == nil && (match == nil || match(&r)) {
				out = append(out, r)
			}
		}
		return nil
	})
	return out, err
}

// RecordAttempt records one delivery attempt of job and how the Runner
// settled it: it appends to the message's timeline and updates the job's
// and the message's status. A released attempt (mailhook stopping) leaves
// the job queued and counts as neither delivered nor failed.
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
	err := a.db.Batch(func(tx *bolt.Tx) error {
		rec, err := getRecord(tx, job.MsgID)
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
			if err := tx.Bucket(bJobs).Put([]byte(job.ID), []byte(job.MsgID)); err != nil {
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
		if err := putRecord(tx, rec, now); err != nil {
			return err
		}
		if outcome == deliver.SettleReleased {
			return nil
		}
		return bumpSeries(tx, ar.At, func(c *seriesCell) {
			if outcome == deliver.SettleDelivered {
				c.Delivered++
			} else {
				c.Failed++
			}
		})
	})
	if err != nil {
		return fmt.Errorf("admin: activity: record attempt %s: %w", job.ID, err)
	}
	return nil
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
	err := a.db.Batch(func(tx *bolt.Tx) error {
		msgID := tx.Bucket(bJobs).Get([]byte(jobID))
		if msgID == nil {
			return ErrNotFound
		}
		rec, err := getRecord(tx, string(msgID))
		if err != nil {
			return err
		}
		i := slices.IndexFunc(rec.Jobs, func(j JobRecord) bool { return j.ID == jobID })
		if i < 0 {
			return ErrNotFound
		}
		rec.Jobs[i].Status = status
		rec.addEvent(Event{At: now, Type: event, JobID: jobID, Kind: string(rec.Jobs[i].Kind), Target: rec.Jobs[i].Target})
		return putRecord(tx, rec, now)
	})
	if err != nil {
		return fmt.Errorf("admin: activity: %s %s: %w", event, jobID, err)
	}
	return nil
}

// RecordSent keeps the body of the webhook sent for a job (the last one
// sent), cut at the configured maximum size.
func (a *Activity) RecordSent(jobID string, body []byte) error {
	if jobID == "" {
		return errors.New("admin: activity: record sent: job without id")
	}
	if len(body) > a.maxSent {
		body = body[:a.maxSent]
	}
	v := make([]byte, 8+len(body))
	binary.BigEndian.PutUint64(v, uint64(a.now().UnixNano()))
	copy(v[8:], body)
	err := a.db.Batch(func(tx *bolt.Tx) error {
		return tx.Bucket(bSent).Put([]byte(jobID), v)
	})
	if err != nil {
		return fmt.Errorf("admin: activity: record sent %s: %w", jobID, err)
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

// Query filters Messages.
type Query struct {
	// Rcpt matches messages with an envelope recipient containing it
	// (case-insensitive).
	Rcpt string
	// Route matches messages that any rule of this name routed.
	Route string
	// Status matches the message status (see Status*); StatusDead also
	// matches partially delivered messages, which have dead jobs too.
	Status string
	// Text matches messages whose sender (envelope or From), subject,
	// Message-ID, recipient or ids contain it (case-insensitive).
	Text string
	// Since and Until bound ReceivedAt: Since <= t < Until; zero is open.
	Since, Until time.Time
	// Cursor is the next value of a previous page.
	Cursor string
	// Limit is the page size; <= 0 means 50, more than MaxPageSize means
	// MaxPageSize.
	Limit int
}

// ErrBadCursor means a Query's Cursor was not one Messages returned.
var ErrBadCursor = errors.New("admin: bad cursor")

// Messages returns a page of message summaries, newest first, and the
// cursor of the next page ("" at the end). A page may be shorter than the
// limit while next is not empty: one call examines a bounded number of
// records, so a filter that matches rarely cannot make it run unbounded.
func (a *Activity) Messages(q Query) (page []MessageSummary, next string, err error) {
	limit := q.Limit
	if limit <= 0 {
		limit = 50
	}
	limit = min(limit, MaxPageSize)
	var start []byte
	if q.Cursor != "" {
		start, err = base64.RawURLEncoding.DecodeString(q.Cursor)
		if err != nil || len(start) < 8 {
			return nil, "", ErrBadCursor
		}
	}
	rcpt := strings.ToLower(q.Rcpt)
	text := strings.ToLower(strings.TrimSpace(q.Text))
	page = []MessageSummary{}
	err = a.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bIndex).Cursor()
		var k, v []byte
		switch {
		case start != nil:
			k, v = c.Seek(start)
			if k == nil {
				k, v = c.Last()
			}
			// Skip the cursor entry itself and anything after it.
			for k != nil && string(k) >= string(start) {
				k, v = c.Prev()
			}
		case !q.Until.IsZero():
			k, v = c.Seek(timeKey(q.Until, ""))
			if k == nil {
				k, v = c.Last()
			}
			for k != nil && !keyTime(k).Before(q.Until) {
				k, v = c.Prev()
			}
		default:
			k, v = c.Last()
		}
		scanned := 0
		for ; k != nil; k, v = c.Prev() {
			t := keyTime(k)
			if !q.Since.IsZero() && t.Before(q.Since) {
				return nil
			}
			if !q.Until.IsZero() && !t.Before(q.Until) {
				continue
			}
			if scanned++; scanned > maxScan {
				// k itself was not examined: resume at it.
				next = base64.RawURLEncoding.EncodeToString(append(slices.Clone(k), 0))
				return nil
			}
			var s MessageSummary
			if err := json.Unmarshal(v, &s); err != nil {
				continue
			}
			if !q.matches(&s, rcpt, text) {
				continue
			}
			if len(page) == limit {
				next = base64.RawURLEncoding.EncodeToString(append(slices.Clone(k), 0))
				return nil
			}
			page = append(page, s)
		}
		return nil
	})
	if err != nil {
		return nil, "", fmt.Errorf("admin: activity: messages: %w", err)
	}
	return page, next, nil
}

func (q *Query) matches(s *MessageSummary, rcpt, text string) bool {
	if q.Status != "" && s.Status != q.Status && (q.Status != StatusDead || s.Status != StatusPartial) {
		return false
	}
	if text != "" && !slices.ContainsFunc(append([]string{s.ID, s.StableID, s.MailFrom, s.From, s.Subject, s.MessageID}, s.RcptTo...),
		func(f string) bool { return strings.Contains(strings.ToLower(f), text) }) {
		return false
	}
	if q.Route != "" && !slices.Contains(s.Routes, q.Route) {
		return false
	}
	if rcpt != "" && !slices.ContainsFunc(s.RcptTo, func(r string) bool { return strings.Contains(strings.ToLower(r), rcpt) }) {
		return false
	}
	return true
}

// resolve returns the message id that id names: a message id itself, the
// id of one of its jobs (a webhook delivery's webhook-id), or its stable id
// (the webhook JSON's id).
func resolve(tx *bolt.Tx, id string) string {
	if tx.Bucket(bMsgs).Get([]byte(id)) != nil {
		return id
	}
	if v := tx.Bucket(bJobs).Get([]byte(id)); v != nil {
		return string(v)
	}
	if v := tx.Bucket(bAlias).Get([]byte(id)); v != nil {
		return string(v)
	}
	return id
}

// Message returns everything recorded about one message, or ErrNotFound.
// id is any of the message's ids: its msg_id, its stable id, or the id of
// one of its jobs (the webhook-id of a webhook delivery).
func (a *Activity) Message(id string) (*MessageDetail, error) {
	var rec *msgRecord
	err := a.db.View(func(tx *bolt.Tx) error {
		var err error
		id = resolve(tx, id)
		if rec, err = getRecord(tx, id); err != nil {
			return err
		}
		if v := tx.Bucket(bParsed).Get([]byte(id)); v != nil && rec.Message == nil {
			if err := json.Unmarshal(v, &rec.Message); err != nil {
				return fmt.Errorf("decode message %s: %w", id, err)
			}
		}
		for i := range rec.Jobs {
			j := &rec.Jobs[i]
			v := tx.Bucket(bSent).Get([]byte(j.ID))
			if len(v) < 8 {
				continue
			}
			body := v[8:]
			if len(body) < a.maxSent && json.Valid(body) {
				j.Sent = json.RawMessage(slices.Clone(body))
			} else {
				j.SentText = strings.ToValidUTF8(string(body), "\uFFFD")
				j.SentTruncated = len(body) >= a.maxSent
			}
		}
		return nil
	})
	if errors.Is(err, ErrNotFound) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("admin: activity: message %s: %w", id, err)
	}
	d := rec.MessageDetail
	// The acceptance stays first (clocks of several nodes may disagree);
	// the rest in time order.
	if len(d.Timeline) > 1 {
		slices.SortStableFunc(d.Timeline[1:], func(x, y Event) int { return x.At.Compare(y.At) })
	}
	if _, err := os.Stat(a.rawPath(id)); err == nil {
		d.HasRaw = true
	} else {
		_ = a.db.View(func(tx *bolt.Tx) error {
			d.HasRaw = tx.Bucket(bRawMsg).Get([]byte(id)) != nil
			return nil
		})
	}
	return &d, nil
}

// safeName matches message IDs usable as file names as they are.
var safeName = regexp.MustCompile(`^[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}$`)

// rawPath is where the raw copy of message id is kept.
func (a *Activity) rawPath(id string) string {
	name := id
	if !safeName.MatchString(id) {
		sum := sha256.Sum256([]byte(id))
		name = "h-" + hex.EncodeToString(sum[:])
	}
	return filepath.Join(a.rawDir, name+".eml")
}

// KeepRaw keeps the raw message at rawPath as the message's raw source, so
// it stays inspectable after the queue deletes its own copy. It hard-links
// the file (no copy, no extra space while the queue holds it) and copies it
// when a link is impossible (another file system). Call it before the queue
// commit moves or removes the file.
func (a *Activity) KeepRaw(msgID, rawPath string) error {
	if msgID == "" || rawPath == "" {
		return errors.New("admin: activity: keep raw: empty message id or path")
	}
	dst := a.rawPath(msgID)
	tmp := dst + ".tmp-" + rand.Text()[:10]
	if err := os.Link(rawPath, tmp); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("admin: activity: keep raw %s: %w", msgID, err)
		}
		if err := safefile.Copy(rawPath, tmp); err != nil {
			return fmt.Errorf("admin: activity: keep raw %s: %w", msgID, err)
		}
	}
	if err := os.Rename(tmp, dst); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("admin: activity: keep raw %s: %w", msgID, err)
	}
	return nil
}

// OpenRaw opens the kept raw source of a message, or returns ErrNotFound.
func (a *Activity) OpenRaw(id string) (io.ReadCloser, error) {
	var raw []byte
	if err := a.db.View(func(tx *bolt.Tx) error {
		raw = bytes.Clone(tx.Bucket(bRawMsg).Get([]byte(id)))
		return nil
	}); err != nil {
		return nil, fmt.Errorf("admin: activity: open raw %s: %w", id, err)
	}
	if raw != nil {
		return io.NopCloser(bytes.NewReader(raw)), nil
	}
	f, err := os.Open(a.rawPath(id))
	if errors.Is(err, os.ErrNotExist) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("admin: activity: open raw %s: %w", id, err)
	}
	return f, nil
}

// seriesCell holds one minute's counters.
type seriesCell struct {
	Accepted  int `json:"a,omitempty"`
	Refused   int `json:"r,omitempty"`
	Delivered int `json:"d,omitempty"`
	Failed    int `json:"f,omitempty"`
	// Depth is the largest queue depth sampled in the minute; Samples
	// counts samples (0: no depth known).
	Depth   int `json:"q,omitempty"`
	Samples int `json:"n,omitempty"`
}

func minuteKey(t time.Time) []byte {
	var k [8]byte
	m := t.Unix() / 60
	if m < 0 {
		m = 0
	}
	binary.BigEndian.PutUint64(k[:], uint64(m))
	return k[:]
}

func bumpSeries(tx *bolt.Tx, t time.Time, fn func(*seriesCell)) error {
	bk := tx.Bucket(bSeries)
	k := minuteKey(t)
	var c seriesCell
	if v := bk.Get(k); v != nil {
		_ = json.Unmarshal(v, &c) // a broken cell restarts at zero
	}
	fn(&c)
	b, err := json.Marshal(c)
	if err != nil {
		return err
	}
	return bk.Put(k, b)
}

// SampleQueue records a queue depth sample (jobs waiting or in flight) for
// the depth chart.
func (a *Activity) SampleQueue(depth int) error {
	err := a.db.Batch(func(tx *bolt.Tx) error {
		return bumpSeries(tx, a.now(), func(c *seriesCell) {
			c.Depth = max(c.Depth, depth)
			c.Samples++
		})
	})
	if err != nil {
		return fmt.Errorf("admin: activity: sample queue: %w", err)
	}
	return nil
}

// Point is one step of a time series.
type Point struct {
	At        time.Time `json:"t"`
	Accepted  int       `json:"accepted"`
	Refused   int       `json:"refused"`
	Delivered int       `json:"delivered"`
	Failed    int       `json:"failed"`
	// QueueDepth is the largest depth sampled in the step; nil when there
	// was no sample.
	QueueDepth *int `json:"queue_depth"`
}

// Series returns counters from since to now in steps of step (rounded to
// whole minutes, at least one): messages accepted and refused, attempts
// delivered and failed, and the queue depth. Every step is present, empty
// ones with zeros. At most 10080 points are returned.
func (a *Activity) Series(since time.Time, step time.Duration) ([]Point, error) {
	step = max(step.Truncate(time.Minute), time.Minute)
	now := a.now()
	since = since.Truncate(time.Minute)
	if n := now.Sub(since) / step; n > 10080 {
		since = now.Add(-10080 * step).Truncate(time.Minute)
	}
	var pts []Point
	for t := since; !t.After(now); t = t.Add(step) {
		pts = append(pts, Point{At: t.UTC()})
	}
	err := a.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bSeries).Cursor()
		end := minuteKey(now)
		for k, v := c.Seek(minuteKey(since)); k != nil && len(k) == 8 && string(k) <= string(end); k, v = c.Next() {
			t := time.Unix(int64(binary.BigEndian.Uint64(k))*60, 0)
			i := int(t.Sub(since) / step)
			if i < 0 || i >= len(pts) {
				continue
			}
			var cell seriesCell
			if json.Unmarshal(v, &cell) != nil {
				continue
			}
			p := &pts[i]
			p.Accepted += cell.Accepted
			p.Refused += cell.Refused
			p.Delivered += cell.Delivered
			p.Failed += cell.Failed
			if cell.Samples > 0 {
				if p.QueueDepth == nil {
					p.QueueDepth = new(int)
				}
				*p.QueueDepth = max(*p.QueueDepth, cell.Depth)
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("admin: activity: series: %w", err)
	}
	return pts, nil
}

// PurgeInterval is how often Purge runs its sweep.
const PurgeInterval = 10 * time.Minute

// Purge deletes, every PurgeInterval until ctx is done, the records and raw
// copies older than the retention (PurgeOnce). It touches only the
// activity store: never mailboxes, never the queue. It returns ctx's error.
func (a *Activity) Purge(ctx context.Context) error {
	t := time.NewTicker(PurgeInterval)
	defer t.Stop()
	for {
		a.purgeSafely()
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}

func (a *Activity) purgeSafely() {
	defer func() {
		if v := recover(); v != nil {
			a.log.Error("activity purge panicked", "panic", v, "stack", string(debug.Stack()))
		}
	}()
	n, err := a.PurgeOnce()
	if err != nil {
		a.log.Error("activity purge failed", "err", err)
		return
	}
	if n > 0 {
		a.log.Info("activity purged", "messages", n, "retention", a.retention.String())
	}
}

// purgeBatch bounds the records deleted in one transaction, so a purge
// never holds the write lock for long.
const purgeBatch = 500

// PurgeOnce deletes everything older than the retention and returns how
// many messages went.
func (a *Activity) PurgeOnce() (int, error) {
	now := a.now()
	cutoff := now.Add(-a.retention)
	total := 0
	for {
		var raws []string
		n := 0
		err := a.db.Update(func(tx *bolt.Tx) error {
			raws, n = nil, 0
			limit := timeKey(cutoff, "")
			c := tx.Bucket(bIndex).Cursor()
			var keys [][]byte
			for k, _ := c.First(); k != nil && string(k) < string(limit) && len(keys) < purgeBatch; k, _ = c.Next() {
				keys = append(keys, slices.Clone(k))
			}
			for _, k := range keys {
				id := string(k[8:])
				if rec, err := getRecord(tx, id); err == nil {
					for _, j := range rec.Jobs {
						tx.Bucket(bJobs).Delete([]byte(j.ID))
						tx.Bucket(bSent).Delete([]byte(j.ID))
					}
					if rec.StableID != "" {
						tx.Bucket(bAlias).Delete([]byte(rec.StableID))
					}
				}
				if err := tx.Bucket(bMsgs).Delete([]byte(id)); err != nil {
					return err
				}
				if err := tx.Bucket(bParsed).Delete([]byte(id)); err != nil {
					return err
				}
				if err := tx.Bucket(bRawMsg).Delete([]byte(id)); err != nil {
					return err
				}
				if err := tx.Bucket(bIndex).Delete(k); err != nil {
					return err
				}
				raws = append(raws, a.rawPath(id))
				n++
			}
			if n < purgeBatch {
				// The last batch: sweep the smaller buckets too.
				if err := deleteBefore(tx.Bucket(bRefused), limit); err != nil {
					return err
				}
				if err := deleteBefore(tx.Bucket(bSeries), minuteKey(cutoff)); err != nil {
					return err
				}
				if err := purgeClaims(tx.Bucket(bClaims), now); err != nil {
					return err
				}
				return purgeSent(tx.Bucket(bSent), cutoff)
			}
			return nil
		})
		if err != nil {
			return total, fmt.Errorf("admin: activity: purge: %w", err)
		}
		for _, p := range raws {
			if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
				a.log.Warn("activity purge: remove raw copy", "path", p, "err", err)
			}
		}
		total += n
		if n < purgeBatch {
			break
		}
	}
	a.sweepRaw(cutoff)
	return total, nil
}

func deleteBefore(bk *bolt.Bucket, limit []byte) error {
	c := bk.Cursor()
	for k, _ := c.First(); k != nil && string(k) < string(limit); k, _ = c.First() {
		if err := c.Delete(); err != nil {
			return err
		}
	}
	return nil
}

// purgeSent removes bodies whose job's message record is gone or was never
// made (RecordSent for a job RecordAccepted never saw).
func purgeSent(bk *bolt.Bucket, cutoff time.Time) error {
	var old [][]byte
	c := bk.Cursor()
	for k, v := c.First(); k != nil; k, v = c.Next() {
		if len(v) < 8 || time.Unix(0, int64(binary.BigEndian.Uint64(v))).Before(cutoff) {
			old = append(old, slices.Clone(k))
		}
	}
	for _, k := range old {
		if err := bk.Delete(k); err != nil {
			return err
		}
	}
	return nil
}

// sweepRaw removes raw copies older than the retention that no record
// removed: KeepRaw for a message that was never recorded, or a crash
// between a record's deletion and its file's.
func (a *Activity) sweepRaw(cutoff time.Time) {
	entries, err := os.ReadDir(a.rawDir)
	if err != nil {
		a.log.Warn("activity purge: read raw dir", "err", err)
		return
	}
	for _, e := range entries {
		info, err := e.Info()
		if err != nil || !info.Mode().IsRegular() {
			continue
		}
		// A hard link keeps the received file's time; an hour of grace
		// leaves stragglers to the record purge.
		if info.ModTime().Before(cutoff.Add(-time.Hour)) {
			p := filepath.Join(a.rawDir, e.Name())
			if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
				a.log.Warn("activity purge: remove raw copy", "path", p, "err", err)
			}
		}
	}
}

// SampleQueueEvery records the queue depth (ready, scheduled and leased
// jobs) with SampleQueue every interval until ctx is done; it returns ctx's
// error. Failures are logged and sampling goes on.
func (a *Activity) SampleQueueEvery(ctx context.Context, every time.Duration, stats func(context.Context) (deliver.Stats, error)) error {
	if every <= 0 {
		every = 15 * time.Second
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		func() {
			defer func() {
				if v := recover(); v != nil {
					a.log.Error("queue sampler panicked", "panic", v, "stack", string(debug.Stack()))
				}
			}()
			st, err := stats(ctx)
			if err == nil {
				err = a.SampleQueue(st.Ready + st.Scheduled + st.Leased)
			}
			if err != nil && ctx.Err() == nil {
				a.log.Warn("queue depth sample failed", "err", err)
			}
		}()
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}
