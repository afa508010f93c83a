package admin

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	bolt "go.etcd.io/bbolt"

	"github.com/mailhook/mailhook/deliver"
	"github.com/mailhook/mailhook/inbound"
	"github.com/mailhook/mailhook/parse"
)

func ids(page []MessageSummary) []string {
	var s []string
	for _, m := range page {
		s = append(s, m.ID)
	}
	return s
}

func TestActivityQuery(t *testing.T) {
	c := newClock()
	a := openActivity(t, c.Now)
	t0 := c.Now().Add(-time.Hour)
	for i := range 7 {
		rcpt, rt := "support@example.test", "tickets"
		if i%2 == 1 {
			rcpt, rt = "sales@example.test", "people"
		}
		accept(t, nil, a, mailOpts{id: fmt.Sprintf("m%d", i), rcpt: rcpt, route: rt, received: t0.Add(time.Duration(i) * time.Minute)})
	}
	// m3 is delivered.
	j := &deliver.Job{ID: "m3-w", MsgID: "m3", Kind: deliver.KindWebhook, Target: "tickets-hook"}
	if err := a.RecordAttempt(j, deliver.Attempt{At: c.Now(), Status: 200}, deliver.SettleDelivered); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name string
		q    Query
		want []string
	}{
		{"all newest first", Query{}, []string{"m6", "m5", "m4", "m3", "m2", "m1", "m0"}},
		{"rcpt", Query{Rcpt: "SALES@"}, []string{"m5", "m3", "m1"}},
		{"route", Query{Route: "tickets"}, []string{"m6", "m4", "m2", "m0"}},
		{"status delivered", Query{Status: StatusDelivered}, []string{"m3"}},
		{"status queued", Query{Status: StatusQueued, Rcpt: "sales"}, []string{"m5", "m1"}},
		{"since", Query{Since: t0.Add(4 * time.Minute)}, []string{"m6", "m5", "m4"}},
		{"until", Query{Until: t0.Add(2 * time.Minute)}, []string{"m1", "m0"}},
		{"window", Query{Since: t0.Add(2 * time.Minute), Until: t0.Add(5 * time.Minute)}, []string{"m4", "m3", "m2"}},
		{"none", Query{Route: "nope"}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			page, next, err := a.Messages(tc.q)
			if err != nil {
				t.Fatal(err)
			}
			if got := ids(page); !slices.Equal(got, tc.want) || next != "" {
				t.Fatalf("Messages(%+v) = %v, next %q; want %v, no next", tc.q, got, next, tc.want)
			}
		})
	}

	t.Run("pages", func(t *testing.T) {
		var all []string
		q := Query{Limit: 3, Route: "tickets"}
		pages := 0
		for {
			page, next, err := a.Messages(q)
			if err != nil {
				t.Fatal(err)
			}
			if len(page) > 3 {
				t.Fatalf("page of %d, limit 3", len(page))
			}
			all = append(all, ids(page)...)
			pages++
			if next == "" {
				break
			}
			q.Cursor = next
		}
		if want := []string{"m6", "m4", "m2", "m0"}; !slices.Equal(all, want) || pages != 2 {
			t.Fatalf("paged = %v in %d pages, want %v in 2", all, pages, want)
		}
	})
	t.Run("scan bound", func(t *testing.T) {
		// With a scan bound of 2, a rare filter still walks every page
		// and finds every match, a few entries per call.
		defer func(n int) { maxScan = n }(maxScan)
		maxScan = 2
		var all []string
		q := Query{Status: StatusDelivered}
		calls := 0
		for {
			page, next, err := a.Messages(q)
			if err != nil {
				t.Fatal(err)
			}
			all = append(all, ids(page)...)
			if calls++; next == "" || calls > 20 {
				break
			}
			q.Cursor = next
		}
		if !slices.Equal(all, []string{"m3"}) || calls != 4 {
			t.Fatalf("scan-bounded = %v in %d calls, want [m3] in 4", all, calls)
		}
	})
	t.Run("bad cursor", func(t *testing.T) {
		if _, _, err := a.Messages(Query{Cursor: "!!"}); !errors.Is(err, ErrBadCursor) {
			t.Fatalf("Messages(bad cursor) = %v, want ErrBadCursor", err)
		}
	})
}

