package admin

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"github.com/mailhook/mailhook/deliver"
	"github.com/mailhook/mailhook/inbound"
	"github.com/mailhook/mailhook/internal/testenv"
)

// chromiumPath finds Debian's chromium (apt-get install chromium), or the
// browser named by MAILHOOK_CHROMIUM. Without one the test skips, unless
// MAILHOOK_REQUIRE_ALL is set (to anything), which makes it fail.
func chromiumPath(t *testing.T) string {
	t.Helper()
	candidates := []string{os.Getenv("MAILHOOK_CHROMIUM"), "/usr/bin/chromium", "chromium", "chromium-browser"}
	for _, c := range candidates {
		if c == "" {
			continue
		}
		if p, err := exec.LookPath(c); err == nil {
			return p
		}
	}
	testenv.Missing(t, "chromium not found (apt-get install -y chromium)")
	return ""
}

// TestDashboardBrowser drives the dashboard in a real headless Chromium:
// log in, see the list, open a message, replay a dead letter, look at the
// charts, take a screenshot.
func TestDashboardBrowser(t *testing.T) {
	bin := chromiumPath(t)
	e := newEnv(t, testToken)
	ctx := t.Context()

	// A message that was retried, then delivered.
	f := newFixture(t)
	accept(t, e.q, e.act, mailOpts{id: "fire", raw: f.raw, received: e.clock.Now(),
		spam: &inbound.Spam{Result: "ok", Score: 1.25, RequiredScore: 15, Action: "no action", Symbols: []inbound.SpamSymbol{{Name: "R_DKIM_ALLOW", Score: -0.2}}}})
	jobs, _ := e.q.Take(ctx, deliver.Kinds, 1, time.Minute)
	retry := deliver.Attempt{At: e.clock.Now(), Status: 503, Latency: 231 * time.Millisecond, Error: "webhook: 503 Service Unavailable", Response: "upstream busy"}
	e.q.Retry(ctx, jobs[0], e.clock.Now(), retry)
	e.act.RecordAttempt(jobs[0], retry, deliver.SettleRetry)
	e.act.RecordSent(jobs[0].ID, []byte(`{"type":"message.received","id":"fire","route":"tickets"}`))
	jobs, _ = e.q.Take(ctx, deliver.Kinds, 1, time.Minute)
	ok := deliver.Attempt{At: e.clock.Now(), Status: 200, Latency: 48 * time.Millisecond}
	e.q.Ack(ctx, jobs[0])
	e.act.RecordAttempt(jobs[0], ok, deliver.SettleDelivered)
	// A dead letter.
	e.clock.Add(time.Second)
	accept(t, e.q, e.act, mailOpts{id: "lost", rcpt: "sales@example.test", route: "people", received: e.clock.Now()})
	jobs, _ = e.q.Take(ctx, deliver.Kinds, 1, time.Minute)
	gone := deliver.Attempt{At: e.clock.Now(), Status: 410, Latency: 12 * time.Millisecond, Error: "webhook: 410 Gone"}
	e.q.Dead(ctx, jobs[0], gone)
	e.act.RecordAttempt(jobs[0], gone, deliver.SettleDead)
	deadID := jobs[0].ID
	e.act.RecordRefused(Refused{RemoteIP: "198.51.100.7", Code: 550, Enhanced: "5.7.1", Reason: "relay_denied", Stage: "rcpt"})
	for i := range 5 {
		e.act.SampleQueue(i)
	}

	bctx, step, text := startBrowser(t, bin)

	step("load", chromedp.Navigate(e.base+"/"), chromedp.WaitVisible(chromedp.CSS("#login-form")))
	step("bad login", chromedp.SendKeys(chromedp.CSS("#token"), "not the token"), chromedp.Click(chromedp.CSS("#login-submit")),
		chromedp.WaitVisible(chromedp.CSS("#login-error")))
	step("login", chromedp.SendKeys(chromedp.CSS("#token"), testToken), chromedp.Click(chromedp.CSS("#login-submit")),
		chromedp.WaitVisible(chromedp.CSS(`#messages tr[data-id="fire"]`)),
		chromedp.WaitVisible(chromedp.CSS(`#messages tr[data-id="lost"]`)))
	if s := text(`#messages tr[data-id="fire"]`); !strings.Contains(s, "Printer on fire") || !strings.Contains(s, "delivered") {
		t.Fatalf("list row = %q", s)
	}
	if s := text(`#messages tr[data-id="lost"]`); !strings.Contains(s, "dead") {
		t.Fatalf("list row = %q", s)
	}

	// A message arriving now shows up without a reload (the list polls).
	accept(t, e.q, e.act, mailOpts{id: "late", received: e.clock.Now()})
	step("live list", chromedp.WaitVisible(chromedp.CSS(`#messages tr[data-id="late"]`)))

	step("open message", chromedp.Click(chromedp.CSS(`#messages tr[data-id="fire"] a`)),
		chromedp.WaitVisible(chromedp.CSS("#msg-attempts .attempts")))
	auth := text("#msg-auth")
	for _, want := range []string{"SPF", "DKIM", "DMARC", "pass", "example.org"} {
		if !strings.Contains(auth, want) {
			t.Fatalf("auth section %q lacks %q", auth, want)
		}
	}
	// rspamd's verdict sits beside the auth verdicts.
	if s := text("#msg-spam"); !strings.Contains(s, "no action") || !strings.Contains(s, "1.25 / 15.00") {
		t.Fatalf("spam row = %q", s)
	}
	if s := text("#msg-rules"); !strings.Contains(s, "tickets") || !strings.Contains(s, "matched") {
		t.Fatalf("rules section = %q", s)
	}
	att := text("#msg-attempts")
	for _, want := range []string{"503", "231 ms", "upstream busy", "200", "48 ms", "delivered", "Webhook JSON sent"} {
		if !strings.Contains(att, want) {
			t.Fatalf("attempts section %q lacks %q", att, want)
		}
	}
	shot(t, bctx, "message.png")

	step("dead letters", chromedp.Click(chromedp.CSS(`#nav a[data-view="dead"]`)),
		chromedp.WaitVisible(chromedp.CSS(`#dead tr[data-job="`+deadID+`"] button.replay`)))
	shot(t, bctx, "dead.png")
	step("replay", chromedp.Click(chromedp.CSS(`#dead tr[data-job="`+deadID+`"] button.replay`)),
		chromedp.WaitNotPresent(chromedp.CSS(`#dead tr[data-job="`+deadID+`"]`)),
		chromedp.WaitVisible(chromedp.CSS("#dead-empty")))
	j, err := e.q.Get(ctx, deadID)
	if err != nil || j.StateAt(e.clock.Now()) == deliver.StateDead {
		t.Fatalf("after replay in the browser: job %+v, %v", j, err)
	}
	if st, _ := e.q.Stats(ctx); st.Dead != 0 {
		t.Fatalf("queue still holds %d dead jobs", st.Dead)
	}

	step("refused", chromedp.Click(chromedp.CSS(`#nav a[data-view="refused"]`)),
		chromedp.WaitVisible(chromedp.CSS("#refused tbody tr")))
	if s := text("#refused tbody tr"); !strings.Contains(s, "198.51.100.7") || !strings.Contains(s, "550 5.7.1") || !strings.Contains(s, "relay_denied") {
		t.Fatalf("refused row = %q", s)
	}

	step("charts", chromedp.Click(chromedp.CSS(`#nav a[data-view="charts"]`)),
		chromedp.WaitVisible(chromedp.CSS("#chart-messages svg path.series")),
		chromedp.WaitVisible(chromedp.CSS("#chart-delivery svg path.series")),
		chromedp.WaitVisible(chromedp.CSS("#chart-queue svg circle.dot")))
	if s := text("#chart-messages"); !strings.Contains(s, "accepted/min (total 3)") || !strings.Contains(s, "refused/min (total 1)") {
		t.Fatalf("chart legend = %q", s)
	}
	shot(t, bctx, "charts.png")

	step("back to the list", chromedp.Click(chromedp.CSS(`#nav a[data-view="messages"]`)),
		chromedp.WaitVisible(chromedp.CSS(`#messages tr[data-id="lost"]`)))
	shot(t, bctx, "messages.png")

	step("logout", chromedp.Click(chromedp.CSS("#logout-form button")), chromedp.WaitVisible(chromedp.CSS("#login-form")))
}

