package admin

import (
	"context"

	bolt "go.etcd.io/bbolt"
)

// MessageIDOfJob returns the message id of a job id (a webhook's
// webhook-id), as the activity store recorded it; ErrNotFound when it
// knows no such job.
func (a *Activity) MessageIDOfJob(jobID string) (string, error) {
	var id string
	err := a.db.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(bJobs).Get([]byte(jobID))
		if v == nil {
			return ErrNotFound
		}
		id = string(v)
		return nil
	})
	return id, err
}

// resolveMessageID turns the id a user has (the msg_id of the SMTP reply,
// or the webhook-id of a delivery, which is its job id) into the msg_id.
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
