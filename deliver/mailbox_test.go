package deliver_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/mailhook/mailhook/deliver"
	"github.com/mailhook/mailhook/inbound"
	"github.com/mailhook/mailhook/route"
)

type fakeAppender struct {
	got  []string
	keys map[string]bool
	err  error
}

func (f *fakeAppender) Deliver(ctx context.Context, user, folder string, r io.Reader, date time.Time, key string) (uint32, error) {
	if f.err != nil {
		return 0, f.err
	}
	if f.keys[key] {
		return 1, nil
	}
	b, _ := io.ReadAll(r)
	f.keys[key] = true
	f.got = append(f.got, user+"/"+folder+":"+string(b))
	return uint32(len(f.got)), nil
}

// The real store is driven through this handler in cmd/mailhook's
// end-to-end tests; this unit test covers the outcome mapping.
func TestMailboxHandlerOutcomes(t *testing.T) {
	errFull := errors.New("over quota")
	raw := func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader([]byte("Subject: x\r\n\r\nhi\r\n"))), nil
	}
	f := &fakeAppender{keys: map[string]bool{}}
	h := &deliver.MailboxHandler{Store: f, Permanent: func(err error) bool { return errors.Is(err, errFull) }}
	job := &deliver.Job{ID: "j1", Kind: deliver.KindMailbox, Target: "support", Action: route.Action{Kind: route.ActMailbox, Folder: "Invoices"}}
	mail := &inbound.Mail{ID: "m1", ReceivedAt: time.Now()}

	if out := h.Handle(context.Background(), job, mail, raw); !out.Done {
		t.Fatalf("first append: %+v", out)
	}
	if out := h.Handle(context.Background(), job, mail, raw); !out.Done || len(f.got) != 1 {
		t.Fatalf("a retried job was appended twice: %v", f.got)
	}
	if !strings.HasPrefix(f.got[0], "support/Invoices:Subject: x") {
		t.Errorf("appended %q", f.got[0])
	}
	f.err = errFull
	if out := h.Handle(context.Background(), &deliver.Job{ID: "j2", Target: "support"}, mail, raw); !out.Permanent || !strings.Contains(out.Attempt.Error, "over quota") {
		t.Errorf("over quota: %+v, want permanent", out)
	}
	f.err = errors.New("disk busy")
	if out := h.Handle(context.Background(), &deliver.Job{ID: "j3", Target: "support"}, mail, raw); out.Permanent || out.Done {
		t.Errorf("transient error: %+v, want a retry", out)
	}
}
