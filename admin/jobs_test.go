package admin

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/mailhook/mailhook/deliver"
)

// TestRetryNowAPI: POST /api/jobs/{id}/retry makes a scheduled job due
// (409 for a dead or leased job, 404 for an unknown one); POST
// /api/queue/retry does it for every scheduled job; GET /api/jobs lists
// by state and GET /api/jobs/{id} shows one.
func TestRetryNowAPI(t *testing.T) {
	e := newEnv(t, testToken)
	ctx := t.Context()
	for _, id := range []string{"a", "b", "c"} {
		accept(t, e.q, e.act, mailOpts{id: id, received: e.clock.Now()})
	}
	jobs, _ := e.q.Take(ctx, deliver.Kinds, 3, time.Minute)
	if len(jobs) != 3 {
		t.Fatalf("took %d jobs", len(jobs))
	}
	for _, j := range jobs {
		switch j.ID {
		case "a-w", "b-w":
			e.q.Retry(ctx, j, e.clock.Now().Add(time.Hour), deliver.Attempt{At: e.clock.Now(), Status: 503})
		case "c-w":
			e.q.Dead(ctx, j, deliver.Attempt{At: e.clock.Now(), Status: 410})
		}
	}
	if code, _, body := e.do("GET", "/api/jobs?state=scheduled", e.token); code != 200 || !strings.Contains(string(body), `"a-w"`) || strings.Contains(string(body), `"c-w"`) {
		t.Errorf("GET /api/jobs?state=scheduled = %d %s", code, body)
	}
	if code, _, body := e.do("GET", "/api/jobs/a-w", e.token); code != 200 || !strings.Contains(string(body), `"msg_id": "a"`) {
		t.Errorf("GET /api/jobs/a-w = %d %s", code, body)
	}
	for path, want := range map[string]int{
		"/api/jobs/a-w/retry":  http.StatusOK,
		"/api/jobs/c-w/retry":  http.StatusConflict,
		"/api/jobs/zzz/retry":  http.StatusNotFound,
		"/api/queue/retry":     http.StatusOK,
		"/api/jobs/a-w/replay": http.StatusConflict,
	} {
		if code, _, body := e.do("POST", path, e.token); code != want {
			t.Errorf("POST %s = %d %s, want %d", path, code, body, want)
		}
	}
	for _, id := range []string{"a-w", "b-w"} {
		if j, err := e.q.Get(ctx, id); err != nil || j.StateAt(e.clock.Now()) != deliver.StateReady {
			t.Errorf("%s after retry: %+v %v", id, j, err)
		}
	}
	// Leased: an attempt runs now.
	got, _ := e.q.Take(ctx, deliver.Kinds, 1, time.Minute)
	if code, _, body := e.do("POST", "/api/jobs/"+got[0].ID+"/retry", e.token); code != http.StatusConflict || !strings.Contains(string(body), "running now") {
		t.Errorf("retry of a leased job = %d %s", code, body)
	}
}
