package admin

import (
	"errors"
	"fmt"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/mailhook/mailhook/deliver"
)

// idState reads where id stands: the message id its bucket holds (merged)
// and how many entries the log holds.
func idState(t *testing.T, a *Activity, kind byte, id string) (merged string, logged int) {
	t.Helper()
	err := a.db.View(func(tx *bolt.Tx) error {
		merged = string(tx.Bucket(idxBucket(kind)).Get([]byte(id)))
		logged = tx.Bucket(bIdxLog).Stats().KeyN
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return merged, logged
}

// lookup is getID in a read transaction.
func lookup(t *testing.T, a *Activity, kind byte, id string) string {
	t.Helper()
	var v string
	if err := a.db.View(func(tx *bolt.Tx) error { v = string(getID(tx, kind, id)); return nil }); err != nil {
		t.Fatal(err)
	}
	return v
}

// A message's job id and stable id name it while their entries are in
// the log, after the merge moved them to bJobs and bAlias, and after a
// reopen; the merge empties the log.
func TestIDIndexLogThenMerge(t *testing.T) {
	dir := t.TempDir()
	a, err := OpenActivity(dir, ActivityOptions{Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	_, jobs := accept(t, nil, a, mailOpts{id: "m1", stable: "msg_stable1"})
	check := func(when string) {
		t.Helper()
		for _, id := range []string{jobs[0].ID, "msg_stable1"} {
			if d, err := a.Message(id); err != nil || d.ID != "m1" {
				t.Fatalf("%s: Message(%s) = %v, %v; want m1", when, id, d, err)
			}
		}
		if _, err := a.Message("msg_unknown"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("%s: Message(msg_unknown) = %v, want ErrNotFound", when, err)
		}
	}
	if merged, logged := idState(t, a, idxJob, jobs[0].ID); merged != "" || logged != 2 {
		t.Fatalf("after the record: bucket %q, log %d entries; want the two entries in the log only", merged, logged)
	}
	check("in the log")
	// Replay finds the job through the log too.
	if err := a.RecordReplayed(jobs[0].ID); err != nil {
		t.Fatalf("RecordReplayed before the merge = %v", err)
	}

	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	if a, err = OpenActivity(dir, ActivityOptions{Logger: testLogger(t)}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	check("reopened")

	if err := a.db.Update(mergeIdxLog); err != nil {
		t.Fatal(err)
	}
	for kind, id := range map[byte]string{idxJob: jobs[0].ID, idxAlias: "msg_stable1"} {
		if merged, logged := idState(t, a, kind, id); merged != "m1" || logged != 0 {
			t.Fatalf("after the merge: %s in bucket as %q, log %d entries; want m1 and an empty log", id, merged, logged)
		}
	}
	check("merged")
	// The log starts again after a merge.
	accept(t, nil, a, mailOpts{id: "m2", stable: "msg_stable2"})
	if d, err := a.Message("msg_stable2"); err != nil || d.ID != "m2" {
		t.Fatalf("Message(msg_stable2) = %v, %v", d, err)
	}
}

// An id recorded again names its latest message: in the log over the
// bucket, and among several log entries after the merge.
func TestIDIndexLatestWins(t *testing.T) {
	a := openActivity(t, nil)
	put := func(msgID string) {
		t.Helper()
		err := a.db.Update(func(tx *bolt.Tx) error { return putID(tx, idxJob, "msg_job", msgID) })
		if err != nil {
			t.Fatal(err)
		}
	}
	put("m1")
	if err := a.db.Update(mergeIdxLog); err != nil {
		t.Fatal(err)
	}
	put("m2")
	if got := lookup(t, a, idxJob, "msg_job"); got != "m2" {
		t.Fatalf("merged m1, logged m2: lookup = %q, want m2", got)
	}
	put("m3")
	put("m4")
	if err := a.db.Update(mergeIdxLog); err != nil {
		t.Fatal(err)
	}
	if got, _ := idState(t, a, idxJob, "msg_job"); got != "m4" {
		t.Fatalf("after merging m2, m3, m4: bucket = %q, want m4", got)
	}
	if got := lookup(t, a, idxAlias, "msg_job"); got != "" {
		t.Fatalf("the job id found in the alias index: %q", got)
	}
}

// The committer merges the log by itself once it holds idxMergeAt
// entries, so the log (which lookups read) stays bounded.
func TestIDIndexMergesWhenFull(t *testing.T) {
	a := openActivity(t, nil)
	n := idxMergeAt/2 + 10 // two entries a message: a job and a stable id
	for i := range n {
		id := fmt.Sprintf("m%05d", i)
		job := &deliver.Job{ID: "msg_j" + id, MsgID: id, Kind: deliver.KindWebhook, Target: "tickets-hook", Route: "tickets"}
		mail, _ := accept(t, nil, nil, mailOpts{id: id, stable: "msg_s" + id, jobs: []*deliver.Job{job}})
		if err := a.RecordAccepted(mail, nil, []*deliver.Job{job}); err != nil {
			t.Fatal(err)
		}
	}
	_, logged := idState(t, a, idxJob, "")
	if logged >= idxMergeAt {
		t.Fatalf("log holds %d entries after %d messages; want fewer than %d", logged, n, idxMergeAt)
	}
	first, last := "m00000", fmt.Sprintf("m%05d", n-1)
	if merged, _ := idState(t, a, idxJob, "msg_j"+first); merged != first {
		t.Fatalf("the first message's job is not merged: bucket %q", merged)
	}
	for _, id := range []string{first, last} {
		if got := lookup(t, a, idxAlias, "msg_s"+id); got != id {
			t.Fatalf("stable id of %s names %q", id, got)
		}
	}
}

// A purge finds the index entries of the messages it removes whether they
// were merged or still in the log.
func TestIDIndexPurged(t *testing.T) {
	c := newClock()
	a := openActivity(t, c.Now)
	_, j1 := accept(t, nil, a, mailOpts{id: "m1", stable: "msg_s1", received: c.Now()})
	if err := a.db.Update(mergeIdxLog); err != nil {
		t.Fatal(err)
	}
	_, j2 := accept(t, nil, a, mailOpts{id: "m2", stable: "msg_s2", received: c.Now()})
	c.Add(DefaultRetention + time.Minute)
	if n, err := a.PurgeOnce(); err != nil || n != 2 {
		t.Fatalf("PurgeOnce = %d, %v; want 2", n, err)
	}
	for _, id := range []string{j1[0].ID, "msg_s1", j2[0].ID, "msg_s2"} {
		for _, kind := range []byte{idxJob, idxAlias} {
			if got := lookup(t, a, kind, id); got != "" {
				t.Errorf("%s names %q after the purge", id, got)
			}
		}
	}
}
