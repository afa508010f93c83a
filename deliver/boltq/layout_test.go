package boltq

import (
	"errors"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/mailhook/mailhook/deliver"
	"github.com/mailhook/mailhook/deliver/queuetest"
)

// TestOlderLayout: a store written when the mail JSON lived inside the
// message record still serves Mail, counts acks and deletes everything
// with the last job.
func TestOlderLayout(t *testing.T) {
	dir := t.TempDir()
	q, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	m := queuetest.NewMail(t, "m1", "Subject: x\r\n\r\nbody\r\n")
	m.Envelope.MailFrom = "old@example.org"
	jobs := []*deliver.Job{
		queuetest.NewJob("j1", "m1", deliver.KindWebhook, time.Time{}),
		queuetest.NewJob("j2", "m1", deliver.KindWebhook, time.Time{}),
	}
	if err := q.Commit(t.Context(), m, jobs); err != nil {
		t.Fatal(err)
	}
	// Rewrite the message to the older layout.
	err = q.db.Update(func(tx *bolt.Tx) error {
		rec, err := getMsg(tx, "m1")
		if err != nil {
			return err
		}
		rec.Mail = append([]byte(nil), tx.Bucket(bMail).Get([]byte("m1"))...)
		if len(rec.Mail) == 0 {
			return errors.New("no mail JSON in the mail bucket")
		}
		if err := putMsg(tx, "m1", rec); err != nil {
			return err
		}
		return tx.Bucket(bMail).Delete([]byte("m1"))
	})
	if err != nil {
		t.Fatal(err)
	}
	q.Close()
	if q, err = Open(dir, Options{}); err != nil {
		t.Fatal(err)
	}
	defer q.Close()

	got, err := q.Mail(t.Context(), "m1")
	if err != nil || got.Envelope.MailFrom != "old@example.org" {
		t.Fatalf("Mail = %+v, %v; want the older record's mail", got, err)
	}
	taken, err := q.Take(t.Context(), deliver.Kinds, 10, time.Minute)
	if err != nil || len(taken) != 2 {
		t.Fatalf("Take = %d jobs, %v; want 2", len(taken), err)
	}
	if err := q.Ack(t.Context(), taken[0]); err != nil {
		t.Fatal(err)
	}
	if got, err := q.Mail(t.Context(), "m1"); err != nil || got.Envelope.MailFrom != "old@example.org" {
		t.Fatalf("Mail after the first ack = %+v, %v", got, err)
	}
	if err := q.Ack(t.Context(), taken[1]); err != nil {
		t.Fatal(err)
	}
	if _, err := q.Mail(t.Context(), "m1"); !errors.Is(err, deliver.ErrNotFound) {
		t.Fatalf("Mail after the last ack = %v, want ErrNotFound", err)
	}
}

// TestAckKeepsMailOutOfRecord: a new record holds no mail JSON, so acks
// rewrite only the small record.
func TestAckKeepsMailOutOfRecord(t *testing.T) {
	q, err := Open(t.TempDir(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	m := queuetest.NewMail(t, "m1", "Subject: x\r\n\r\nbody\r\n")
	if err := q.Commit(t.Context(), m, []*deliver.Job{queuetest.NewJob("j1", "m1", deliver.KindWebhook, time.Time{})}); err != nil {
		t.Fatal(err)
	}
	err = q.db.View(func(tx *bolt.Tx) error {
		rec, err := getMsg(tx, "m1")
		if err != nil {
			return err
		}
		if len(rec.Mail) != 0 || tx.Bucket(bMail).Get([]byte("m1")) == nil {
			t.Errorf("record mail %d bytes, mail bucket entry %v; want the mail in its own bucket only", len(rec.Mail), tx.Bucket(bMail).Get([]byte("m1")) != nil)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
