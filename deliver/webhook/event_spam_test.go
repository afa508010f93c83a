package webhook

import (
	"encoding/json"
	"testing"

	"github.com/mailhook/mailhook/inbound"
)

// TestEventSpam checks the "spam" object of the Round 2 contract in
// DESIGN.md: {result, score, required_score, action, symbols: [{name,
// score}]}, absent when rspamd is not configured.
func TestEventSpam(t *testing.T) {
	event := func(s *inbound.Spam) map[string]any {
		m := testMail()
		m.Spam = s
		b, err := BuildEvent(testJob("x"), m, nil)
		if err != nil {
			t.Fatal(err)
		}
		var ev map[string]any
		if err := json.Unmarshal(b, &ev); err != nil {
			t.Fatalf("event is not JSON: %v\n%s", err, b)
		}
		return ev
	}
	if ev := event(nil); ev["spam"] != nil {
		t.Errorf("spam without rspamd = %v, want absent", ev["spam"])
	}
	ev := event(&inbound.Spam{Result: "ok", Score: 6.5, RequiredScore: 15, Action: "add header",
		Symbols: []inbound.SpamSymbol{{Name: "GTUBE", Score: 6.5}}})
	s := wantKeys(t, "spam", ev["spam"], "result", "score", "required_score", "action", "symbols")
	wantKeys(t, "spam.symbols[0]", s["symbols"].([]any)[0], "name", "score")
	if s["score"] != 6.5 || s["action"] != "add header" || s["required_score"] != 15.0 {
		t.Errorf("spam = %v", s)
	}
	// A failed check: result error, symbols [] (not null), the reason.
	ev = event(&inbound.Spam{Result: "error", Error: "rspamd: connection refused"})
	s = wantKeys(t, "spam", ev["spam"], "result", "score", "required_score", "action", "symbols", "error")
	if l, ok := s["symbols"].([]any); !ok || len(l) != 0 || s["result"] != "error" {
		t.Errorf("failed spam = %v, want result error and symbols []", s)
	}
}
