package route

import (
	"strings"
	"testing"
	"time"

	"github.com/mailhook/mailhook/config"
	"github.com/mailhook/mailhook/replyaddr"
)

func replyTable(t *testing.T, rules []config.Rule) (*Table, *replyaddr.Signer) {
	t.Helper()
	s, err := replyaddr.New(replyaddr.Options{Secrets: []string{"0123456789abcdef0123"}, Domain: "example.test"})
	if err != nil {
		t.Fatal(err)
	}
	return mustCompile(t, rules).WithReply(s), s
}

func TestReplyMatcher(t *testing.T) {
	rules := []config.Rule{
		{Name: "bad", Match: config.RuleMatch{Rcpt: config.StringList{"reply@example.test"}, Reply: "invalid"},
			Actions: []config.RuleAction{{Reject: "550 5.1.1 Not a valid reply address"}}},
		{Name: "good", Match: config.RuleMatch{Rcpt: config.StringList{"reply@example.test"}, Reply: "valid"},
			Actions: []config.RuleAction{{Webhook: "app"}}},
		{Name: "plain", Match: config.RuleMatch{Rcpt: config.StringList{"*@example.test"}, Reply: "none"},
			Actions: []config.RuleAction{{Webhook: "other"}}},
	}
	tab, s := replyTable(t, rules)
	m, err := s.Mint("t-1", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	forged := strings.Replace(m.Address, "t-1", "t-2", 1)
	cases := []struct {
		rcpt       string
		rule       string
		rejectRcpt bool
		reply      *replyaddr.Result
	}{
		{m.Address, "good", false, &replyaddr.Result{Thread: "t-1", Valid: true}},
		{forged, "bad", true, &replyaddr.Result{}},
		{"support+billing@example.test", "plain", false, nil},
		{"reply@example.test", "plain", false, nil}, // no token: not a reply address
	}
	for _, c := range cases {
		d := tab.Decide(sample(), c.rcpt)
		if len(d.Rules) != 1 || d.Rules[0] != c.rule {
			t.Errorf("Decide(%s) rules = %v, want %s", c.rcpt, d.Rules, c.rule)
		}
		if (d.Reply == nil) != (c.reply == nil) || d.Reply != nil && *d.Reply != *c.reply {
			t.Errorf("Decide(%s).Reply = %+v, want %+v", c.rcpt, d.Reply, c.reply)
		}
		a, rej := tab.RejectAtRcpt(c.rcpt, "a@sender.example")
		if rej != c.rejectRcpt || rej && (a.RejectCode != 550 || a.Rule != "bad") {
			t.Errorf("RejectAtRcpt(%s) = %+v, %v; want %v", c.rcpt, a, rej, c.rejectRcpt)
		}
		if !tab.AcceptsEnvelope(c.rcpt, "a@sender.example") {
			t.Errorf("AcceptsEnvelope(%s) = false", c.rcpt)
		}
	}
	// Without a verifier every recipient is "none".
	if d := mustCompile(t, rules).Decide(sample(), m.Address); len(d.Rules) != 1 || d.Rules[0] != "plain" || d.Reply != nil {
		t.Errorf("without a verifier: %v %+v", d.Rules, d.Reply)
	}
	if d := tab.Decide(sample(), m.Address); !strings.Contains(strings.Join(d.Why, ";"), "reply address is valid") {
		t.Errorf("Why = %q", d.Why)
	}
}

// TestRejectAtRcptWaitsForData: a rule before the reply rule that needs the
// message stops the decision at RCPT; the reject comes at end of data.
func TestRejectAtRcptWaitsForData(t *testing.T) {
	tab, _ := replyTable(t, []config.Rule{
		{Name: "vip", Match: config.RuleMatch{Rcpt: config.StringList{"reply@example.test"}, Subject: "(?i)urgent"},
			Actions: []config.RuleAction{{Webhook: "app"}}},
		{Name: "bad", Match: config.RuleMatch{Rcpt: config.StringList{"reply@example.test"}, Reply: "invalid, expired"},
			Actions: []config.RuleAction{{Reject: "550 5.1.1 Not a valid reply address"}}},
	})
	if _, rej := tab.RejectAtRcpt("reply+x.aaaaaaaaaaaaaaaaaaaa@example.test", ""); rej {
		t.Error("refused at RCPT although an earlier rule depends on the message")
	}
	if a, ok := tab.RejectAtRcpt("reply+x.aaaaaaaaaaaaaaaaaaaa@other.test", ""); ok {
		t.Errorf("refused a recipient no rule names: %+v", a)
	}
	d := tab.Decide(sample(), "reply+x.aaaaaaaaaaaaaaaaaaaa@example.test")
	if _, rej := d.Reject(); !rej {
		t.Errorf("Decide = %v, want the reject at end of data", d.Rules)
	}
}

func TestReplyMatcherErrors(t *testing.T) {
	_, err := Compile([]config.Rule{{Name: "r", Match: config.RuleMatch{Reply: "valid, bogus"}, Actions: []config.RuleAction{{Drop: true}}}}, Known{})
	if err == nil || !strings.Contains(err.Error(), `routes[0].match.reply: "bogus" is not a reply state`) {
		t.Errorf("Compile = %v", err)
	}
}
