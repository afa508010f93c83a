package mailbox

import (
	"context"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/mailhook/mailhook/internal/safefile"
	bolt "go.etcd.io/bbolt"
)

// Open opens (creating if needed) the store under dir. It removes body
// files that no index entry references — left by a crash between the body
// write and the index commit, or between an expunge commit and the file
// removal — and empties the temp directory.
func Open(dir string, opts Options) (*Store, error) {
	if opts.DedupTTL <= 0 {
		opts.DedupTTL = 7 * 24 * time.Hour
	}
	if opts.MaxMessageSize <= 0 {
		opts.MaxMessageSize = 64 << 20
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.OpenTimeout <= 0 {
		opts.OpenTimeout = 5 * time.Second
	}
	for _, d := range []string{dir, filepath.Join(dir, blobDir), filepath.Join(dir, tmpDir)} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, fmt.Errorf("mailbox: create %s: %w", d, err)
		}
	}
	db, err := bolt.Open(filepath.Join(dir, indexFile), 0o600, &bolt.Options{Timeout: opts.OpenTimeout, NoSync: opts.noSync})
	if err != nil {
		return nil, fmt.Errorf("mailbox: open index: %w", err)
	}
	s := &Store{
		dir:      dir,
		opts:     opts,
		db:       db,
		log:      opts.Logger,
		watchers: make(map[watchKey]map[*Watcher]struct{}),
		locks:    make(map[watchKey]struct{}),
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bMeta, bBlobs, bDedup, bDedupT, bUsers} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		return nil
	})
	if err == nil {
		err = s.cleanup()
	}
	if err == nil {
		_, err = s.PruneDedup(context.Background())
	}
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("mailbox: open %s: %w", dir, err)
	}
	return s, nil
}

// cleanup removes temp files and unreferenced bodies. It runs in Open,
// while this process holds the index's exclusive file lock, so no other
// writer can be between a body write and its commit.
func (s *Store) cleanup() error {
	tmp := filepath.Join(s.dir, tmpDir)
	ents, err := os.ReadDir(tmp)
	if err != nil {
		return err
	}
	for _, e := range ents {
		os.Remove(filepath.Join(tmp, e.Name()))
	}
	ents, err = os.ReadDir(filepath.Join(s.dir, blobDir))
	if err != nil {
		return err
	}
	removed := 0
	err = s.db.View(func(tx *bolt.Tx) error {
		blobs := tx.Bucket(bBlobs)
		for _, e := range ents {
			id, err := hex.DecodeString(e.Name())
			if err == nil && len(id) == blobIDLen && blobs.Get(id) != nil {
				continue
			}
			if err := os.Remove(filepath.Join(s.dir, blobDir, e.Name())); err != nil {
				return err
			}
			removed++
		}
		return nil
	})
	if err != nil {
		return err
	}
	if removed > 0 {
		s.log.Info("mailbox: removed orphan bodies", "count", removed)
		return safefile.SyncDir(filepath.Join(s.dir, blobDir))
	}
	return nil
}

// Verify checks the store's consistency: every message's body exists and
// has the recorded size, reference counts match, folder counts and quota
// usage match the messages, no unreferenced body file remains. Run it on
// a quiescent store: a delivery in flight has a body not yet indexed.
func (s *Store) Verify(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	var problems []string
	refs := map[[blobIDLen]byte]uint32{}
	err := s.db.View(func(tx *bolt.Tx) error {
		users := tx.Bucket(bUsers)
		err := users.ForEach(func(name, _ []byte) error {
			u, err := s.user(tx, string(name))
			if err != nil || u == nil {
				return err
			}
			var used int64
			err = u.folders.ForEach(func(k, v []byte) error {
				var f folderMeta
				if err := json.Unmarshal(v, &f); err != nil {
					return err
				}
				mb := u.msgBucket(f.ID)
				if mb == nil {
					problems = append(problems, fmt.Sprintf("%s/%s: no message bucket", name, k))
					return nil
				}
				var n, unseen uint32
				var size int64
				err := mb.ForEach(func(kk, vv []byte) error {
					m, err := decodeMsg(binary.BigEndian.Uint32(kk), vv)
					if err != nil {
						return err
					}
					n++
					size += m.Size
					if !m.HasFlag(FlagSeen) {
						unseen++
					}
					if m.UID >= f.UIDNext {
						problems = append(problems, fmt.Sprintf("%s/%s: uid %d >= uidnext %d", name, k, m.UID, f.UIDNext))
					}
					refs[m.blob]++
					st, err := os.Stat(s.blobPath(m.blob))
					switch {
					case err != nil:
						problems = append(problems, fmt.Sprintf("%s/%s uid %d: body: %v", name, k, m.UID, err))
					case st.Size() != m.Size:
						problems = append(problems, fmt.Sprintf("%s/%s uid %d: size %d, file %d", name, k, m.UID, m.Size, st.Size()))
					}
					return nil
				})
				if err != nil {
					return err
				}
				used += size
				if n != f.Messages || unseen != f.Unseen || size != f.Size {
					problems = append(problems, fmt.Sprintf("%s/%s: counts %d/%d/%d, recorded %d/%d/%d", name, k, n, unseen, size, f.Messages, f.Unseen, f.Size))
				}
				return nil
			})
			if err != nil {
				return err
			}
			if used != u.used() {
				problems = append(problems, fmt.Sprintf("%s: usage %d, recorded %d", name, used, u.used()))
			}
			return nil
		})
		if err != nil {
			return err
		}
		return tx.Bucket(bBlobs).ForEach(func(k, v []byte) error {
			var id [blobIDLen]byte
			copy(id[:], k)
			if got := binary.BigEndian.Uint32(v); got != refs[id] {
				problems = append(problems, fmt.Sprintf("blob %x: refcount %d, referenced %d", k, got, refs[id]))
			}
			delete(refs, id)
			return nil
		})
	})
	if err != nil {
		return fmt.Errorf("mailbox: verify: %w", err)
	}
	for id := range refs {
		problems = append(problems, fmt.Sprintf("blob %x: referenced but not counted", id))
	}
	ents, err := os.ReadDir(filepath.Join(s.dir, blobDir))
	if err != nil {
		return fmt.Errorf("mailbox: verify: %w", err)
	}
	err = s.db.View(func(tx *bolt.Tx) error {
		for _, e := range ents {
			id, _ := hex.DecodeString(e.Name())
			if len(id) != blobIDLen || tx.Bucket(bBlobs).Get(id) == nil {
				problems = append(problems, "orphan body file "+e.Name())
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("mailbox: verify: %w", err)
	}
	if len(problems) > 0 {
		return fmt.Errorf("mailbox: verify: %d problems: %s", len(problems), strings.Join(problems, "; "))
	}
	return nil
}
