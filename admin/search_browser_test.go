package admin

import (
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/mailhook/mailhook/deliver"
	"github.com/mailhook/mailhook/route"
)

// TestDashboardSearch drives the dashboard's search in a headless
// Chromium: a message is found by its Message-ID, sender, subject, stable
// id and the id of one of its jobs (a webhook-id); the "dead" filter shows
// a partially delivered message; the Refused tab filters by stage and
// text; a mailbox delivery shows as stored, not as an error.
func TestDashboardSearch(t *testing.T) {
	bin := chromiumPath(t)
	e := newEnv(t, testToken)
	ctx := t.Context()

	f := newFixture(t)
	accept(t, e.q, e.act, mailOpts{id: "fire", raw: f.raw, stable: "st-fire", received: e.clock.Now()})
	e.clock.Add(time.Second)
	accept(t, e.q, e.act, mailOpts{id: "other", rcpt: "sales@example.test", received: e.clock.Now(),
		raw: "From: bob@elsewhere.test\r\nTo: sales@example.test\r\nSubject: hello other\r\n\r\nHi.\r\n"})
	// "half": its webhook job is dead, its mailbox job delivered.
	e.clock.Add(time.Second)
	accept(t, e.q, e.act, mailOpts{id: "half", received: e.clock.Now(), jobs: []*deliver.Job{
		{ID: "half-w", MsgID: "half", Kind: deliver.KindWebhook, Target: "tickets-hook", Route: "tickets", Action: route.Action{Kind: route.ActWebhook, Webhook: "tickets-hook"}},
		{ID: "half-m", MsgID: "half", Kind: deliver.KindMailbox, Target: "support", Route: "tickets", Action: route.Action{Kind: route.ActMailbox, Mailbox: "support"}},
	}})
	for range 4 { // fire-w and other-w wait for a retry; half-w dies, half-m is stored
		jobs, err := e.q.Take(ctx, deliver.Kinds, 1, time.Minute)
		if err != nil || len(jobs) != 1 {
			t.Fatalf("Take = %v, %v", jobs, err)
		}
		j := jobs[0]
		switch j.ID {
		case "half-w":
			a := deliver.Attempt{At: e.clock.Now(), Status: 410, Error: "webhook: 410 Gone"}
			e.q.Dead(ctx, j, a)
			e.act.RecordAttempt(j, a, deliver.SettleDead)
		case "half-m":
			a := deliver.Attempt{At: e.clock.Now(), Latency: 3 * time.Millisecond}
			e.q.Ack(ctx, j)
			e.act.RecordAttempt(j, a, deliver.SettleDelivered)
		default:
			e.q.Retry(ctx, j, e.clock.Now().Add(time.Hour), deliver.Attempt{At: e.clock.Now(), Status: 503})
		}
	}
	e.act.RecordRefused(Refused{At: e.clock.Now(), RemoteIP: "198.51.100.7", MailFrom: "spam@bad.test", Code: 550, Enhanced: "5.7.1", Reason: "relay_denied", Stage: "rcpt"})
	e.act.RecordRefused(Refused{At: e.clock.Now(), RemoteIP: "203.0.113.9", MailFrom: "x@slow.test", Code: 421, Enhanced: "4.7.0", Reason: "limit", Stage: "connect"})

	_, step, text := startBrowser(t, bin)
	step("login", chromedp.Navigate(e.base+"/"), chromedp.WaitVisible(chromedp.CSS("#login-form")),
		chromedp.SendKeys(chromedp.CSS("#token"), testToken), chromedp.Click(chromedp.CSS("#login-submit")),
		chromedp.WaitVisible(chromedp.CSS(`#messages tr[data-id="other"]`)))

	search := func(q string) {
		t.Helper()
		step("search "+q, chromedp.SetValue(chromedp.CSS(`#filters input[name="q"]`), q), chromedp.Click(chromedp.CSS(`#filters button`)),
			chromedp.WaitVisible(chromedp.CSS(`#messages tr[data-id="fire"]`)),
			chromedp.WaitNotPresent(chromedp.CSS(`#messages tr[data-id="other"]`)))
		if s := text("#messages tbody"); !strings.Contains(s, "Printer on fire") {
			t.Errorf("search %q: list = %q", q, s)
		}
		// (a blank, as chromedp cannot set an empty value; the server trims it)
		step("clear", chromedp.SetValue(chromedp.CSS(`#filters input[name="q"]`), " "), chromedp.Click(chromedp.CSS(`#filters button`)),
			chromedp.WaitVisible(chromedp.CSS(`#messages tr[data-id="other"]`)))
	}
	for _, q := range []string{"fire-1@example.org", "Alice@Example.org", "printer on", "st-fire", "fire-w"} {
		search(q)
	}

	step("dead filter", chromedp.SetValue(chromedp.CSS(`#filters select[name="status"]`), "dead"), chromedp.Click(chromedp.CSS(`#filters button`)),
		chromedp.WaitVisible(chromedp.CSS(`#messages tr[data-id="half"]`)),
		chromedp.WaitNotPresent(chromedp.CSS(`#messages tr[data-id="other"]`)))
	if s := text("#messages tbody"); !strings.Contains(s, "partially delivered") {
		t.Errorf("dead filter row = %q", s)
	}
	step("open half", chromedp.Click(chromedp.CSS(`#messages tr[data-id="half"] a`)),
		chromedp.WaitVisible(chromedp.CSS(`#msg-attempts .job[data-job="half-m"] .attempts`)))
	if s := text(`#msg-attempts .job[data-job="half-m"] .attempts tbody`); !strings.Contains(s, "stored") || strings.Contains(s, "—") {
		t.Errorf("mailbox delivery attempt = %q, want stored", s)
	}

	step("refused", chromedp.Click(chromedp.CSS(`#nav a[data-view="refused"]`)),
		chromedp.WaitVisible(chromedp.CSS("#refused tbody tr")))
	step("refused by stage", chromedp.SetValue(chromedp.CSS(`#refused-filters select[name="stage"]`), "connect"), chromedp.Click(chromedp.CSS(`#refused-filters button`)),
		chromedp.WaitNotPresent(chromedp.CSS(`#refused tr[data-ip="198.51.100.7"]`)), chromedp.WaitVisible(chromedp.CSS(`#refused tr[data-ip="203.0.113.9"]`)))
	if s := text("#refused tbody"); !strings.Contains(s, "203.0.113.9") || strings.Contains(s, "198.51.100.7") {
		t.Errorf("refused, stage connect = %q", s)
	}
	step("refused by stage and text", chromedp.SetValue(chromedp.CSS(`#refused-filters select[name="stage"]`), "rcpt"),
		chromedp.SetValue(chromedp.CSS(`#refused-filters input[name="q"]`), "bad.test"), chromedp.Click(chromedp.CSS(`#refused-filters button`)),
		chromedp.WaitNotPresent(chromedp.CSS(`#refused tr[data-ip="203.0.113.9"]`)), chromedp.WaitVisible(chromedp.CSS(`#refused tr[data-ip="198.51.100.7"]`)))
	if s := text("#refused tbody"); !strings.Contains(s, "198.51.100.7") || strings.Contains(s, "203.0.113.9") {
		t.Errorf("refused, text bad.test = %q", s)
	}
}
