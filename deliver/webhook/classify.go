package webhook

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/mailhook/mailhook/deliver"
)

// MaxRetryAfter caps a Retry-After an endpoint asks for, so a hostile or
// broken endpoint cannot park a job past the queue's maximum age in one
// reply.
const MaxRetryAfter = 24 * time.Hour

// Configuration errors. A job whose endpoint is gone or broken is
// dead-lettered at once (Permanent): retrying cannot help until an operator
// fixes the configuration and replays it.
var (
	// ErrUnknownEndpoint means the job names an endpoint the configuration
	// no longer has.
	ErrUnknownEndpoint = errors.New("webhook: unknown endpoint")
	// ErrBadEndpoint means the endpoint's configuration is invalid.
	ErrBadEndpoint = errors.New("webhook: bad endpoint")
	// ErrBadJob means the job cannot be sent as it is: its id is empty or
	// holds a '.', which the signed content "{id}.{timestamp}.{body}" must
	// not (Standard Webhooks, "Signature scheme"), or white space.
	ErrBadJob = errors.New("webhook: bad job")
)

// Classify is the one place that decides what an attempt means, following
// the Standard Webhooks specification ("Delivery success and failure"):
//
//   - err from building or sending the request: ErrUnknownEndpoint,
//     ErrBadEndpoint and ErrBadJob are permanent; anything else (refused, reset, timeout,
//     TLS, a refused private address, a cancelled context) is retried;
//   - 2xx: done;
//   - 410 Gone: permanent, the receiver wants no more;
//   - 429 and 503: retried, after Retry-After (RFC 9110 section 10.2.3,
//     seconds or an HTTP-date) when present, capped at MaxRetryAfter;
//   - 3xx: a failure, retried; redirects are not followed (the URL should
//     be updated instead);
//   - any other status: retried.
//
// header is the response header (may be nil) and now the clock Retry-After
// dates are measured from. Classify fills Attempt.Status and Attempt.Error;
// the caller fills the rest of the attempt.
func Classify(status int, header http.Header, err error, now time.Time) deliver.Outcome {
	var o deliver.Outcome
	if err != nil {
		o.Attempt.Error = err.Error()
		o.Permanent = errors.Is(err, ErrUnknownEndpoint) || errors.Is(err, ErrBadEndpoint) || errors.Is(err, ErrBadJob)
		return o
	}
	o.Attempt.Status = status
	switch {
	case status >= 200 && status <= 299:
		o.Done = true
	case status == http.StatusGone:
		o.Permanent = true
		o.Attempt.Error = "410 gone: the endpoint asked for no more deliveries"
	case status >= 300 && status <= 399:
		o.Attempt.Error = fmt.Sprintf("%d redirect not followed", status)
		if loc := header.Get("Location"); loc != "" {
			o.Attempt.Error += fmt.Sprintf(" (to %.200q); update the webhook url", loc)
		}
	default:
		o.Attempt.Error = fmt.Sprintf("http status %d", status)
		if t := http.StatusText(status); t != "" {
			o.Attempt.Error += " " + strings.ToLower(t)
		}
		if status == http.StatusTooManyRequests || status == http.StatusServiceUnavailable {
			if d, ok := parseRetryAfter(header.Get("Retry-After"), now); ok {
				o.RetryAfter = d
				o.Attempt.Error += fmt.Sprintf("; retry after %s", d)
			}
		}
	}
	return o
}

// parseRetryAfter reads a Retry-After value (RFC 9110 section 10.2.3):
// delay-seconds or an HTTP-date. A date in the past gives no delay (false):
// the queue's schedule applies.
func parseRetryAfter(v string, now time.Time) (time.Duration, bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}
	var d time.Duration
	if n, err := strconv.ParseUint(v, 10, 64); err == nil || errors.Is(err, strconv.ErrRange) {
		if err != nil || n > uint64(MaxRetryAfter/time.Second) {
			return MaxRetryAfter, true
		}
		d = time.Duration(n) * time.Second
	} else if t, err := http.ParseTime(v); err == nil {
		d = t.Sub(now)
	} else {
		return 0, false
	}
	if d <= 0 {
		return 0, false
	}
	return min(d, MaxRetryAfter), true
}

// describeErr turns a transport error into an attempt's error text: it says
// what happened (timeout, refused, reset) first, and never carries the URL,
// whose path or query often holds a token.
func describeErr(err error, timeout time.Duration, host string) error {
	var what string
	var re *RefusedError
	var ne net.Error
	switch {
	case errors.As(err, &re):
		return re
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		what = fmt.Sprintf("timeout after %s", timeout)
	case errors.Is(err, context.Canceled):
		what = "cancelled"
	case errors.Is(err, syscall.ECONNREFUSED):
		what = "connection refused"
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		what = "connection reset"
	default:
		what = "request failed"
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err // drop `Post "<url>": `
	}
	return fmt.Errorf("webhook: post to %s: %s: %w", host, what, err)
}
