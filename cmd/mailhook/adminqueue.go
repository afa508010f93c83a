package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/mailhook/mailhook/config"
	"github.com/mailhook/mailhook/deliver"
	"github.com/mailhook/mailhook/inbound"
)

// adminQueue is the queue of a running `mailhook serve`, reached through
// its admin API: the embedded store is locked by the server, so `mailhook
// queue` asks the server instead. It implements the operator's part of
// deliver.Queue (and deliver.NowRetrier); the workers' part answers
// errNotThroughAPI.
type adminQueue struct {
	base  string
	token string
	c     *http.Client
}

var errNotThroughAPI = errors.New("not available through the admin API while `mailhook serve` runs (use the dashboard, or stop the server)")

// newAdminQueue returns the admin API of cfg's server, or an error saying
// why there is none.
func newAdminQueue(cfg *config.Config) (*adminQueue, error) {
	if cfg.Admin.Listen == "" || cfg.Admin.Token == "" {
		return nil, errors.New("set admin.listen and admin.token (or MAILHOOK_ADMIN_TOKEN) so `mailhook queue` can reach a running server")
	}
	host, port, err := net.SplitHostPort(cfg.Admin.Listen)
	if err != nil {
		return nil, fmt.Errorf("admin.listen: %w", err)
	}
	if host == "" || host == "0.0.0.0" || host == "::" {
		host = "127.0.0.1"
	}
	return &adminQueue{base: "http://" + net.JoinHostPort(host, port), token: cfg.Admin.Token, c: &http.Client{Timeout: 30 * time.Second}}, nil
}

func (q *adminQueue) do(ctx context.Context, method, path string, out any) error {
	return q.send(ctx, method, path, nil, out)
}

// send calls the API with in (when not nil) as the JSON body and decodes
// the answer into out (when not nil).
// apiError is a non-2xx answer of the admin API; callers that care which
// (401: the token, 409: the job's state) test Code with errors.As.
type apiError struct {
	Method, Path string
	Code         int
	Status       string
	Body         string
}

func (e *apiError) Error() string {
	return fmt.Sprintf("admin API: %s %s: %s: %s", e.Method, e.Path, e.Status, e.Body)
}

// apiStatus is the HTTP status of an admin API error, or 0.
func apiStatus(err error) int {
	var ae *apiError
	if errors.As(err, &ae) {
		return ae.Code
	}
	return 0
}

func (q *adminQueue) send(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, q.base+path, body)
	if err != nil {
		return err
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Authorization", "Bearer "+q.token)
	resp, err := q.c.Do(req)
	if err != nil {
		return fmt.Errorf("admin API: %w", err)
	}
	defer resp.Body.Close()
	answer, _ := io.ReadAll(io.LimitReader(resp.Body, 32<<20))
	if resp.StatusCode == http.StatusNotFound {
		return deliver.ErrNotFound
	}
	if resp.StatusCode/100 != 2 {
		return &apiError{Method: method, Path: path, Code: resp.StatusCode, Status: resp.Status, Body: strings.TrimSpace(string(answer))}
	}
	if out == nil {
		return nil
	}
	return json.Unmarshal(answer, out)
}

func (q *adminQueue) Stats(ctx context.Context) (deliver.Stats, error) {
	var st struct {
		Ready, Scheduled, Leased, Dead int
		OldestAgeSeconds               float64 `json:"oldest_age_seconds"`
	}
	if err := q.do(ctx, "GET", "/api/queue/stats", &st); err != nil {
		return deliver.Stats{}, err
	}
	return deliver.Stats{Ready: st.Ready, Scheduled: st.Scheduled, Leased: st.Leased, Dead: st.Dead,
		OldestAge: time.Duration(st.OldestAgeSeconds * float64(time.Second))}, nil
}

func (q *adminQueue) ListDead(ctx context.Context, o deliver.ListOptions) ([]*deliver.Job, error) {
	v := url.Values{}
	if o.Kind != "" {
		v.Set("kind", string(o.Kind))
	}
	if o.Limit > 0 {
		v.Set("limit", fmt.Sprint(min(o.Limit, 500)))
	}
	var page struct {
		Jobs []*deliver.Job `json:"jobs"`
	}
	err := q.do(ctx, "GET", "/api/queue/dead?"+v.Encode(), &page)
	return page.Jobs, err
}

func (q *adminQueue) Replay(ctx context.Context, id string) error {
	return q.do(ctx, "POST", "/api/jobs/"+url.PathEscape(id)+"/replay", nil)
}

func (q *adminQueue) ReplayAll(ctx context.Context, since time.Time) (int, error) {
	var out struct {
		Replayed int `json:"replayed"`
	}
	err := q.do(ctx, "POST", "/api/queue/replay?since="+url.QueryEscape(since.UTC().Format(time.RFC3339)), &out)
	return out.Replayed, err
}

func (q *adminQueue) Drop(ctx context.Context, id string) error {
	return q.do(ctx, "DELETE", "/api/jobs/"+url.PathEscape(id), nil)
}

func (q *adminQueue) Close() error { return nil }

func (q *adminQueue) Commit(context.Context, *inbound.Mail, []*deliver.Job) error {
	return errNotThroughAPI
}
func (q *adminQueue) Take(context.Context, []deliver.Kind, int, time.Duration) ([]*deliver.Job, error) {
	return nil, errNotThroughAPI
}
func (q *adminQueue) Ack(context.Context, *deliver.Job) error { return errNotThroughAPI }
func (q *adminQueue) Retry(context.Context, *deliver.Job, time.Time, deliver.Attempt) error {
	return errNotThroughAPI
}
func (q *adminQueue) Dead(context.Context, *deliver.Job, deliver.Attempt) error {
	return errNotThroughAPI
}
func (q *adminQueue) Mail(context.Context, string) (*inbound.Mail, error) {
	return nil, errNotThroughAPI
}
func (q *adminQueue) OpenRaw(context.Context, string) (io.ReadCloser, error) {
	return nil, errNotThroughAPI
}
func (q *adminQueue) List(ctx context.Context, o deliver.ListOptions) ([]*deliver.Job, error) {
	v := url.Values{}
	for k, x := range map[string]string{"kind": string(o.Kind), "state": string(o.State), "msg_id": o.MsgID, "cursor": o.After} {
		if x != "" {
			v.Set(k, x)
		}
	}
	if o.Limit > 0 {
		v.Set("limit", fmt.Sprint(min(o.Limit, 500)))
	}
	var page struct {
		Jobs []*deliver.Job `json:"jobs"`
	}
	err := q.do(ctx, "GET", "/api/jobs?"+v.Encode(), &page)
	return page.Jobs, err
}

func (q *adminQueue) Get(ctx context.Context, id string) (*deliver.Job, error) {
	j := new(deliver.Job)
	if err := q.do(ctx, "GET", "/api/jobs/"+url.PathEscape(id), j); err != nil {
		return nil, err
	}
	return j, nil
}

// RetryNow implements deliver.NowRetrier through the API.
func (q *adminQueue) RetryNow(ctx context.Context, id string) error {
	return q.do(ctx, "POST", "/api/jobs/"+url.PathEscape(id)+"/retry", nil)
}

// retryAll brings every scheduled job forward in one request.
func (q *adminQueue) retryAll(ctx context.Context) (int, error) {
	var out struct {
		Retried int `json:"retried"`
	}
	err := q.do(ctx, "POST", "/api/queue/retry", &out)
	return out.Retried, err
}

var (
	_ deliver.Queue      = (*adminQueue)(nil)
	_ deliver.NowRetrier = (*adminQueue)(nil)
)
