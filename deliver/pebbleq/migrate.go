package pebbleq

// Moving a bbolt store (deliver/boltq, the embedded backend before this
// one) into Pebble, once, at Open.

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/cockroachdb/pebble/v2"

	"github.com/mailhook/mailhook/deliver/boltq"
	"github.com/mailhook/mailhook/internal/safefile"
)

// migrate imports <dataDir>/queue/queue.db when it exists: every message
// (its mail, its raw message: inline bytes are copied, a file under msg/
// is taken over as it is), every job in its state with its history, and
// the remembered commit keys. The import is synced, then queue.db is
// renamed to queue.db.migrated; a crash before the rename imports again,
// over the same keys, at the next Open.
func (q *Queue) migrate(dataDir string) error {
	old := filepath.Join(dataDir, "queue", "queue.db")
	if _, err := os.Stat(old); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	// Opening it runs its own recovery: the previous process's leases go
	// back to the queue, orphan files are removed.
	bq, err := boltq.Open(dataDir, boltq.Options{Logger: q.log})
	if errors.Is(err, boltq.ErrLocked) {
		return fmt.Errorf("%s: %w", old, ErrLocked)
	}
	if err != nil {
		return fmt.Errorf("migrating %s: %w", old, err)
	}
	b := q.db.NewBatch()
	var msgs, jobs, keys int
	flush := func() error {
		if b.Len() < 4<<20 {
			return nil
		}
		err := q.db.Apply(b, pebble.NoSync)
		b.Close()
		b = q.db.NewBatch()
		return err
	}
	err = bq.Export(func(m *boltq.Message) error {
		rec, err := json.Marshal(msgRecord{File: m.File, Inline: m.File == ""})
		if err != nil {
			return err
		}
		b.Set(key(pMsg, m.ID), rec, nil)
		b.Set(key(pMail, m.ID), m.Mail, nil)
		if m.File == "" {
			b.Set(key(pRaw, m.ID), m.Raw, nil)
		}
		for _, j := range m.Jobs {
			if err := putJob(b, j); err != nil {
				return err
			}
		}
		msgs++
		jobs += len(m.Jobs)
		return flush()
	}, func(k boltq.CommitKey) error {
		end := k.Until.UnixNano()
		v := binary.BigEndian.AppendUint64(nil, uint64(end))
		b.Set(key(pDedup, k.Key), append(v, k.MsgID...), nil)
		b.Set(expKey(end, k.Key), nil, nil)
		keys++
		return flush()
	})
	if err == nil {
		err = q.db.Apply(b, pebble.Sync)
	}
	b.Close()
	if cerr := bq.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("migrating %s: %w", old, err)
	}
	if err := os.Rename(old, old+".migrated"); err != nil {
		return fmt.Errorf("migrating %s: %w", old, err)
	}
	if err := safefile.SyncDir(filepath.Dir(old)); err != nil {
		return fmt.Errorf("migrating %s: %w", old, err)
	}
	q.log.Info("queue moved from bbolt to the Pebble store",
		"messages", msgs, "jobs", jobs, "commit_keys", keys, "old_store_kept_as", old+".migrated")
	return nil
}
