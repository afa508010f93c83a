package webhook

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mailhook/mailhook/deliver"
)

func TestClassify(t *testing.T) {
	now := time.Date(2026, 11, 29, 5, 0, 0, 0, time.UTC)
	ra := func(v string) http.Header { return http.Header{"Retry-After": {v}} }
	for _, tc := range []struct {
		name      string
		status    int
		header    http.Header
		err       error
		done      bool
		permanent bool
		after     time.Duration
		errHas    string
	}{
		{name: "200", status: 200, done: true},
		{name: "204", status: 204, done: true},
		{name: "299", status: 299, done: true},
		{name: "301", status: 301, header: http.Header{"Location": {"https://new.example/"}}, errHas: "redirect not followed"},
		{name: "304", status: 304, errHas: "redirect not followed"},
		{name: "400", status: 400, errHas: "http status 400 bad request"},
		{name: "404", status: 404, errHas: "404"},
		{name: "410", status: 410, permanent: true, errHas: "410 gone"},
		{name: "429", status: 429, errHas: "429"},
		{name: "429 seconds", status: 429, header: ra("120"), after: 2 * time.Minute},
		{name: "429 date", status: 429, header: ra(now.Add(90 * time.Second).Format(http.TimeFormat)), after: 90 * time.Second},
		{name: "429 past date", status: 429, header: ra(now.Add(-time.Hour).Format(http.TimeFormat))},
		{name: "429 garbage", status: 429, header: ra("soon")},
		{name: "429 negative", status: 429, header: ra("-5")},
		{name: "429 huge", status: 429, header: ra("99999999999999999999"), after: MaxRetryAfter},
		{name: "503 seconds", status: 503, header: ra("7"), after: 7 * time.Second},
		{name: "503 date far", status: 503, header: ra(now.Add(72 * time.Hour).Format(http.TimeFormat)), after: MaxRetryAfter},
		{name: "500 ignores retry-after", status: 500, header: ra("60"), errHas: "500 internal server error"},
		{name: "502", status: 502},
		{name: "unknown status", status: 599, errHas: "http status 599"},
		{name: "transport error", err: errors.New("webhook: post to x: connection refused"), errHas: "connection refused"},
		{name: "refused private", err: &RefusedError{Reason: "loopback address"}, errHas: "loopback"},
		{name: "unknown endpoint", err: fmt.Errorf("%w %q", ErrUnknownEndpoint, "x"), permanent: true},
		{name: "bad job", err: fmt.Errorf("%w: id", ErrBadJob), permanent: true},
		{name: "bad endpoint", err: errors.Join(fmt.Errorf("%w: webhooks.x.url: missing", ErrBadEndpoint)), permanent: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := Classify(tc.status, tc.header, tc.err, now)
			if o.Done != tc.done || o.Permanent != tc.permanent || o.RetryAfter != tc.after {
				t.Errorf("Classify(%d, %v, %v) = done %v permanent %v after %v; want %v %v %v",
					tc.status, tc.header, tc.err, o.Done, o.Permanent, o.RetryAfter, tc.done, tc.permanent, tc.after)
			}
			if o.Attempt.Status != tc.status {
				t.Errorf("Attempt.Status = %d, want %d", o.Attempt.Status, tc.status)
			}
			if tc.done != (o.Attempt.Error == "") {
				t.Errorf("Attempt.Error = %q for done=%v", o.Attempt.Error, tc.done)
			}
			if !strings.Contains(o.Attempt.Error, tc.errHas) {
				t.Errorf("Attempt.Error = %q, want it to contain %q", o.Attempt.Error, tc.errHas)
			}
		})
	}
}

