package admin

// Raw copies of the messages: hard-linked files under raw/, or kept in
// the database for messages that never had a file.

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/mailhook/mailhook/deliver"
	"github.com/mailhook/mailhook/inbound"
	"github.com/mailhook/mailhook/internal/safefile"
)

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

// KeepLinked keeps at once the raw copy of a message held in memory
// (mail.Raw) when attachments of it have URLs: a receiver may fetch one
// the moment its webhook arrives, after the queue let the message go and
// before the asynchronous RecordAccepted kept its copy. Call it before the
// queue commit, like KeepRaw; a message without such URLs waits for
// RecordAccepted.
func (a *Activity) KeepLinked(mail *inbound.Mail) error {
	if mail == nil || mail.Raw == nil || !hasAttachmentURL(mail) {
		return nil
	}
	if err := safefile.Replace(a.rawPath(mail.ID), bytes.NewReader(mail.Raw)); err != nil {
		return fmt.Errorf("admin: activity: keep raw %s: %w", mail.ID, err)
	}
	return nil
}

// hasAttachmentURL reports whether an attachment of mail has a URL.
func hasAttachmentURL(mail *inbound.Mail) bool {
	if mail.Message == nil {
		return false
	}
	for _, at := range mail.Message.Attachments {
		if at.URL != "" {
			return true
		}
	}
	return false
}

// OpenRaw opens the kept raw source of a message, or returns ErrNotFound.
func (a *Activity) OpenRaw(id string) (io.ReadCloser, error) {
	var raw []byte
	if err := a.db.View(func(tx *bolt.Tx) error {
		v, err := deliver.Unpack(tx.Bucket(bRawMsg).Get([]byte(id)))
		raw = bytes.Clone(v) // a copy, in case v was kept as it is
		return err
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