func TestActivityStatus(t *testing.T) {
	c := newClock()
	a := openActivity(t, c.Now)
	jobs := []*deliver.Job{
		{ID: "j1", MsgID: "m", Kind: deliver.KindWebhook, Target: "hook", Route: "r"},
		{ID: "j2", MsgID: "m", Kind: deliver.KindRelay, Target: "example.org", Route: "r", Rcpts: []string{"a@example.org"}},
	}
	accept(t, nil, a, mailOpts{id: "m", jobs: jobs})
	status := func() string {
		d, err := a.Message("m")
		if err != nil {
			t.Fatal(err)
		}
		return d.Status
	}
	step := func(j *deliver.Job, code int, outcome deliver.Settlement, want string) {
		t.Helper()
		c.Add(time.Second)
		err := a.RecordAttempt(j, deliver.Attempt{Status: code, Latency: 42 * time.Millisecond, Error: "e", Response: strings.Repeat("x", 2000)}, outcome)
		if err != nil {
			t.Fatal(err)
		}
		if got := status(); got != want {
			t.Fatalf("after %s %s: status %q, want %q", j.ID, outcome, got, want)
		}
	}
	if got := status(); got != StatusQueued {
		t.Fatalf("status = %q, want queued", got)
	}
	step(jobs[0], 503, deliver.SettleRetry, StatusRetrying)
	step(jobs[1], 250, deliver.SettleDelivered, StatusRetrying)
	step(jobs[0], 410, deliver.SettleDead, StatusPartial)
	if err := a.RecordReplayed("j1"); err != nil {
		t.Fatal(err)
	}
	if got := status(); got != StatusQueued {
		t.Fatalf("after replay: %q, want queued", got)
	}
	step(jobs[0], 200, deliver.SettleDelivered, StatusDelivered)

	d, _ := a.Message("m")
	if n := len(d.Jobs[0].Attempts); n != 3 {
		t.Fatalf("j1 attempts = %d, want 3", n)
	}
	at := d.Jobs[0].Attempts[0]
	if at.Status != 503 || at.StatusClass != "5xx" || at.LatencyMS != 42 || len(at.Response) != maxResponse || at.Outcome != string(deliver.SettleRetry) {
		t.Fatalf("attempt = %+v", at)
	}
	var types []string
	for _, ev := range d.Timeline {
		types = append(types, ev.Type)
	}
	if want := []string{"accepted", "attempt", "attempt", "attempt", "replayed", "attempt"}; !slices.Equal(types, want) {
		t.Fatalf("timeline = %v, want %v", types, want)
	}
	if err := a.RecordAttempt(jobs[0], deliver.Attempt{}, "bogus"); err == nil {
		t.Fatal("RecordAttempt(bogus outcome) = nil")
	}

	t.Run("messageStatus", func(t *testing.T) {
		for _, tc := range []struct {
			jobs []string
			want string
		}{
			{nil, StatusDropped},
			{[]string{StatusDead, StatusDead}, StatusDead},
			{[]string{jobDropped}, StatusDropped},
			{[]string{jobDropped, StatusDead}, StatusDead},
			{[]string{StatusDelivered, jobDropped}, StatusPartial},
			{[]string{StatusQueued, StatusDelivered}, StatusQueued},
		} {
			var js []JobRecord
			for _, s := range tc.jobs {
				js = append(js, JobRecord{Status: s})
			}
			if got := messageStatus(js); got != tc.want {
				t.Errorf("messageStatus(%v) = %q, want %q", tc.jobs, got, tc.want)
			}
		}
	})
}

