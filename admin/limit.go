package admin

import (
	"sync"
	"time"
)

// Failed-login throttling: after maxFailures failed attempts (a wrong
// bearer token or dashboard login) from one IP address within
// failureWindow, that address gets 429 for the rest of the window, right
// token or not, so the token cannot be guessed at network speed.
const (
	maxFailures   = 10
	failureWindow = time.Minute
	maxTracked    = 10000 // addresses remembered; memory stays bounded
)

type failRec struct {
	n     int
	start time.Time
}

type loginLimiter struct {
	mu   sync.Mutex
	recs map[string]*failRec
}

// blocked reports whether ip is locked out at now, and until when.
func (l *loginLimiter) blocked(ip string, now time.Time) (bool, time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	r := l.recs[ip]
	if r == nil || now.Sub(r.start) >= failureWindow {
		return false, time.Time{}
	}
	return r.n >= maxFailures, r.start.Add(failureWindow)
}

// fail counts a failure from ip.
func (l *loginLimiter) fail(ip string, now time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.recs == nil {
		l.recs = make(map[string]*failRec)
	}
	r := l.recs[ip]
	if r == nil || now.Sub(r.start) >= failureWindow {
		if len(l.recs) >= maxTracked {
			for k, v := range l.recs {
				if now.Sub(v.start) >= failureWindow {
					delete(l.recs, k)
				}
			}
			if len(l.recs) >= maxTracked {
				// Under a spread-out attack forget everyone rather
				// than grow; each address can still only try
				// maxFailures times per reset.
				clear(l.recs)
			}
		}
		r = &failRec{start: now}
		l.recs[ip] = r
	}
	r.n++
}
