package deliver_test

import (
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/mailhook/mailhook/config"
	"github.com/mailhook/mailhook/deliver"
	"github.com/mailhook/mailhook/deliver/queuetest"
	"github.com/mailhook/mailhook/inbound"
	"github.com/mailhook/mailhook/route"
)

func TestPlan(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	m := &inbound.Mail{ID: "mid1"}
	wh := route.Action{Kind: route.ActWebhook, Webhook: "tickets"}
	d := []route.Decision{
		{Rcpt: "a@example.test", Rules: []string{"r1"}, Actions: []route.Action{
			wh,
			{Kind: route.ActMailbox, Mailbox: "support"},
			{Kind: route.ActForward, Forward: []string{"x@one.example", "y@two.example", "z@ONE.example"}},
		}},
		{Rcpt: "b@example.test", Rules: []string{"r1"}, Actions: []route.Action{
			wh,
			{Kind: route.ActMailbox, Mailbox: "support", Folder: "Archive"},
			{Kind: route.ActForward, Forward: []string{"x@one.example"}},
		}},
		{Rcpt: "c@example.test", Rules: []string{"r2", "r3"}, Actions: []route.Action{
			wh,
			{Kind: route.ActDrop},
		}},
		{Rcpt: "d@example.test", Actions: []route.Action{{Kind: route.ActReject, RejectCode: 550}}},
	}
	jobs := deliver.Plan(m, d, now)
	type row struct {
		kind   deliver.Kind
		target string
		route  string
		rcpts  []string
	}
	want := []row{
		{deliver.KindWebhook, "tickets", "r1", []string{"a@example.test", "b@example.test"}},
		{deliver.KindMailbox, "support", "r1", []string{"a@example.test"}},
		{deliver.KindRelay, "one.example", "r1", []string{"x@one.example", "z@ONE.example"}},
		{deliver.KindRelay, "two.example", "r1", []string{"y@two.example"}},
		{deliver.KindMailbox, "support", "r1", []string{"b@example.test"}},
		{deliver.KindWebhook, "tickets", "r2", []string{"c@example.test"}},
	}
	if len(jobs) != len(want) {
		for _, j := range jobs {
			t.Logf("%+v", j)
		}
		t.Fatalf("Plan made %d jobs, want %d", len(jobs), len(want))
	}
	ids := map[string]bool{}
	for i, j := range jobs {
		w := want[i]
		if j.Kind != w.kind || j.Target != w.target || j.Route != w.route || !slices.Equal(j.Rcpts, w.rcpts) ||
			j.MsgID != "mid1" || !j.CreatedAt.Equal(now) || !j.NextAt.Equal(now) {
			t.Errorf("job %d = %+v, want %+v", i, j, w)
		}
		if ids[j.ID] || len(j.ID) != 30 {
			t.Errorf("job %d id %q duplicate or malformed", i, j.ID)
		}
		ids[j.ID] = true
	}
	if got := jobs[2].Action.Forward; !slices.Equal(got, []string{"x@one.example", "z@ONE.example"}) {
		t.Errorf("relay action forward = %v", got)
	}
	if jobs[4].Action.Folder != "Archive" {
		t.Errorf("mailbox job folder = %q", jobs[4].Action.Folder)
	}
	// Planning the same message again gives the same ids (the webhook-id of
	// a message resent after a lost 250); another message gets others.
	again := deliver.Plan(m, d, now.Add(time.Hour))
	other := deliver.Plan(&inbound.Mail{ID: "mid2"}, d, now)
	for i := range jobs {
		if again[i].ID != jobs[i].ID {
			t.Errorf("replanned job %d id %q, want %q", i, again[i].ID, jobs[i].ID)
		}
		if other[i].ID == jobs[i].ID {
			t.Errorf("another message's job %d has the same id %q", i, jobs[i].ID)
		}
	}
	if got := deliver.Plan(m, []route.Decision{{Rcpt: "x", Rules: []string{"r"}, Actions: []route.Action{{Kind: route.ActDrop}}}}, now); len(got) != 0 {
		t.Errorf("Plan of a drop = %d jobs, want 0", len(got))
	}
}

func TestAddAttemptBounds(t *testing.T) {
	var j deliver.Job
	long := strings.Repeat("é", deliver.MaxAttemptText)
	for range deliver.MaxHistory + 5 {
		j.AddAttempt(deliver.Attempt{Error: long, Response: long})
	}
	if len(j.History) != deliver.MaxHistory {
		t.Errorf("history = %d attempts, want %d", len(j.History), deliver.MaxHistory)
	}
	a := j.History[0]
	if len(a.Error) > deliver.MaxAttemptText || len(a.Response) > deliver.MaxAttemptText || !utf8.ValidString(a.Error) || j.LastError != a.Error {
		t.Errorf("attempt texts = %d, %d bytes (valid %v), want <= %d", len(a.Error), len(a.Response), utf8.ValidString(a.Error), deliver.MaxAttemptText)
	}
}

// TestPlanNamesTheRuleOfEachAction: with continue, two rules send to the
// same endpoint; each job names its own rule (the webhook payload's route).
func TestPlanNamesTheRuleOfEachAction(t *testing.T) {
	table, err := route.Compile([]config.Rule{
		{Name: "all", Match: config.RuleMatch{Rcpt: config.StringList{"*@example.test"}}, Continue: true,
			Actions: []config.RuleAction{{Webhook: "hook"}, {Mailbox: "archive"}}},
		{Name: "support", Match: config.RuleMatch{Rcpt: config.StringList{"support@example.test"}},
			Actions: []config.RuleAction{{Webhook: "hook"}}},
	}, route.Known{})
	if err != nil {
		t.Fatal(err)
	}
	m := &inbound.Mail{ID: "m1"}
	d := table.Decide(m, "support@example.test")
	jobs := deliver.Plan(m, []route.Decision{d}, time.Now())
	got := map[string]bool{}
	for _, j := range jobs {
		got[string(j.Kind)+"/"+j.Route] = true
	}
	for _, want := range []string{"webhook/all", "mailbox/all", "webhook/support"} {
		if !got[want] {
			t.Errorf("Plan made %v, missing %s", got, want)
		}
	}
}

// TestCommitterReportsItsJobs: Committed sees exactly the jobs committed.
func TestCommitterReportsItsJobs(t *testing.T) {
	q := newQueue(t)
	var got []*deliver.Job
	c := &deliver.Committer{Queue: q, Committed: func(m *inbound.Mail, d []route.Decision, jobs []*deliver.Job) { got = jobs }}
	m := queuetest.NewMail(t, "m1", "raw")
	d := []route.Decision{{Rcpt: "a@example.test", Rules: []string{"r"}, Actions: []route.Action{{Kind: route.ActWebhook, Webhook: "h", Rule: "r"}}}}
	if err := c.Commit(t.Context(), m, d); err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 {
		t.Fatalf("Committed got %d jobs, want 1", len(got))
	}
	if j, err := q.Get(t.Context(), got[0].ID); err != nil || j.Target != "h" {
		t.Errorf("the reported job is not the queued one: %+v, %v", j, err)
	}
}
