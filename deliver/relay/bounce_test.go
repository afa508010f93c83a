package relay

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mailhook/mailhook/route"
)

func TestSRSBounce(t *testing.T) {
	s := newTestSRS(t, "fwd.test")
	verified, _ := s.ForwardVerified("alice@example.org")
	unverified, _ := s.Forward("mallory@example.org")
	other, _ := NewSRS([]byte("another secret, also long enough"), "fwd.test", 0)
	forged, _ := other.ForwardVerified("alice@example.org")
	old := newTestSRS(t, "fwd.test")
	old.now = func() time.Time { return time.Now().Add(-DefaultSRSMaxAge - 48*time.Hour) }
	expired, _ := old.ForwardVerified("alice@example.org")

	for _, tc := range []struct {
		name, from, rcpt string
		handled          bool
		refuse           string // the refusal's enhanced code, or "" for a decision
		kind             route.ActionKind
		to               string
	}{
		{"not srs", "", "support@fwd.test", false, "", "", ""},
		{"srs of another domain", "", strings.Replace(verified, "@fwd.test", "@elsewhere.test", 1), false, "", "", ""},
		{"verified bounce", "", verified, true, "", route.ActForward, "alice@example.org"},
		{"unverified bounce", "", unverified, true, "", route.ActDrop, ""},
		{"not a bounce", "someone@example.com", verified, true, "", route.ActDrop, ""},
		{"forged", "", forged, true, "5.1.1", "", ""},
		{"expired", "", expired, true, "5.1.1", "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d, refuse, handled := s.Bounce(tc.from, tc.rcpt)
			if handled != tc.handled {
				t.Fatalf("Bounce(%q, %q) handled = %v, want %v", tc.from, tc.rcpt, handled, tc.handled)
			}
			if !handled {
				if d != nil || refuse != nil {
					t.Errorf("Bounce of an address it does not handle = %+v, %v", d, refuse)
				}
				return
			}
			if tc.refuse != "" {
				if refuse == nil || refuse.Code != 550 || refuse.EnhancedCode != [3]int{5, 1, 1} || d != nil {
					t.Fatalf("Bounce(%q) = %+v, %v; want a 550 %s refusal", tc.rcpt, d, refuse, tc.refuse)
				}
				return
			}
			if refuse != nil || d == nil || len(d.Actions) != 1 {
				t.Fatalf("Bounce(%q) = %+v, %v; want one %s action", tc.rcpt, d, refuse, tc.kind)
			}
			a := d.Actions[0]
			if a.Kind != tc.kind || a.Rule != BounceRule || !slices.Equal(d.Rules, []string{BounceRule}) || len(d.Why) != 1 {
				t.Errorf("Bounce(%q) decision = %+v, want a %s action of rule %s with its reason", tc.rcpt, d, tc.kind, BounceRule)
			}
			if tc.to != "" && !slices.Equal(a.Forward, []string{tc.to}) {
				t.Errorf("Bounce(%q) relays to %v, want %s", tc.rcpt, a.Forward, tc.to)
			}
		})
	}
}
