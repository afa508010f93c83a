package admin

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/mailhook/mailhook/internal/clientip"
	"github.com/mailhook/mailhook/internal/loginlimit"
)

// Logins: the bearer token (API) and the dashboard's login form check the
// same token, and share one loginlimit.Limiter, the type IMAP and POP3
// use. The token is compared in constant time after a SHA-256, which costs
// nothing, so every attempt is checked: a right token is never refused
// because other clients behind the same address failed. A wrong one counts
// against the client's address; after adminLockAfter failures within
// adminWindow that address's wrong attempts are answered 429 with
// Retry-After instead of 401. Resistance to guessing comes from the
// token's length: use 32 random bytes (`openssl rand -hex 32`).
const (
	adminLockAfter = 10
	adminWindow    = time.Minute
	// maxSessions bounds the dashboard sessions remembered; beyond, the
	// ones closest to expiry are dropped (their users log in again).
	maxSessions = 1000
)

func newAdminLimiter(now func() time.Time) *loginlimit.Limiter {
	return loginlimit.New(loginlimit.Options{Window: adminWindow, LockAfter: adminLockAfter,
		LockAfterIP: adminLockAfter, FreeFailures: adminLockAfter, Now: now})
}

// checkToken reports whether tok is the admin token.
func (s *Server) checkToken(tok string) bool {
	got := sha256.Sum256([]byte(strings.TrimSpace(tok)))
	return tok != "" && subtle.ConstantTimeCompare(got[:], s.tokenH[:]) == 1
}

// refuseLogin records a wrong token from r's client. When the client's
// address has failed too often lately it answers 429 and returns true;
// otherwise the caller answers.
func (s *Server) refuseLogin(w http.ResponseWriter, r *http.Request) bool {
	ip := clientAddr(r)
	s.opts.Metrics.FailedLogin("admin")
	s.limiter.Failed(ip, "")
	s.log.Warn("admin login failed", "remote_ip", remoteIP(r), "path", r.URL.Path)
	var te *loginlimit.ThrottledError
	if err := s.limiter.Check(ip, ""); !errors.As(err, &te) {
		return false
	}
	w.Header().Set("Retry-After", strconv.Itoa(max(1, int(te.Until.Sub(s.now()).Seconds()+0.5))))
	writeError(w, http.StatusTooManyRequests, "too many failed logins from this address; try again later")
	return true
}

func (s *Server) login(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 8<<10)
	if !s.checkToken(r.PostFormValue("token")) {
		if !s.refuseLogin(w, r) {
			http.Redirect(w, r, "/?login=failed", http.StatusSeeOther)
		}
		return
	}
	exp := s.now().Add(s.opts.SessionTTL)
	id, err := s.sessions.create(exp)
	if err != nil {
		s.internalError(w, r, err)
		return
	}
	http.SetCookie(w, &http.Cookie{
		Name: sessionName, Value: id, Path: "/",
		Expires: exp, MaxAge: int(s.opts.SessionTTL / time.Second),
		HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil,
	})
	http.Redirect(w, r, "/", http.StatusSeeOther)
}

// logout ends the session on the server, so a copy of the cookie is
// worth nothing afterwards, and clears the cookie.
func (s *Server) logout(w http.ResponseWriter, r *http.Request) {
	if c, err := r.Cookie(sessionName); err == nil {
		s.sessions.revoke(c.Value)
	}
	http.SetCookie(w, &http.Cookie{
		Name: sessionName, Value: "", Path: "/", MaxAge: -1,
		HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil,
	})
	http.Redirect(w, r, "/", http.StatusSeeOther)
}

func (s *Server) validSession(v string) bool { return s.sessions.valid(v, s.now()) }

// sessionStore holds the dashboard's sessions on the server: the cookie
// is a random id, and logging out deletes it. Only SHA-256 digests of the
// ids are kept. A restart ends every session.
type sessionStore struct {
	mu sync.Mutex
	m  map[[sha256.Size]byte]time.Time // id digest → expiry
}

func (st *sessionStore) create(exp time.Time) (string, error) {
	id := rand.Text() // 26 base32 characters, 130 bits
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.m == nil {
		st.m = map[[sha256.Size]byte]time.Time{}
	}
	if len(st.m) >= maxSessions {
		st.evict()
	}
	st.m[sha256.Sum256([]byte(id))] = exp
	return id, nil
}

// evict drops the session closest to expiry (the expired ones first).
// st.mu is held.
func (st *sessionStore) evict() {
	var first [sha256.Size]byte
	var firstExp time.Time
	for k, exp := range st.m {
		if firstExp.IsZero() || exp.Before(firstExp) {
			first, firstExp = k, exp
		}
	}
	delete(st.m, first)
}

func (st *sessionStore) valid(id string, now time.Time) bool {
	if id == "" {
		return false
	}
	k := sha256.Sum256([]byte(id))
	st.mu.Lock()
	defer st.mu.Unlock()
	exp, ok := st.m[k]
	if ok && !now.Before(exp) {
		delete(st.m, k)
		return false
	}
	return ok
}

func (st *sessionStore) revoke(id string) {
	k := sha256.Sum256([]byte(id))
	st.mu.Lock()
	delete(st.m, k)
	st.mu.Unlock()
}

// clientAddr is the client's IP address.
func clientAddr(r *http.Request) netip.Addr { return clientip.Parse(r.RemoteAddr) }

// remoteIP is the client's IP address as the logs show it.
func remoteIP(r *http.Request) string { return clientAddr(r).String() }
