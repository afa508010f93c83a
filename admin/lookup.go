package admin

import (
	"context"

	bolt "go.etcd.io/bbolt"
)

// stableKey is the key under which the jobs bucket also maps a message's
// stable id (the webhook JSON's "id") to its msg_id; the NUL keeps it apart
// from job ids. A message the sender sent twice maps to the later one.
func stableKey(stableID string) []byte { return []byte("stable\x00" + stableID) }

func indexStableID(tx *bolt.Tx, rec *msgRecord) error {
	if rec.StableID == "" {
		return nil
	}
	return tx.Bucket(bJobs).Put(stableKey(rec.StableID), []byte(rec.ID))
}

func unindexStableID(tx *bolt.Tx, rec *msgRecord) {
	if rec.StableID == "" {
		return
	}
	k := stableKey(rec.StableID)
	if v := tx.Bucket(bJobs).Get(k); string(v) == rec.ID {
		tx.Bucket(bJobs).Delete(k)
	}
}

// MessageIDOfJob returns the message id of a job id (a webhook's
// webhook-id) or of a stable id (the webhook JSON's "id"), as the activity
// store recorded it; ErrNotFound when it knows neither.
func (a *Activity) MessageIDOfJob(id string) (string, error) {
	var msgID string
	err := a.db.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(bJobs).Get([]byte(id))
		if v == nil {
			v = tx.Bucket(bJobs).Get(stableKey(id))
		}
		if v == nil {
			return ErrNotFound
		}
		msgID = string(v)
		return nil
	})
	return msgID, err
}

// resolveMessageID turns the id a user has (the msg_id of the SMTP reply,
// the webhook-id of a delivery, which is its job id, or the JSON "id")
// into the msg_id.
func (s *Server) resolveMessageID(ctx context.Context, id string) string {
	if a := s.opts.Activity; a != nil {
		if msgID, err := a.MessageIDOfJob(id); err == nil {
			return msgID
		}
	}
	if q := s.opts.Queue; q != nil {
		if j, err := q.Get(ctx, id); err == nil && j.MsgID != "" {
			return j.MsgID
		}
	}
	return id
}
