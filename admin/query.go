package admin

// Reading the message records: the filtered list (Messages) and one
// message by any of its ids (Message).

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/mailhook/mailhook/deliver"
)

// maxScan bounds the index entries one Messages call examines (a variable
// for tests).
var maxScan = 20000

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
	if v := getID(tx, idxJob, id); v != nil {
		return string(v)
	}
	if v := getID(tx, idxAlias, id); v != nil {
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
			if v, err = deliver.Unpack(v); err != nil {
				return fmt.Errorf("message %s: %w", id, err)
			}
			if rec.Message, err = deliver.DecodeMessage(v); err != nil {
				return fmt.Errorf("decode message %s: %w", id, err)
			}
		}
		for i := range rec.Jobs {
			j := &rec.Jobs[i]
			v := sentBody(tx.Bucket(bSent), id, j.ID)
			if len(v) < 8 {
				continue
			}
			body, err := deliver.Unpack(v[8:])
			if err != nil {
				return fmt.Errorf("sent body of job %s: %w", j.ID, err)
			}
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
