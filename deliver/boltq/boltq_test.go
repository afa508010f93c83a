package boltq_test

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
	"github.com/mailhook/mailhook/deliver/queuetest"
)

func TestSuite(t *testing.T) {
	for _, tc := range []struct {
		name   string
		inline int64
	}{{"inline", 0}, {"files", -1}} {
		t.Run(tc.name, func(t *testing.T) {
			queuetest.Run(t, func(t *testing.T) deliver.Backend {
				q, err := boltq.Open(t.TempDir(), boltq.Options{InlineMax: tc.inline})
				if err != nil {
					t.Fatal(err)
				}
				return q
			})
		})
	}
}

// open opens a store that keeps every raw message as a file, as the
// recovery tests below plant and remove files.
func open(t *testing.T, dir string) *boltq.Queue {
	t.Helper()
	q, err := boltq.Open(dir, boltq.Options{InlineMax: -1})
	if err != nil {
		t.Fatalf("Open = %v", err)
	}
	return q
}

func TestLock(t *testing.T) {
	dir := t.TempDir()
	q := open(t, dir)
	q2, err := boltq.Open(dir, boltq.Options{})
	if err == nil {
		q2.Close()
	}
	if !errors.Is(err, boltq.ErrLocked) {
		t.Fatalf("second Open of one data dir = %v, want ErrLocked", err)
	}
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	open(t, dir).Close()
}

// TestRecover reopens a store left as a crash leaves it: a lease held, a
// raw file without a record, a record without its raw file.
func TestRecover(t *testing.T) {
	ctx := t.Context()
	dir := t.TempDir()
	q := open(t, dir)
	now := time.Now()
	if err := q.Commit(ctx, queuetest.NewMail(t, "m1", "one"), []*deliver.Job{queuetest.NewJob("j1", "m1", deliver.KindWebhook, now)}); err != nil {
		t.Fatal(err)
	}
	if err := q.Commit(ctx, queuetest.NewMail(t, "m2", "two"), []*deliver.Job{queuetest.NewJob("j2", "m2", deliver.KindWebhook, now.Add(time.Hour))}); err != nil {
		t.Fatal(err)
	}
	taken, err := q.Take(ctx, deliver.Kinds, 1, time.Hour)
	if err != nil || len(taken) != 1 {
		t.Fatalf("Take = %v, %v", taken, err)
	}
	q.Close()

	msgDir := filepath.Join(dir, "queue", "msg")
	ents, _ := os.ReadDir(msgDir)
	if len(ents) != 2 {
		t.Fatalf("msg dir holds %d files, want 2", len(ents))
	}
	// Lose m2's raw file; leave an orphan as a crash before the bbolt
	// commit would.
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), "m2-") {
			os.Remove(filepath.Join(msgDir, e.Name()))
		}
	}
	orphan := filepath.Join(msgDir, "m3-0123456789ab.eml")
	if err := os.WriteFile(orphan, []byte("three"), 0o600); err != nil {
		t.Fatal(err)
	}

	q = open(t, dir)
	defer q.Close()
	if _, err := os.Stat(orphan); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("orphan raw file survived Open: %v", err)
	}
	j1, err := q.Get(ctx, "j1")
	if err != nil || j1.StateAt(time.Now()) != deliver.StateReady || j1.Attempts != 1 || len(j1.History) != 1 {
		t.Errorf("leased job after reopen = %+v, %v; want ready, attempts 1, the interrupted attempt recorded", j1, err)
	}
	j2, err := q.Get(ctx, "j2")
	if err != nil || j2.StateAt(time.Now()) != deliver.StateDead || j2.LastError == "" {
		t.Errorf("job whose raw file is missing = %+v, %v; want dead with an error", j2, err)
	}
	got, err := q.Take(ctx, deliver.Kinds, 5, time.Minute)
	if err != nil || len(got) != 1 || got[0].ID != "j1" || got[0].Attempts != 2 {
		t.Fatalf("Take after reopen = %+v, %v", got, err)
	}
	rc, err := q.OpenRaw(ctx, "m1")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(rc)
	rc.Close()
	if string(b) != "one" {
		t.Errorf("raw m1 = %q, want one", b)
	}
	if err := q.Ack(ctx, got[0]); err != nil {
		t.Fatal(err)
	}
	ents, _ = os.ReadDir(msgDir)
	if len(ents) != 0 {
		t.Errorf("msg dir after the last ack holds %d files, want 0", len(ents))
	}
}