// startBrowser starts a headless Chromium for the test; uncaught
// JavaScript exceptions in its pages fail the test. step runs actions
// with a deadline each; text returns the text of the first element sel
// matches.
func startBrowser(t *testing.T, bin string) (bctx context.Context, step func(name string, actions ...chromedp.Action[chromedp.Void]), text func(sel string) string) {
	t.Helper()
	actx, cancelA := chromedp.NewExecAllocator(t.Context(),
		chromedp.ExecPath(bin),
		chromedp.Flag("headless", true),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.NoFirstRun,
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 1000),
	)
	bctx, cancelB := chromedp.NewContext(actx)
	t.Cleanup(func() { cancelB(); cancelA() })

	var mu sync.Mutex
	var jsErrors []string
	if err := chromedp.Listen(bctx, func(ev any) {
		if ex, ok := ev.(*runtime.EventExceptionThrown); ok {
			mu.Lock()
			jsErrors = append(jsErrors, fmt.Sprintf("%s (%s:%d)", exceptionText(ex.ExceptionDetails), ex.ExceptionDetails.URL, ex.ExceptionDetails.LineNumber))
			mu.Unlock()
		}
	}); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	t.Cleanup(func() {
		mu.Lock()
		defer mu.Unlock()
		for _, s := range jsErrors {
			t.Errorf("JavaScript exception: %s", s)
		}
	})
	// Each step has its own deadline (derived after the browser started, so
	// the browser outlives it).
	step = func(name string, actions ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		sctx, cancel := context.WithTimeout(bctx, 20*time.Second)
		defer cancel()
		if err := chromedp.Do(sctx, actions...); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
	}
	text = func(sel string) string {
		t.Helper()
		sctx, cancel := context.WithTimeout(bctx, 20*time.Second)
		defer cancel()
		s, err := chromedp.Run(sctx, chromedp.Text(chromedp.CSS(sel)))
		if err != nil {
			t.Fatalf("text of %s: %v", sel, err)
		}
		return s
	}
	return bctx, step, text
}

func exceptionText(d *runtime.ExceptionDetails) string {
	if d == nil {
		return "?"
	}
	if d.Exception != nil && d.Exception.Description != "" {
		return d.Exception.Description
	}
	return d.Text
}

// shot saves a full-page screenshot into the test's temporary directory,
// and into MAILHOOK_SCREENSHOT_DIR when set (to look at it).
func shot(t *testing.T, bctx context.Context, name string) {
	t.Helper()
	sctx, cancel := context.WithTimeout(bctx, 20*time.Second)
	defer cancel()
	png, err := chromedp.Run(sctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot %s: %v", name, err)
	}
	if len(png) < 1000 {
		t.Fatalf("screenshot %s: only %d bytes", name, len(png))
	}
	dirs := []string{t.TempDir()}
	if d := os.Getenv("MAILHOOK_SCREENSHOT_DIR"); d != "" {
		dirs = append(dirs, d)
	}
	for _, d := range dirs {
		if err := os.WriteFile(filepath.Join(d, name), png, 0o644); err != nil {
			t.Fatal(errors.Join(fmt.Errorf("save screenshot"), err))
		}
	}
}
