package mailbox

import (
	"context"
	"errors"
	"io"
	"net"
	"net/smtp"
	"net/textproto"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mailhook/mailhook/config"
	"github.com/mailhook/mailhook/inbound"
	"github.com/mailhook/mailhook/ingest"
	"github.com/mailhook/mailhook/parse"
	"github.com/mailhook/mailhook/route"
)

// committed counts the messages the SMTP listener committed.
type committed struct{ n atomic.Int32 }

func (c *committed) Commit(context.Context, *inbound.Mail, []route.Decision) error {
	c.n.Add(1)
	return nil
}

// TestQuotaReplyOverSMTP: the quota check as the SMTP listener's
// BeforeCommit hook answers a sender 452 4.2.2 for a full mailbox, a
// transient reply, and accepts mail for one with room.
func TestQuotaReplyOverSMTP(t *testing.T) {
	ctx := context.Background()
	s := openStore(t, Options{Quota: func(u string) int64 {
		if u == "full" {
			return 200
		}
		return 0
	}})
	if _, err := s.Deliver(ctx, "full", "", strings.NewReader(sample), time.Time{}, ""); err != nil {
		t.Fatal(err)
	}
	table, err := route.Compile([]config.Rule{
		{Name: "full", Match: config.RuleMatch{Rcpt: config.StringList{"full@example.test"}}, Actions: []config.RuleAction{{Mailbox: "full"}}},
		{Name: "roomy", Match: config.RuleMatch{Rcpt: config.StringList{"roomy@example.test"}}, Actions: []config.RuleAction{{Mailbox: "roomy"}}},
	}, route.Known{Users: map[string]bool{"full": true, "roomy": true}})
	if err != nil {
		t.Fatal(err)
	}
	pol := &ingest.Policy{Domains: map[string]bool{"example.test": true}, Router: table}
	com := &committed{}
	srv, err := ingest.New(ingest.Options{
		Hostname:  "mx.example.test",
		Policy:    func() *ingest.Policy { return pol },
		Parse:     func(r io.Reader) (*parse.Message, error) { return parse.Parse(r, parse.Options{}) },
		Committer: com,
		SpoolDir:  t.TempDir(),
		BeforeCommit: func(ctx context.Context, m *inbound.Mail, d []route.Decision) error {
			if reply := s.QuotaReply(ctx, m, d); reply != nil {
				return ingest.Refuse(reply, ingest.ReasonMailboxFull)
			}
			return nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(l)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
	})
	msg := []byte("From: a@sender.test\r\nSubject: hi\r\n\r\n" + strings.Repeat("a line of the body\r\n", 10))

	err = smtp.SendMail(l.Addr().String(), nil, "a@sender.test", []string{"full@example.test"}, msg)
	var te *textproto.Error
	if !errors.As(err, &te) || te.Code != 452 || !strings.HasPrefix(te.Msg, "4.2.2 ") {
		t.Errorf("mail for a full mailbox: %v, want 452 4.2.2", err)
	}
	if err := smtp.SendMail(l.Addr().String(), nil, "a@sender.test", []string{"roomy@example.test"}, msg); err != nil {
		t.Errorf("mail for a mailbox with room: %v", err)
	}
	if n := com.n.Load(); n != 1 {
		t.Errorf("committed %d messages, want 1", n)
	}
}
