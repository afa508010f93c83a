package pebbleq_test

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mailhook/mailhook/deliver"
	"github.com/mailhook/mailhook/deliver/boltq"
	"github.com/mailhook/mailhook/deliver/pebbleq"
	"github.com/mailhook/mailhook/deliver/queuetest"
)

// TestMigrateFromBolt: a data dir written by the bbolt backend opens as a
// Pebble store holding the same messages, jobs in their states with their
// history, and commit keys; queue.db is set aside.
func TestMigrateFromBolt(t *testing.T) {
	ctx := t.Context()
	dir := t.TempDir()
	now := time.Now()
	large := "Subject: large\r\n\r\n" + strings.Repeat("x", 100<<10) + "\r\n"
	bq, err := boltq.Open(dir, boltq.Options{})
	if err != nil {
		t.Fatal(err)
	}
	small := queuetest.NewMail(t, "m-small", "Subject: small\r\n\r\nhi\r\n")
	small.StableID = "s-small"
	if err := bq.Commit(ctx, small, []*deliver.Job{
		queuetest.NewJob("j-ready", "m-small", deliver.KindWebhook, now),
		queuetest.NewJob("j-later", "m-small", deliver.KindRelay, now.Add(time.Hour)),
	}); err != nil {
		t.Fatal(err)
	}
	if err := bq.Commit(ctx, queuetest.NewMail(t, "m-large", large), []*deliver.Job{
		queuetest.NewJob("j-dead", "m-large", deliver.KindWebhook, now),
	}); err != nil {
		t.Fatal(err)
	}
	taken, err := bq.Take(ctx, []deliver.Kind{deliver.KindWebhook}, 10, time.Hour)
	if err != nil || len(taken) != 2 {
		t.Fatalf("Take = %v, %v", taken, err)
	}
	for _, j := range taken {
		if j.ID == "j-dead" {
			if err := bq.Dead(ctx, j, deliver.Attempt{At: now, Status: 410, Error: "gone"}); err != nil {
				t.Fatal(err)
			}
		}
		// j-ready stays leased: the bbolt store returns it at the import.
	}
	if err := bq.Close(); err != nil {
		t.Fatal(err)
	}

	q, err := pebbleq.Open(dir, pebbleq.Options{})
	if err != nil {
		t.Fatalf("Open of a bbolt data dir = %v", err)
	}
	defer q.Close()
	if _, err := os.Stat(filepath.Join(dir, "queue", "queue.db")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("queue.db still in place after the migration: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "queue", "queue.db.migrated")); err != nil {
		t.Errorf("queue.db.migrated: %v", err)
	}
	st, err := q.Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.Ready != 1 || st.Scheduled != 1 || st.Dead != 1 || st.Leased != 0 {
		t.Errorf("Stats after the migration = %+v, want 1 ready (the lease returned), 1 scheduled, 1 dead", st)
	}
	dead, err := q.Get(ctx, "j-dead")
	if err != nil || dead.DeadAt.IsZero() || len(dead.History) != 1 || dead.History[0].Status != 410 {
		t.Errorf("dead job after the migration = %+v, %v; want dead with its 410 attempt", dead, err)
	}
	ready, err := q.Get(ctx, "j-ready")
	if err != nil || ready.Attempts != 1 || ready.Lease != "" {
		t.Errorf("leased job after the migration = %+v, %v; want returned, 1 attempt", ready, err)
	}
	m, err := q.Mail(ctx, "m-small")
	if err != nil || m.ID != "m-small" {
		t.Errorf("Mail(m-small) = %+v, %v", m, err)
	}
	for id, want := range map[string]string{"m-small": "Subject: small\r\n\r\nhi\r\n", "m-large": large} {
		rc, err := q.OpenRaw(ctx, id)
		if err != nil {
			t.Fatalf("OpenRaw(%s) = %v", id, err)
		}
		b, err := io.ReadAll(rc)
		rc.Close()
		if err != nil || string(b) != want {
			t.Errorf("raw of %s after the migration: %d bytes, %v; want %d", id, len(b), err, len(want))
		}
	}
	// The commit key came along: the sender's retry is a no-op.
	if err := q.Commit(ctx, queuetest.NewRetry(t, small, "m-small-again"), []*deliver.Job{queuetest.NewJob("j-again", "m-small-again", deliver.KindWebhook, now)}); err != nil {
		t.Fatal(err)
	}
	if _, err := q.Get(ctx, "j-again"); !errors.Is(err, deliver.ErrNotFound) {
		t.Errorf("a retry of a migrated message was queued again: %v", err)
	}
	// Settling the last job of the file-backed message removes its file.
	got, err := q.Take(ctx, deliver.Kinds, 10, time.Minute)
	if err != nil || len(got) != 1 || got[0].ID != "j-ready" {
		t.Fatalf("Take after the migration = %+v, %v", got, err)
	}
	if err := q.Drop(ctx, "j-dead"); err != nil {
		t.Fatal(err)
	}
	ents, _ := os.ReadDir(filepath.Join(dir, "queue", "msg"))
	if len(ents) != 0 {
		t.Errorf("msg dir after dropping the large message's only job holds %d files", len(ents))
	}
}
