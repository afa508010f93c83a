package ingest

import (
	"context"
	"errors"
	"fmt"
	"net/smtp"
	"strings"
	"sync"
	"testing"

	gosmtp "github.com/emersion/go-smtp"

	"github.com/mailhook/mailhook/inbound"
	"github.com/mailhook/mailhook/route"
)

// refusals is an Observer that keeps the refusals it is told of.
type refusals struct {
	mu   sync.Mutex
	seen []string // "stage reason code"
}

func (o *refusals) Connection(string)                        {}
func (o *refusals) Accepted(*inbound.Mail, []route.Decision) {}
func (o *refusals) Refused(ip, from string, rcpts []string, r Refusal, stage string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.seen = append(o.seen, fmt.Sprintf("%s %s %d", stage, r.Reason, r.Reply.Code))
}

func (o *refusals) last() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	if len(o.seen) == 0 {
		return ""
	}
	return o.seen[len(o.seen)-1]
}

// TestRefusalReasons: each refusal reaches the observer with the reason
// of the reply where it was given (no reply text is read for it), over a
// real SMTP session.
func TestRefusalReasons(t *testing.T) {
	obs := &refusals{}
	full := Refuse(&gosmtp.SMTPError{Code: 452, EnhancedCode: gosmtp.EnhancedCode{4, 2, 2}, Message: "Mailbox full"}, ReasonMailboxFull)
	h := start(t, func(o *Options) {
		o.Observer = obs
		o.Limits.MaxMessageBytes = 1000
		o.BeforeCommit = func(ctx context.Context, m *inbound.Mail, d []route.Decision) error {
			switch m.Message.Subject {
			case "full":
				return full
			case "hook":
				return &gosmtp.SMTPError{Code: 554, EnhancedCode: gosmtp.EnhancedCode{5, 7, 0}, Message: "No thanks"}
			}
			return nil
		}
	})
	msg := func(subject string) []byte {
		return []byte("From: a@sender.test\r\nSubject: " + subject + "\r\n\r\nbody\r\n")
	}
	for _, tc := range []struct {
		name   string
		rcpt   string
		data   []byte
		commit error // the committer's answer
		want   string
	}{
		{"relay", "someone@elsewhere.test", msg("x"), nil, "rcpt relay_denied 554"},
		{"unknown user", "nobody@example.test", msg("x"), nil, "rcpt unknown_user 550"},
		{"rule reject", "noreply@example.test", msg("x"), nil, "data rejected_by_rule 550"},
		{"no route", "billing@example.test", msg("x"), nil, "data no_route 550"},
		{"size", "support@example.test", msg(strings.Repeat("x", 2000)), nil, "data size 552"},
		{"mailbox full", "support@example.test", msg("full"), nil, "data mailbox_full 452"},
		{"a hook's reply", "support@example.test", msg("hook"), nil, "data other 554"},
		{"sync webhook", "support@example.test", msg("x"), &gosmtp.SMTPError{Code: 550, EnhancedCode: gosmtp.EnhancedCode{5, 7, 1}, Message: "Refused by the app"}, "data sync_webhook 550"},
		{"our failure", "support@example.test", msg("x"), errors.New("disk on fire"), "commit temp_failure 451"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h.rec.mu.Lock()
			h.rec.fail = tc.commit
			h.rec.mu.Unlock()
			err := smtp.SendMail(h.addr, nil, "a@sender.test", []string{tc.rcpt}, tc.data)
			if err == nil {
				t.Fatalf("SendMail to %s = nil, want a refusal", tc.rcpt)
			}
			if got := obs.last(); got != tc.want {
				t.Errorf("observer got %q, want %q (SendMail: %v)", got, tc.want, err)
			}
		})
	}
	// A bare LF, sent as it is (net/smtp would mend it).
	h.rec.mu.Lock()
	h.rec.fail = nil
	h.rec.mu.Unlock()
	c := dial(t, h.addr)
	c.startData()
	c.expect("From: a@sender.test\nSubject: x\r\n\r\nbody\r\n.", "550 ")
	if got, want := obs.last(), "data bare_line_ending 550"; got != want {
		t.Errorf("observer got %q, want %q", got, want)
	}
}