// TestClassifyOverHTTP runs the classification against a real server for
// each behaviour an endpoint can show.
func TestClassifyOverHTTP(t *testing.T) {
	now := time.Date(2026, 11, 29, 5, 0, 0, 0, time.UTC)
	stop := make(chan struct{})
	redirectTargetHit := make(chan struct{}, 1)
	mux := http.NewServeMux()
	status := func(code int, h ...string) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			for i := 0; i+1 < len(h); i += 2 {
				w.Header().Set(h[i], h[i+1])
			}
			w.WriteHeader(code)
			fmt.Fprintf(w, "status %d", code)
		}
	}
	mux.HandleFunc("/200", status(200))
	mux.HandleFunc("/204", status(204))
	mux.HandleFunc("/301", status(301, "Location", "/200-moved"))
	mux.HandleFunc("/200-moved", func(http.ResponseWriter, *http.Request) { redirectTargetHit <- struct{}{} })
	mux.HandleFunc("/400", status(400))
	mux.HandleFunc("/410", status(410))
	mux.HandleFunc("/429s", status(429, "Retry-After", "30"))
	mux.HandleFunc("/429d", status(429, "Retry-After", now.Add(5*time.Minute).Format(http.TimeFormat)))
	mux.HandleFunc("/500", status(500))
	mux.HandleFunc("/503", status(503, "Retry-After", "120"))
	mux.HandleFunc("/sleep", func(w http.ResponseWriter, r *http.Request) {
		// Reading the body lets the server notice the client leave; the
		// handler answers past the endpoint's timeout, so the client gives up.
		io.Copy(io.Discard, r.Body)
		select {
		case <-r.Context().Done():
		case <-stop:
		}
	})
	mux.HandleFunc("/reset", func(w http.ResponseWriter, r *http.Request) {
		c, _, err := w.(http.Hijacker).Hijack()
		if err != nil {
			t.Error(err)
			return
		}
		c.(*net.TCPConn).SetLinger(0) // close sends RST
		c.Close()
	})
	mux.HandleFunc("/slowbody", func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.WriteHeader(500)
		w.(http.Flusher).Flush()
		select {
		case <-r.Context().Done():
		case <-stop:
		}
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()
	defer close(stop) // before srv.Close: release blocked handlers
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	refused := "http://" + ln.Addr().String() + "/"
	ln.Close()

	eps := map[string]Endpoint{}
	for _, p := range []string{"200", "204", "301", "400", "410", "429s", "429d", "500", "503", "sleep", "reset", "slowbody"} {
		eps[p] = Endpoint{URL: srv.URL + "/" + p, Secrets: []string{NewSecret()}, AllowPrivate: true, Timeout: 300 * time.Millisecond}
	}
	eps["refused"] = Endpoint{URL: refused, Secrets: []string{NewSecret()}, AllowPrivate: true}
	s := NewSender(Options{Endpoints: eps, Now: func() time.Time { return now }})
	defer s.Close()

	for _, tc := range []struct {
		ep        string
		status    int
		done      bool
		permanent bool
		after     time.Duration
		errHas    string
		response  string
	}{
		{ep: "200", status: 200, done: true, response: "status 200"},
		{ep: "204", status: 204, done: true},
		{ep: "301", status: 301, errHas: `redirect not followed (to "/200-moved")`, response: "status 301"},
		{ep: "400", status: 400, errHas: "http status 400", response: "status 400"},
		{ep: "410", status: 410, permanent: true, errHas: "gone"},
		{ep: "429s", status: 429, after: 30 * time.Second},
		{ep: "429d", status: 429, after: 5 * time.Minute},
		{ep: "500", status: 500, errHas: "http status 500"},
		{ep: "503", status: 503, after: 2 * time.Minute},
		{ep: "sleep", errHas: "timeout after 300ms"},
		{ep: "reset", errHas: "connection reset"},
		{ep: "refused", errHas: "connection refused"},
		{ep: "slowbody", status: 500, errHas: "http status 500"}, // body cut by the timeout
	} {
		t.Run(tc.ep, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			o := s.Handle(ctx, testJob(tc.ep), testMail(), nil)
			if o.Done != tc.done || o.Permanent != tc.permanent || o.RetryAfter != tc.after || o.Attempt.Status != tc.status {
				t.Errorf("Handle(%s) = %+v; want status %d done %v permanent %v after %v",
					tc.ep, o, tc.status, tc.done, tc.permanent, tc.after)
			}
			if !strings.Contains(o.Attempt.Error, tc.errHas) {
				t.Errorf("Handle(%s).Attempt.Error = %q, want it to contain %q", tc.ep, o.Attempt.Error, tc.errHas)
			}
			if tc.response != "" && o.Attempt.Response != tc.response {
				t.Errorf("Handle(%s).Attempt.Response = %q, want %q", tc.ep, o.Attempt.Response, tc.response)
			}
			if !o.Attempt.At.Equal(now) || o.Attempt.Latency <= 0 {
				t.Errorf("Handle(%s): At %v, Latency %v", tc.ep, o.Attempt.At, o.Attempt.Latency)
			}
			if strings.Contains(o.Attempt.Error, srv.URL+"/") {
				t.Errorf("Handle(%s): error %q carries the URL path", tc.ep, o.Attempt.Error)
			}
		})
	}
	select {
	case <-redirectTargetHit:
		t.Error("a redirect was followed")
	default:
	}
}

// TestParentCancel: a cancelled attempt (shutdown) is retried, not dead.
func TestParentCancel(t *testing.T) {
	started := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		close(started)
		<-r.Context().Done()
	}))
	defer srv.Close()
	s := NewSender(Options{Endpoints: map[string]Endpoint{"e": {URL: srv.URL, Secrets: []string{NewSecret()}, AllowPrivate: true}}})
	defer s.Close()
	ctx, cancel := context.WithCancel(context.Background())
	out := make(chan deliver.Outcome, 1)
	go func() { out <- s.Handle(ctx, testJob("e"), testMail(), nil) }()
	<-started
	cancel()
	o := <-out
	if o.Done || o.Permanent || !strings.Contains(o.Attempt.Error, "cancelled") {
		t.Errorf("cancelled attempt = %+v, want a retryable failure", o)
	}
}

func TestDescribeErr(t *testing.T) {
	err := describeErr(fmt.Errorf("dial: %w", syscall.ECONNREFUSED), time.Second, "h:1")
	if got := err.Error(); got != "webhook: post to h:1: connection refused: dial: connection refused" {
		t.Errorf("describeErr = %q", got)
	}
	if !errors.Is(err, syscall.ECONNREFUSED) {
		t.Error("describeErr lost the cause")
	}
}
