package mailbox

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/mailhook/mailhook/inbound"
	"github.com/mailhook/mailhook/route"
)

func TestQuotaReply(t *testing.T) {
	ctx := context.Background()
	s := openStore(t, Options{Quota: func(u string) int64 {
		if u == "full" {
			return 200
		}
		return 0 // no quota
	}})
	if _, err := s.Deliver(ctx, "full", "", strings.NewReader(sample), time.Time{}, ""); err != nil {
		t.Fatal(err)
	}
	to := func(kind route.ActionKind, user string) route.Decision {
		return route.Decision{Rcpt: user + "@example.test", Actions: []route.Action{{Kind: kind, Mailbox: user, Webhook: "w"}}}
	}
	for _, tc := range []struct {
		name string
		size int64
		ds   []route.Decision
		full bool
	}{
		{"fits", 10, []route.Decision{to(route.ActMailbox, "full")}, false},
		{"over quota", 100, []route.Decision{to(route.ActMailbox, "full")}, true},
		{"one mailbox of several over", 100, []route.Decision{to(route.ActMailbox, "roomy"), to(route.ActWebhook, ""), to(route.ActMailbox, "full")}, true},
		{"no quota", 1 << 30, []route.Decision{to(route.ActMailbox, "roomy")}, false},
		{"no mailbox action", 1 << 30, []route.Decision{to(route.ActWebhook, "full")}, false},
		{"no decisions", 100, nil, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := s.QuotaReply(ctx, &inbound.Mail{RawSize: tc.size}, tc.ds)
			switch {
			case tc.full && got != ReplyMailboxFull:
				t.Errorf("QuotaReply = %v, want %v", got, ReplyMailboxFull)
			case !tc.full && got != nil:
				t.Errorf("QuotaReply = %v, want nil", got)
			}
		})
	}
	if r := ReplyMailboxFull; r.Code != 452 || r.EnhancedCode != [3]int{4, 2, 2} {
		t.Errorf("ReplyMailboxFull = %d %v, want 452 4.2.2 (transient: the sender retries)", r.Code, r.EnhancedCode)
	}
	noQuota := openStore(t, Options{})
	if got := noQuota.QuotaReply(ctx, &inbound.Mail{RawSize: 1 << 40}, []route.Decision{to(route.ActMailbox, "u")}); got != nil {
		t.Errorf("QuotaReply of a store without quotas = %v", got)
	}
}
