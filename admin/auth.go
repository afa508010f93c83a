package admin

// Who may call what: the token or the dashboard session, the CSRF header,
// the dashboard's security headers.

import (
	"io"
	"net/http"
	"strings"
)

// Header names of the dashboard's CSRF defence: a state-changing request
// authenticated by the session cookie must carry this header, which only
// same-origin JavaScript can set (a cross-site form cannot, and a
// cross-site fetch with it needs a CORS preflight we never grant).
const (
	csrfHeader  = "X-Mailhook-Request"
	sessionName = "mailhook_session"
)

const disabledText = "admin API and dashboard are disabled: no admin token is configured (set admin.token or MAILHOOK_ADMIN_TOKEN)"

// authVia is how a request proved it holds the token.
type authVia int

const (
	authNone authVia = iota
	authBearer
	authCookie
)

// authenticate checks the bearer token (RFC 6750 §2.1) or the session
// cookie, in constant time.
func (s *Server) authenticate(r *http.Request) authVia {
	if h := r.Header.Get("Authorization"); h != "" {
		scheme, tok, ok := strings.Cut(h, " ")
		if !ok || !strings.EqualFold(scheme, "Bearer") {
			return authNone
		}
		if s.checkToken(tok) {
			return authBearer
		}
		return authNone
	}
	if c, err := r.Cookie(sessionName); err == nil && s.validSession(c.Value) {
		return authCookie
	}
	return authNone
}

// api wraps a handler that needs the token.
func (s *Server) api(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		if s.opts.Token == "" {
			writeError(w, http.StatusForbidden, disabledText)
			return
		}
		via := s.authenticate(r)
		switch {
		case via == authNone:
			if r.Header.Get("Authorization") != "" && s.refuseLogin(w, r) {
				return
			}
			w.Header().Set("WWW-Authenticate", `Bearer realm="mailhook admin"`)
			writeError(w, http.StatusUnauthorized, "authentication required: Authorization: Bearer <admin token>")
			return
		case via == authCookie && r.Method != http.MethodGet && r.Method != http.MethodHead && r.Header.Get(csrfHeader) == "":
			writeError(w, http.StatusForbidden, "missing "+csrfHeader+" header")
			return
		}
		h(w, r)
	}
}

// dashboard wraps the dashboard's handlers: disabled without a token, and
// with headers that keep the pages from being framed or loading anything
// from elsewhere.
func (s *Server) dashboard(h http.Handler) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if s.opts.Token == "" {
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			w.WriteHeader(http.StatusForbidden)
			io.WriteString(w, disabledText+"\n")
			return
		}
		hd := w.Header()
		hd.Set("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
		hd.Set("X-Frame-Options", "DENY")
		hd.Set("X-Content-Type-Options", "nosniff")
		hd.Set("Referrer-Policy", "no-referrer")
		h.ServeHTTP(w, r)
	}
}
