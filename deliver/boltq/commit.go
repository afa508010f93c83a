package boltq

// Commit: a message and its jobs in one group-committed transaction.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/mailhook/mailhook/deliver"
	"github.com/mailhook/mailhook/inbound"
	"github.com/mailhook/mailhook/internal/safefile"
)

// Commit implements deliver.Queue.
func (q *Queue) Commit(ctx context.Context, mail *inbound.Mail, jobs []*deliver.Job) (err error) {
	rawPath := ""
	if mail != nil {
		rawPath = mail.RawPath
	}
	stored := ""
	defer func() {
		if err != nil && rawPath != "" {
			os.Remove(rawPath)
		}
		if err != nil && stored != "" {
			os.Remove(stored)
		}
	}()
	if err := ctx.Err(); err != nil {
		return err
	}
	now := q.now()
	if err := deliver.ValidateCommit(mail, jobs, now); err != nil {
		return err
	}
	if rawPath == "" && mail.Raw == nil {
		return errors.New("boltq: commit: mail without raw message")
	}
	if len(jobs) == 0 {
		if rawPath != "" {
			os.Remove(rawPath)
		}
		return nil
	}
	var name string
	var inline []byte
	switch {
	case mail.Raw != nil && q.inlineMax > 0 && int64(len(mail.Raw)) <= q.inlineMax:
		// Held in memory since the socket: written once, in the batch.
		inline = mail.Raw
	case mail.Raw != nil:
		if dup, err := q.hasMsg(mail, now); err != nil {
			return err
		} else if dup {
			return nil
		}
		name = deliver.RawFileName(mail.ID)
		stored = filepath.Join(q.msgDir, name)
		if err := safefile.Write(stored, bytes.NewReader(mail.Raw)); err != nil {
			return fmt.Errorf("boltq: commit %s: %w", mail.ID, err)
		}
	default:
		if inline, err = q.readInline(rawPath); err != nil {
			return fmt.Errorf("boltq: commit %s: %w", mail.ID, err)
		}
	}
	if inline == nil && name == "" {
		// A duplicate is found again inside the transaction; looking first
		// only spares a large retried message its fsync'd move.
		if dup, err := q.hasMsg(mail, now); err != nil {
			return err
		} else if dup {
			os.Remove(rawPath)
			return nil
		}
		name = deliver.RawFileName(mail.ID)
		stored = filepath.Join(q.msgDir, name)
		if err := safefile.Move(rawPath, stored); err != nil {
			return fmt.Errorf("boltq: commit %s: %w", mail.ID, err)
		}
		rawPath = ""
	}
	mailJSON, err := json.Marshal(mail)
	if err != nil {
		return fmt.Errorf("boltq: commit %s: %w", mail.ID, err)
	}
	var dup bool
	err = q.db.Batch(func(tx *bolt.Tx) error {
		dup = false
		if tx.Bucket(bMsgs).Get([]byte(mail.ID)) != nil || seen(tx, deliver.CommitKey(mail), now) {
			dup = true
			return nil
		}
		if err := remember(tx, deliver.CommitKey(mail), mail.ID, now, q.dedup); err != nil {
			return err
		}
		jb := tx.Bucket(bJobs)
		for _, j := range jobs {
			if jb.Get([]byte(j.ID)) != nil {
				return fmt.Errorf("%w: %q", deliver.ErrDuplicateJob, j.ID)
			}
		}
		rec := &msgRecord{File: name, Jobs: len(jobs), Inline: inline != nil}
		if err := putMsg(tx, mail.ID, rec); err != nil {
			return err
		}
		if err := tx.Bucket(bMail).Put([]byte(mail.ID), mailJSON); err != nil {
			return err
		}
		if inline != nil {
			if err := tx.Bucket(bRaw).Put([]byte(mail.ID), inline); err != nil {
				return err
			}
		}
		for _, j := range jobs {
			if err := replaceJob(tx, nil, j); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("boltq: commit %s: %w", mail.ID, err)
	}
	if dup && stored != "" {
		os.Remove(stored)
	}
	if rawPath != "" {
		os.Remove(rawPath) // stored inline
	}
	return nil
}

// readInline returns the raw message at path when it is small enough to be
// stored inline (the spool file then needs no fsync), nil when it is not.
func (q *Queue) readInline(path string) ([]byte, error) {
	if q.inlineMax <= 0 {
		return nil, nil
	}
	b, err := safefile.ReadUpTo(path, q.inlineMax)
	if errors.Is(err, safefile.ErrTooLarge) {
		return nil, nil
	}
	return b, err
}

// hasMsg reports whether mail is already committed (its ID held, or its
// commit key seen).
func (q *Queue) hasMsg(mail *inbound.Mail, now time.Time) (bool, error) {
	var ok bool
	err := q.db.View(func(tx *bolt.Tx) error {
		ok = tx.Bucket(bMsgs).Get([]byte(mail.ID)) != nil || seen(tx, deliver.CommitKey(mail), now)
		return nil
	})
	return ok, err
}