// A worker may finish a job before the acceptance is recorded.
func TestActivityAttemptBeforeAccepted(t *testing.T) {
	c := newClock()
	a := openActivity(t, c.Now)
	j := &deliver.Job{ID: "m-w", MsgID: "m", Kind: deliver.KindWebhook, Target: "tickets-hook", Route: "tickets", CreatedAt: c.Now()}
	if err := a.RecordAttempt(j, deliver.Attempt{Status: 204}, deliver.SettleDelivered); err != nil {
		t.Fatal(err)
	}
	accept(t, nil, a, mailOpts{id: "m", received: c.Now()})
	d, err := a.Message("m")
	if err != nil {
		t.Fatal(err)
	}
	if d.Status != StatusDelivered || len(d.Jobs) != 1 || len(d.Jobs[0].Attempts) != 1 || d.Subject != "hello m" {
		t.Fatalf("merged = status %q, jobs %+v, subject %q", d.Status, d.Jobs, d.Subject)
	}
	page, _, _ := a.Messages(Query{})
	if len(page) != 1 {
		t.Fatalf("index holds %d entries, want 1", len(page))
	}
	pts, _ := a.Series(c.Now().Add(-time.Minute), time.Minute)
	acc := 0
	for _, p := range pts {
		acc += p.Accepted
	}
	if acc != 1 {
		t.Fatalf("accepted in series = %d, want 1", acc)
	}
}

