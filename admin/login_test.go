package admin

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

// clientFrom returns an HTTP client whose connections come from the local
// address ip (Linux routes all of 127/8 to lo) and that does not follow
// redirects.
func clientFrom(ip net.IP) *http.Client {
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: ip}}
	return &http.Client{
		Transport: &http.Transport{DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			return d.DialContext(ctx, network, addr)
		}},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

func send(t *testing.T, c *http.Client, method, u, bearer, cookie string, form url.Values) *http.Response {
	t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, u, body)
	if err != nil {
		t.Fatal(err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	if cookie != "" {
		req.AddCookie(&http.Cookie{Name: sessionName, Value: cookie})
	}
	res, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, u, err)
	}
	io.Copy(io.Discard, res.Body)
	res.Body.Close()
	return res
}

// TestLoginThrottle: wrong tokens from one address are answered 429
// after adminLockAfter failures (counted, with Retry-After), while the
// right token, from that address or any other, is never refused.
func TestLoginThrottle(t *testing.T) {
	e := newEnv(t, testToken)
	attacker, other := clientFrom(net.IPv4(127, 0, 0, 2)), clientFrom(net.IPv4(127, 0, 0, 3))
	unauthorized, refused := 0, 0
	for i := range 3 * adminLockAfter {
		res := send(t, attacker, "GET", e.base+"/api/queue/stats", "guess", "", nil)
		switch {
		case res.StatusCode == http.StatusUnauthorized:
			unauthorized++
		case res.StatusCode == http.StatusTooManyRequests && res.Header.Get("Retry-After") != "":
			refused++
		default:
			t.Fatalf("guess %d = %d (Retry-After %q)", i, res.StatusCode, res.Header.Get("Retry-After"))
		}
	}
	if unauthorized != adminLockAfter-1 || refused != 2*adminLockAfter+1 {
		t.Errorf("guesses: %d answered 401, %d 429; want %d and %d", unauthorized, refused, adminLockAfter-1, 2*adminLockAfter+1)
	}
	if res := send(t, attacker, "POST", e.base+"/login", "", "", url.Values{"token": {"guess"}}); res.StatusCode != http.StatusTooManyRequests {
		t.Errorf("dashboard login with a wrong token from the throttled address = %d, want 429", res.StatusCode)
	}
	// Another client behind the same address holds the right token.
	if res := send(t, attacker, "GET", e.base+"/api/queue/stats", testToken, "", nil); res.StatusCode != http.StatusOK {
		t.Errorf("right token from the throttled address = %d, want 200", res.StatusCode)
	}
	if res := send(t, attacker, "POST", e.base+"/login", "", "", url.Values{"token": {testToken}}); res.StatusCode != http.StatusSeeOther || len(res.Cookies()) != 1 {
		t.Errorf("dashboard login with the right token from the throttled address = %d %v, want 303 and a cookie", res.StatusCode, res.Cookies())
	}
	// Another address is not throttled at all.
	if res := send(t, other, "GET", e.base+"/api/queue/stats", "typo", "", nil); res.StatusCode != http.StatusUnauthorized {
		t.Errorf("one wrong token from another address = %d, want 401", res.StatusCode)
	}
	e.clock.Add(adminWindow)
	if res := send(t, attacker, "GET", e.base+"/api/queue/stats", "guess", "", nil); res.StatusCode != http.StatusUnauthorized {
		t.Errorf("wrong token after the window = %d, want 401", res.StatusCode)
	}
	after := scrape(t, e)
	if got, want := after[`mailhook_failed_logins_total{proto="admin"}`], float64(3*adminLockAfter+3); got != want {
		t.Errorf("failed logins counted %v, want %v", got, want)
	}
}

// TestLogoutRevokesSession: after logging out, the session cookie is
// refused even when a copy of it is sent again.
func TestLogoutRevokesSession(t *testing.T) {
	e := newEnv(t, testToken)
	c := clientFrom(net.IPv4(127, 0, 0, 1))
	res := send(t, c, "POST", e.base+"/login", "", "", url.Values{"token": {testToken}})
	if res.StatusCode != http.StatusSeeOther || len(res.Cookies()) != 1 {
		t.Fatalf("login = %d %v", res.StatusCode, res.Cookies())
	}
	cookie := res.Cookies()[0].Value
	second := send(t, c, "POST", e.base+"/login", "", "", url.Values{"token": {testToken}}).Cookies()[0].Value
	if res := send(t, c, "GET", e.base+"/api/session", "", cookie, nil); res.StatusCode != http.StatusOK {
		t.Fatalf("GET /api/session with the cookie = %d, want 200", res.StatusCode)
	}
	res = send(t, c, "POST", e.base+"/logout", "", cookie, nil)
	if res.StatusCode != http.StatusSeeOther || len(res.Cookies()) != 1 || res.Cookies()[0].MaxAge >= 0 {
		t.Fatalf("logout = %d %v", res.StatusCode, res.Cookies())
	}
	if res := send(t, c, "GET", e.base+"/api/session", "", cookie, nil); res.StatusCode != http.StatusUnauthorized {
		t.Errorf("GET /api/session with the logged-out cookie = %d, want 401", res.StatusCode)
	}
	// Logging out ends that session only.
	if res := send(t, c, "GET", e.base+"/api/session", "", second, nil); res.StatusCode != http.StatusOK {
		t.Errorf("GET /api/session with another session = %d, want 200", res.StatusCode)
	}
}

func TestSessionStoreBounded(t *testing.T) {
	var st sessionStore
	now := newClock().Now()
	first, _ := st.create(now.Add(1))
	for i := range maxSessions {
		st.create(now.Add(2 + time.Duration(i)))
	}
	if len(st.m) > maxSessions {
		t.Fatalf("%d sessions kept, max %d", len(st.m), maxSessions)
	}
	if st.valid(first, now) {
		t.Error("the session closest to expiry was kept over the bound")
	}
}
