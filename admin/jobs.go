package admin

// The JSON API over the queue: jobs, dead letters, retry, replay, drop.

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/mailhook/mailhook/deliver"
)

// jobRoutes adds the job endpoints that `mailhook queue list|show|retry`
// use while `mailhook serve` holds the embedded store.
func (s *Server) jobRoutes(m *http.ServeMux) {
	m.HandleFunc("GET /api/jobs", s.api(s.listJobs))
	m.HandleFunc("GET /api/jobs/{id}", s.api(s.getJob))
	m.HandleFunc("POST /api/jobs/{id}/retry", s.api(s.retryJob))
	m.HandleFunc("POST /api/queue/retry", s.api(s.retryAll))
	m.HandleFunc("POST /api/config/diff", s.api(s.configDiff))
}

// listJobs is GET /api/jobs?kind=&state=&msg_id=&cursor=&limit=: jobs in
// any state, ordered by ID.
func (s *Server) listJobs(w http.ResponseWriter, r *http.Request) {
	if !s.needQueue(w) {
		return
	}
	s.jobPage(w, r, s.opts.Queue.List)
}

// jobPage answers a page of jobs from list, filtered by the query's kind,
// state, msg_id, cursor and limit.
func (s *Server) jobPage(w http.ResponseWriter, r *http.Request, list func(context.Context, deliver.ListOptions) ([]*deliver.Job, error)) {
	v := r.URL.Query()
	opts := deliver.ListOptions{Kind: deliver.Kind(v.Get("kind")), State: deliver.State(v.Get("state")), MsgID: v.Get("msg_id"), After: v.Get("cursor"), Limit: 100}
	if opts.Kind != "" && !opts.Kind.Valid() {
		writeError(w, http.StatusBadRequest, "kind: want webhook, relay or mailbox")
		return
	}
	switch opts.State {
	case "", deliver.StateReady, deliver.StateScheduled, deliver.StateLeased, deliver.StateDead:
	default:
		writeError(w, http.StatusBadRequest, "state: want ready, scheduled, leased or dead")
		return
	}
	if l := v.Get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 1 {
			writeError(w, http.StatusBadRequest, "limit: want a positive number (at most 500)")
			return
		}
		opts.Limit = min(n, MaxPageSize)
	}
	jobs, err := list(r.Context(), opts)
	if err != nil {
		s.internalError(w, r, err)
		return
	}
	next := ""
	if len(jobs) == opts.Limit {
		next = jobs[len(jobs)-1].ID
	}
	if jobs == nil {
		jobs = []*deliver.Job{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"jobs": jobs, "next": next})
}

// getJob is GET /api/jobs/{id}: one job with its attempts, as the queue
// holds it.
func (s *Server) getJob(w http.ResponseWriter, r *http.Request) {
	if !s.needQueue(w) {
		return
	}
	j, err := s.opts.Queue.Get(r.Context(), r.PathValue("id"))
	if errors.Is(err, deliver.ErrNotFound) {
		writeError(w, http.StatusNotFound, "no such job in the queue")
		return
	}
	if err != nil {
		s.internalError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, j)
}

func (s *Server) wake() {
	if s.opts.Wake != nil {
		s.opts.Wake()
	}
}

// retryJob is POST /api/jobs/{id}/retry: the job's next attempt now
// rather than at its scheduled time.
func (s *Server) retryJob(w http.ResponseWriter, r *http.Request) {
	if !s.needQueue(w) {
		return
	}
	id := r.PathValue("id")
	switch err := s.opts.Queue.RetryNow(r.Context(), id); {
	case errors.Is(err, deliver.ErrNotFound):
		writeError(w, http.StatusNotFound, "no such job in the queue (delivered, or dropped)")
		return
	case errors.Is(err, deliver.ErrIsDead):
		writeError(w, http.StatusConflict, "the job is dead-lettered: replay it")
		return
	case errors.Is(err, deliver.ErrInFlight):
		writeError(w, http.StatusConflict, "an attempt of the job is running now")
		return
	case err != nil:
		s.internalError(w, r, err)
		return
	}
	s.wake()
	s.log.Info("job retried now by operator", "job_id", id, "remote_ip", remoteIP(r))
	writeJSON(w, http.StatusOK, map[string]any{"retried": id})
}

// maxRetryAll bounds the jobs one RetryAllScheduled brings forward.
const maxRetryAll = 10000

// retryAll is POST /api/queue/retry: every scheduled job's next attempt
// now.
func (s *Server) retryAll(w http.ResponseWriter, r *http.Request) {
	if !s.needQueue(w) {
		return
	}
	n, err := RetryAllScheduled(r.Context(), s.opts.Queue)
	if err != nil {
		s.internalError(w, r, err)
		return
	}
	s.wake()
	s.log.Info("scheduled jobs retried now by operator", "jobs", n, "remote_ip", remoteIP(r))
	writeJSON(w, http.StatusOK, map[string]any{"retried": n})
}

