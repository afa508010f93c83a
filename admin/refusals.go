package admin

// Refusals in the SMTP dialogue: recorded, and listed newest first.

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/mailhook/mailhook/internal/clip"
)

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
	return a.db.c.add(&writeOp{what: "record refused", size: len(b), fn: func(w *wbatch, _ *writeOp) error {
		bk := w.tx.Bucket(bRefused)
		seq, err := bk.NextSequence()
		if err != nil {
			return err
		}
		var s [8]byte
		binary.BigEndian.PutUint64(s[:], seq)
		if err := bk.Put(timeKey(ev.At, string(s[:])), b); err != nil {
			return err
		}
		w.series(ev.At, func(c *seriesCell) { c.Refused++ })
		return nil
	}})
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