func TestActivityKeepRawAndPurge(t *testing.T) {
	c := newClock()
	a := openActivity(t, c.Now)
	q := openQueue(t, nil)
	mail, jobs := accept(t, q, a, mailOpts{id: "old"})
	// The queue moved its file; the activity copy is a hard link to it.
	st, err := q.Stats(t.Context())
	if err != nil || st.Ready != 1 {
		t.Fatalf("queue stats = %+v, %v", st, err)
	}
	qraw, err := q.OpenRaw(t.Context(), "old")
	if err != nil {
		t.Fatal(err)
	}
	qf := qraw.(*os.File)
	defer qf.Close()
	af, err := a.OpenRaw("old")
	if err != nil {
		t.Fatal(err)
	}
	fi1, _ := qf.Stat()
	fi2, _ := af.(*os.File).Stat()
	af.Close()
	if !os.SameFile(fi1, fi2) {
		t.Fatalf("activity raw copy is not a hard link of the queue's file")
	}
	if err := a.RecordSent(jobs[0].ID, []byte(`{"type":"message.received"}`)); err != nil {
		t.Fatal(err)
	}
	d, err := a.Message("old")
	if err != nil || !d.HasRaw || string(d.Jobs[0].Sent) != `{"type":"message.received"}` {
		t.Fatalf("Message = %+v, %v", d, err)
	}
	// The queue delivers and deletes its copy: the activity copy stays.
	taken, _ := q.Take(t.Context(), deliver.Kinds, 1, time.Minute)
	if err := q.Ack(t.Context(), taken[0]); err != nil {
		t.Fatal(err)
	}
	rc, err := a.OpenRaw(mail.ID)
	if err != nil {
		t.Fatalf("OpenRaw after the queue's ack = %v", err)
	}
	b, _ := io.ReadAll(rc)
	rc.Close()
	if !strings.Contains(string(b), "Subject: hello old") {
		t.Fatalf("raw = %q", b)
	}
	if err := a.RecordRefused(Refused{RemoteIP: "192.0.2.9", Code: 550, Enhanced: "5.1.1", Reason: "unknown_user", Stage: "rcpt"}); err != nil {
		t.Fatal(err)
	}
	// A message still in the queue when its activity record expires.
	accept(t, q, a, mailOpts{id: "slow"})
	// A raw copy whose message was never recorded.
	stray := filepath.Join(t.TempDir(), "stray.eml")
	os.WriteFile(stray, []byte("x"), 0o600)
	if err := a.KeepRaw("stray", stray); err != nil {
		t.Fatal(err)
	}
	old := c.Now().Add(-2 * time.Hour)
	os.Chtimes(a.rawPath("stray"), old, old)

	c.Add(DefaultRetention - time.Minute)
	accept(t, nil, a, mailOpts{id: "new", received: c.Now()})
	if n, err := a.PurgeOnce(); err != nil || n != 0 {
		t.Fatalf("PurgeOnce before retention = %d, %v; want 0", n, err)
	}
	c.Add(2 * time.Minute)
	if n, err := a.PurgeOnce(); err != nil || n != 2 {
		t.Fatalf("PurgeOnce = %d, %v; want 2", n, err)
	}
	// The purge never touches the queue: its copy of "slow" is intact.
	if rc, err := q.OpenRaw(t.Context(), "slow"); err != nil {
		t.Fatalf("queue raw after the activity purge: %v", err)
	} else {
		b, _ := io.ReadAll(rc)
		rc.Close()
		if !strings.Contains(string(b), "hello slow") {
			t.Fatalf("queue raw = %q", b)
		}
	}
	if st, _ := q.Stats(t.Context()); st.Ready != 1 {
		t.Fatalf("queue after purge = %+v", st)
	}
	if _, err := a.Message("old"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Message(old) after purge = %v, want ErrNotFound", err)
	}
	if _, err := a.OpenRaw("old"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("OpenRaw(old) after purge = %v, want ErrNotFound", err)
	}
	if _, err := os.Stat(a.rawPath("stray")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("stray raw copy after purge: %v", err)
	}
	if _, err := a.Message("new"); err != nil {
		t.Fatalf("Message(new) after purge = %v", err)
	}
	if r, _ := a.Refusals(time.Time{}, 10); len(r) != 0 {
		t.Fatalf("refusals after purge = %v", r)
	}
	if err := a.db.View(func(tx *bolt.Tx) error {
		if v := tx.Bucket(bSent).Get([]byte(jobs[0].ID)); v != nil {
			return errors.New("sent body survived the purge")
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}

func TestActivityKeepRawSpecialIDs(t *testing.T) {
	a := openActivity(t, nil)
	src := filepath.Join(t.TempDir(), "m.eml")
	os.WriteFile(src, []byte("raw"), 0o600)
	for _, id := range []string{"../../etc/passwd", "a/b", ".hidden", strings.Repeat("x", 400)} {
		if err := a.KeepRaw(id, src); err != nil {
			t.Fatalf("KeepRaw(%q) = %v", id, err)
		}
		if p := a.rawPath(id); filepath.Dir(p) != a.rawDir {
			t.Fatalf("rawPath(%q) = %s, outside %s", id, p, a.rawDir)
		}
		f, err := a.OpenRaw(id)
		if err != nil {
			t.Fatalf("OpenRaw(%q) = %v", id, err)
		}
		f.Close()
	}
	// Keeping again replaces the copy.
	if err := a.KeepRaw("a/b", src); err != nil {
		t.Fatal(err)
	}
	if err := a.KeepRaw("gone", filepath.Join(t.TempDir(), "missing")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("KeepRaw(missing file) = %v, want not exist", err)
	}
	// The copy fallback (for another file system) is safefile.Copy,
	// tested there.
}

func TestActivitySentBounded(t *testing.T) {
	a, err := OpenActivity(t.TempDir(), ActivityOptions{MaxSentBytes: 64})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	accept(t, nil, a, mailOpts{id: "m"})
	big := `{"text":"` + strings.Repeat("y", 1000) + `"}`
	if err := a.RecordSent("m-w", []byte(big)); err != nil {
		t.Fatal(err)
	}
	d, _ := a.Message("m")
	j := d.Jobs[0]
	if j.Sent != nil || !j.SentTruncated || len(j.SentText) != 64 {
		t.Fatalf("sent = %q / %q truncated %v", j.Sent, j.SentText, j.SentTruncated)
	}
}

// TestRecordAttemptSettlements: every way the Runner settles an attempt
// is recorded (an unknown one was refused, and the warning was logged at
// every shutdown for the jobs released then). A released job is queued
// again.
func TestRecordAttemptSettlements(t *testing.T) {
	c := newClock()
	a := openActivity(t, c.Now)
	want := map[deliver.Settlement]string{
		deliver.SettleDelivered: StatusDelivered,
		deliver.SettleRetry:     StatusRetrying,
		deliver.SettleDead:      StatusDead,
		deliver.SettleReleased:  StatusQueued,
	}
	for _, how := range deliver.Settlements {
		id := "m-" + string(how)
		j := &deliver.Job{ID: id + "-w", MsgID: id, Kind: deliver.KindWebhook, Target: "hook", Route: "r"}
		accept(t, nil, a, mailOpts{id: id, jobs: []*deliver.Job{j}})
		if err := a.RecordAttempt(j, deliver.Attempt{Error: "x"}, how); err != nil {
			t.Fatalf("RecordAttempt(%s) = %v", how, err)
		}
		d, err := a.Message(id)
		if err != nil {
			t.Fatal(err)
		}
		got := d.Jobs[0]
		if got.Status != want[how] || len(got.Attempts) != 1 || got.Attempts[0].Outcome != string(how) {
			t.Errorf("after %s: job %+v, want status %q and the attempt recorded", how, got, want[how])
		}
	}
}

func TestActivitySeries(t *testing.T) {
	c := newClock()
	c.t = c.t.Truncate(time.Hour).Add(30 * time.Minute)
	a := openActivity(t, c.Now)
	start := c.Now()
	accept(t, nil, a, mailOpts{id: "a1", received: c.Now()})
	accept(t, nil, a, mailOpts{id: "a2", received: c.Now()})
	a.RecordRefused(Refused{Reason: "relay_denied"})
	a.SampleQueue(5)
	a.SampleQueue(3)
	c.Add(3 * time.Minute)
	j := &deliver.Job{ID: "a1-w", MsgID: "a1", Kind: deliver.KindWebhook}
	a.RecordAttempt(j, deliver.Attempt{Status: 500}, deliver.SettleRetry)
	a.RecordAttempt(j, deliver.Attempt{}, deliver.SettleReleased) // neither delivered nor failed
	a.RecordAttempt(j, deliver.Attempt{Status: 200}, deliver.SettleDelivered)
	a.SampleQueue(1)

	pts, err := a.Series(start.Add(-2*time.Minute), 2*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	type row struct{ acc, ref, del, fail, depth int }
	var got []row
	for _, p := range pts {
		r := row{p.Accepted, p.Refused, p.Delivered, p.Failed, -1}
		if p.QueueDepth != nil {
			r.depth = *p.QueueDepth
		}
		got = append(got, r)
	}
	want := []row{{0, 0, 0, 0, -1}, {2, 1, 0, 0, 5}, {0, 0, 1, 1, 1}}
	if !slices.Equal(got, want) {
		t.Fatalf("Series = %+v, want %+v", got, want)
	}
	b, _ := json.Marshal(pts[0])
	if !strings.Contains(string(b), `"queue_depth":null`) {
		t.Fatalf("empty point JSON = %s", b)
	}
}

func TestActivityConcurrent(t *testing.T) {
	a := openActivity(t, nil)
	var jobs []*deliver.Job
	for i := range 4 {
		jobs = append(jobs, &deliver.Job{ID: fmt.Sprintf("j%d", i), MsgID: "m", Kind: deliver.KindWebhook, Target: "h", Route: "r"})
	}
	accept(t, nil, a, mailOpts{id: "m", jobs: jobs})
	var wg sync.WaitGroup
	const per = 20
	for _, j := range jobs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range per {
				if err := a.RecordAttempt(j, deliver.Attempt{Status: 503}, deliver.SettleRetry); err != nil {
					t.Error(err)
				}
			}
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for range per {
			if _, _, err := a.Messages(Query{}); err != nil {
				t.Error(err)
			}
			accept(t, nil, a, mailOpts{id: fmt.Sprintf("x%d", time.Now().UnixNano())})
		}
	}()
	wg.Wait()
	d, err := a.Message("m")
	if err != nil || len(d.Jobs) != len(jobs) {
		t.Fatalf("Message(m) = %+v, %v; want %d jobs", d, err, len(jobs))
	}
	for _, j := range d.Jobs {
		if len(j.Attempts) != per {
			t.Fatalf("job %s has %d attempts, want %d", j.ID, len(j.Attempts), per)
		}
	}
}

func TestTrimMessage(t *testing.T) {
	mail, _ := accept(t, nil, nil, mailOpts{id: "m", raw: newFixture(t).raw})
	m := mail.Message
	m.Text = strings.Repeat("é", maxBodyText) // 2 bytes each
	m.Attachments[len(m.Attachments)-1].Content = "AAAA"
	c, cut := trimMessage(m)
	if len(c.Text) > maxBodyText || !utf8.ValidString(c.Text) || !slices.Contains(cut, "message.text") {
		t.Fatalf("trimmed text %d bytes, cut %v", len(c.Text), cut)
	}
	for _, at := range c.Attachments {
		if at.Content != "" {
			t.Fatalf("attachment content kept: %+v", at)
		}
	}
	if m.Attachments[len(m.Attachments)-1].Content != "AAAA" {
		t.Fatal("trimMessage changed its argument")
	}
}

func TestActivityLoops(t *testing.T) {
	c := newClock()
	a := openActivity(t, c.Now)
	accept(t, nil, a, mailOpts{id: "old", received: c.Now()})
	c.Add(DefaultRetention + time.Hour)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	// Both loops do their work once, then see ctx is done.
	if err := a.Purge(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Purge = %v, want context.Canceled", err)
	}
	if _, err := a.Message("old"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Message(old) after Purge = %v", err)
	}
	stats := func(context.Context) (deliver.Stats, error) {
		return deliver.Stats{Ready: 2, Scheduled: 3, Leased: 1, Dead: 7}, nil
	}
	if err := a.SampleQueueEvery(ctx, time.Hour, stats); !errors.Is(err, context.Canceled) {
		t.Fatalf("SampleQueueEvery = %v", err)
	}
	pts, _ := a.Series(c.Now().Add(-time.Minute), time.Minute)
	last := pts[len(pts)-1]
	if last.QueueDepth == nil || *last.QueueDepth != 6 {
		t.Fatalf("sampled depth = %v, want 6 (dead letters not counted)", last.QueueDepth)
	}
	// A panicking stats function is recovered and logged.
	if err := a.SampleQueueEvery(ctx, time.Hour, func(context.Context) (deliver.Stats, error) { panic("boom") }); !errors.Is(err, context.Canceled) {
		t.Fatalf("SampleQueueEvery(panic) = %v", err)
	}
}

// TestActivityParsedApart checks that the parsed message is kept apart from
// the record attempts rewrite, that records written with it inline (before
// bParsed) still show it and keep it through an attempt, and that a purge
// removes it.
func TestActivityParsedApart(t *testing.T) {
	clk := newClock()
	a := openActivity(t, clk.Now)
	mail, jobs := accept(t, nil, a, mailOpts{id: "m1", received: clk.Now()})
	var inline bool
	a.db.View(func(tx *bolt.Tx) error {
		inline = !strings.Contains(string(tx.Bucket(bMsgs).Get([]byte("m1"))), `"message":null`)
		return nil
	})
	if inline {
		t.Fatal("record holds the parsed message inline")
	}
	// An older record: the message inline, nothing in bParsed.
	err := a.db.Update(func(tx *bolt.Tx) error {
		rec, err := getRecord(tx, "m1")
		if err != nil {
			return err
		}
		rec.Message = mail.Message
		b, _ := json.Marshal(rec)
		if err := tx.Bucket(bParsed).Delete([]byte("m1")); err != nil {
			return err
		}
		return tx.Bucket(bMsgs).Put([]byte("m1"), b)
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := a.RecordAttempt(jobs[0], deliver.Attempt{Status: 200}, deliver.SettleDelivered); err != nil {
		t.Fatal(err)
	}
	d, err := a.Message("m1")
	if err != nil || d.Message == nil || d.Message.Subject != "hello m1" || d.Subject != "hello m1" || d.Status != StatusDelivered {
		t.Fatalf("Message = %+v, %v", d, err)
	}
	accept(t, nil, a, mailOpts{id: "m2", received: clk.Now()})
	clk.Add(a.Retention() + time.Minute)
	if n, err := a.PurgeOnce(); n != 2 || err != nil {
		t.Fatalf("PurgeOnce = %d, %v", n, err)
	}
	a.db.View(func(tx *bolt.Tx) error {
		if k, _ := tx.Bucket(bParsed).Cursor().First(); k != nil {
			t.Errorf("bParsed still holds %q after the purge", k)
		}
		return nil
	})
}

// TestActivityRawHeldInMemory: a message that never had a file (inbound.Mail.Raw)
// has its raw copy kept by RecordAccepted, served by OpenRaw and purged
// with its record.
func TestActivityRawHeldInMemory(t *testing.T) {
	c := newClock()
	a := openActivity(t, c.Now)
	raw := "From: alice@example.org\r\nSubject: in memory\r\n\r\nHi.\r\n"
	mail := &inbound.Mail{ID: "mem", ReceivedAt: c.Now(), Raw: []byte(raw), RawSize: int64(len(raw))}
	if err := a.RecordAccepted(mail, nil, nil); err != nil {
		t.Fatal(err)
	}
	rc, err := a.OpenRaw("mem")
	if err != nil {
		t.Fatalf("OpenRaw = %v", err)
	}
	b, _ := io.ReadAll(rc)
	rc.Close()
	if string(b) != raw {
		t.Fatalf("OpenRaw = %q, want %q", b, raw)
	}
	if d, err := a.Message("mem"); err != nil || !d.HasRaw {
		t.Fatalf("Message = %+v, %v; want HasRaw", d, err)
	}
	c.Add(DefaultRetention + time.Hour)
	if n, err := a.PurgeOnce(); err != nil || n != 1 {
		t.Fatalf("PurgeOnce = %d, %v; want 1", n, err)
	}
	if _, err := a.OpenRaw("mem"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("OpenRaw after purge = %v, want ErrNotFound", err)
	}
}

// TestRecordAttemptKeepsBody: the body an attempt sent is the job's sent
// body, recorded with the attempt, and the last attempt's wins.
func TestRecordAttemptKeepsBody(t *testing.T) {
	clk := newClock()
	a := openActivity(t, clk.Now)
	_, jobs := accept(t, nil, a, mailOpts{id: "m1", received: clk.Now()})
	for i, body := range []string{`{"try":1}`, `{"try":2}`} {
		out := deliver.SettleRetry
		if i == 1 {
			out = deliver.SettleDelivered
		}
		if err := a.RecordAttempt(jobs[0], deliver.Attempt{Status: 500, Body: []byte(body)}, out); err != nil {
			t.Fatal(err)
		}
		d, err := a.Message("m1")
		if err != nil || string(d.Jobs[0].Sent) != body {
			t.Fatalf("after attempt %d: sent = %s, %v; want %s", i+1, d.Jobs[0].Sent, err, body)
		}
	}
}

// TestActivityKeepLinked: a message held in memory whose attachments have
// URLs has its raw copy at once, before RecordAccepted; one without URLs
// waits for RecordAccepted.
func TestActivityKeepLinked(t *testing.T) {
	a := openActivity(t, nil)
	raw := "Subject: x\r\n\r\nHi.\r\n"
	msg := &parse.Message{Attachments: []parse.Attachment{{Filename: "big.bin", Size: 8192, URL: "https://mx.example.test/attachments/linked/0"}}}
	if err := a.KeepLinked(&inbound.Mail{ID: "linked", Raw: []byte(raw), Message: msg}); err != nil {
		t.Fatal(err)
	}
	rc, err := a.OpenRaw("linked")
	if err != nil {
		t.Fatalf("OpenRaw before RecordAccepted = %v", err)
	}
	b, _ := io.ReadAll(rc)
	rc.Close()
	if string(b) != raw {
		t.Errorf("OpenRaw = %q, want %q", b, raw)
	}
	if err := a.KeepLinked(&inbound.Mail{ID: "plain", Raw: []byte(raw), Message: &parse.Message{}}); err != nil {
		t.Fatal(err)
	}
	if _, err := a.OpenRaw("plain"); !errors.Is(err, ErrNotFound) {
		t.Errorf("OpenRaw of a message without URLs before RecordAccepted = %v, want ErrNotFound", err)
	}
}

// TestActivityLinkedRawOnce: the raw copy KeepLinked wrote is the one
// kept; RecordAccepted does not store it a second time in the database.
func TestActivityLinkedRawOnce(t *testing.T) {
	a := openActivity(t, nil)
	raw := "Subject: x\r\n\r\nHi.\r\n"
	m := &inbound.Mail{ID: "linked", ReceivedAt: time.Now(), Raw: []byte(raw), RawSize: int64(len(raw)),
		Message: &parse.Message{Attachments: []parse.Attachment{{Filename: "big.bin", Size: 8192, URL: "https://mx.example.test/a"}}}}
	if err := a.KeepLinked(m); err != nil {
		t.Fatal(err)
	}
	if err := a.RecordAccepted(m, nil, nil); err != nil {
		t.Fatal(err)
	}
	a.db.View(func(tx *bolt.Tx) error {
		if tx.Bucket(bRawMsg).Get([]byte("linked")) != nil {
			t.Error("the raw copy is kept twice: in its file and in the database")
		}
		return nil
	})
	if d, err := a.Message("linked"); err != nil || !d.HasRaw {
		t.Errorf("Message = %+v, %v; want HasRaw", d, err)
	}
}

// TestSentKeys: a webhook body is kept under its message's id and the job
// id (in time order), shown with the message, and one stored under the
// job id alone by an earlier version is shown too; purging the messages
// removes both, though the bodies were written after the messages and are
// younger than the purge's cutoff (so the sweep by age leaves them).
func TestSentKeys(t *testing.T) {
	c := newClock()
	a := openActivity(t, c.Now)
	accept(t, nil, a, mailOpts{id: "m1"})
	accept(t, nil, a, mailOpts{id: "m2"})
	c.Add(DefaultRetention - 30*time.Minute)
	if err := a.RecordAttempt(&deliver.Job{ID: "m1-w", MsgID: "m1", Kind: deliver.KindWebhook, CreatedAt: c.Now()},
		deliver.Attempt{Status: 200, Body: []byte(`{"id":"one"}`)}, deliver.SettleDelivered); err != nil {
		t.Fatal(err)
	}
	// An earlier version's key, written now.
	legacy := binary.BigEndian.AppendUint64(nil, uint64(c.Now().UnixNano()))
	if err := a.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bSent).Put([]byte("m2-w"), append(legacy, `{"id":"two"}`...))
	}); err != nil {
		t.Fatal(err)
	}
	for id, want := range map[string]string{"m1": `{"id":"one"}`, "m2": `{"id":"two"}`} {
		d, err := a.Message(id)
		if err != nil || len(d.Jobs) == 0 || string(d.Jobs[0].Sent) != want {
			t.Fatalf("Message(%s) = %+v, %v; want sent %s", id, d, err, want)
		}
	}
	var keys []string
	a.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bSent).ForEach(func(k, _ []byte) error { keys = append(keys, string(k)); return nil })
	})
	if !slices.Contains(keys, "m1\x00m1-w") || !slices.Contains(keys, "m2-w") {
		t.Fatalf("sent keys = %q", keys)
	}
	c.Add(time.Hour)
	if n, err := a.PurgeOnce(); err != nil || n != 2 {
		t.Fatalf("PurgeOnce = %d, %v; want both messages purged", n, err)
	}
	keys = nil
	a.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bSent).ForEach(func(k, _ []byte) error { keys = append(keys, string(k)); return nil })
	})
	if len(keys) != 0 {
		t.Fatalf("sent keys after the purge = %q", keys)
	}
}