// RetryAllScheduled makes every job waiting for a retry due now (up to
// 10000 at a time) and returns how many.
func RetryAllScheduled(ctx context.Context, q deliver.Operator) (int, error) {
	n, after := 0, ""
	for n < maxRetryAll {
		jobs, err := q.List(ctx, deliver.ListOptions{State: deliver.StateScheduled, After: after, Limit: 500})
		if err != nil {
			return n, err
		}
		for _, j := range jobs {
			err := q.RetryNow(ctx, j.ID)
			switch {
			case err == nil:
				n++
			case errors.Is(err, deliver.ErrNotFound), errors.Is(err, deliver.ErrInFlight), errors.Is(err, deliver.ErrIsDead):
				// delivered, taken or dead-lettered since the listing
			default:
				return n, err
			}
		}
		if len(jobs) < 500 {
			break
		}
		after = jobs[len(jobs)-1].ID
	}
	return n, nil
}

func (s *Server) needQueue(w http.ResponseWriter) bool {
	if s.opts.Queue == nil {
		writeError(w, http.StatusServiceUnavailable, "no queue")
		return false
	}
	return true
}

// queueStatsJSON is Stats with the age in seconds.
type queueStatsJSON struct {
	Ready            int     `json:"ready"`
	Scheduled        int     `json:"scheduled"`
	Leased           int     `json:"leased"`
	Dead             int     `json:"dead"`
	OldestAgeSeconds float64 `json:"oldest_age_seconds"`
}

func (s *Server) queueStats(w http.ResponseWriter, r *http.Request) {
	if !s.needQueue(w) {
		return
	}
	st, err := s.opts.Queue.Stats(r.Context())
	if err != nil {
		s.internalError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, queueStatsJSON{st.Ready, st.Scheduled, st.Leased, st.Dead, st.OldestAge.Seconds()})
}

func (s *Server) listDead(w http.ResponseWriter, r *http.Request) {
	if !s.needQueue(w) {
		return
	}
	s.jobPage(w, r, s.opts.Queue.ListDead)
}

func (s *Server) replayJob(w http.ResponseWriter, r *http.Request) {
	if !s.needQueue(w) {
		return
	}
	id := r.PathValue("id")
	err := s.opts.Queue.Replay(r.Context(), id)
	switch {
	case errors.Is(err, deliver.ErrNotFound):
		writeError(w, http.StatusNotFound, "no such job")
		return
	case errors.Is(err, deliver.ErrNotDead):
		writeError(w, http.StatusConflict, "the job is not dead-lettered")
		return
	case err != nil:
		s.internalError(w, r, err)
		return
	}
	s.wake()
	s.log.Info("job replayed by operator", "job_id", id, "remote_ip", remoteIP(r))
	if s.opts.Activity != nil {
		if err := s.opts.Activity.RecordReplayed(id); err != nil && !errors.Is(err, ErrNotFound) {
			s.log.Warn("activity: record replay", "job_id", id, "err", err)
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"replayed": id})
}

// maxReplayNotes bounds the jobs a replay-all notes in the activity store.
const maxReplayNotes = 10000

func (s *Server) replayAll(w http.ResponseWriter, r *http.Request) {
	if !s.needQueue(w) {
		return
	}
	sinceV := r.URL.Query().Get("since")
	since, err := time.Parse(time.RFC3339, sinceV)
	if err != nil {
		writeError(w, http.StatusBadRequest, "since: required, an RFC 3339 time (jobs dead-lettered at or after it are replayed)")
		return
	}
	// Note the jobs first, so the activity store can mark them queued.
	var ids []string
	if s.opts.Activity != nil {
		after := ""
		for len(ids) < maxReplayNotes {
			jobs, err := s.opts.Queue.ListDead(r.Context(), deliver.ListOptions{After: after, Limit: 500})
			if err != nil || len(jobs) == 0 {
				break
			}
			done := false
			for _, j := range jobs {
				if j.DeadAt.Before(since) {
					done = true
					break
				}
				ids = append(ids, j.ID)
			}
			if done || len(jobs) < 500 {
				break
			}
			after = jobs[len(jobs)-1].ID
		}
	}
	n, err := s.opts.Queue.ReplayAll(r.Context(), since)
	if err != nil {
		s.internalError(w, r, err)
		return
	}
	s.wake()
	s.log.Info("dead letters replayed by operator", "since", since, "jobs", n, "remote_ip", remoteIP(r))
	for _, id := range ids {
		if err := s.opts.Activity.RecordReplayed(id); err != nil && !errors.Is(err, ErrNotFound) {
			s.log.Warn("activity: record replay", "job_id", id, "err", err)
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"replayed": n})
}

func (s *Server) dropJob(w http.ResponseWriter, r *http.Request) {
	if !s.needQueue(w) {
		return
	}
	id := r.PathValue("id")
	if err := s.opts.Queue.Drop(r.Context(), id); errors.Is(err, deliver.ErrNotFound) {
		writeError(w, http.StatusNotFound, "no such job")
		return
	} else if err != nil {
		s.internalError(w, r, err)
		return
	}
	s.log.Info("job dropped by operator", "job_id", id, "remote_ip", remoteIP(r))
	if s.opts.Activity != nil {
		if err := s.opts.Activity.RecordDropped(id); err != nil && !errors.Is(err, ErrNotFound) {
			s.log.Warn("activity: record drop", "job_id", id, "err", err)
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"dropped": id})
}
