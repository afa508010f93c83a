package mailbox

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
)

// BenchmarkDeliver measures one durable delivery: body write, two fsyncs
// (file, directory) and the index commit (fsync).
func BenchmarkDeliver(b *testing.B) {
	s := openStore(b, Options{})
	msg := mkMsg("bench", strings.Repeat("0123456789 ", 400)) // ~4.5 KB
	ctx := context.Background()
	b.SetBytes(int64(len(msg)))
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		if _, err := s.Deliver(ctx, "u", "", strings.NewReader(msg), time.Time{}, fmt.Sprintf("job-%d", i)); err != nil {
			b.Fatal(err)
		}
	}
}

// fill delivers n messages without fsyncs (setup only).
func fill(b *testing.B, e *imapEnv, n int) {
	b.Helper()
	ctx := context.Background()
	for i := 0; i < n; i++ {
		body := fmt.Sprintf("message number %d about %s", i, []string{"invoices", "shipping", "refunds", "login"}[i%4])
		if _, err := e.store.Deliver(ctx, "alice", "", strings.NewReader(mkMsg(fmt.Sprintf("subject-%d", i), body)), time.Time{}, ""); err != nil {
			b.Fatal(err)
		}
	}
}

func benchEnv(b *testing.B, n int) *imapEnv {
	b.Helper()
	st, err := Open(b.TempDir(), Options{noSync: true})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { st.Close() })
	e := newIMAPEnv(b, func(o *IMAPOptions) { o.Store = st; o.Logger = nil })
	e.store = st
	fill(b, e, n)
	return e
}

// BenchmarkIMAPFetch1000 fetches UID, FLAGS, size, envelope and the whole
// body of 1000 messages in one command.
func BenchmarkIMAPFetch1000(b *testing.B) {
	e := benchEnv(b, 1000)
	c := e.login(b, nil)
	if _, err := c.Select("INBOX", &imap.SelectOptions{ReadOnly: true}).Wait(); err != nil {
		b.Fatal(err)
	}
	opts := &imap.FetchOptions{UID: true, Flags: true, RFC822Size: true, Envelope: true,
		BodySection: []*imap.FetchItemBodySection{{Peek: true}}}
	b.ResetTimer()
	for b.Loop() {
		msgs, err := c.Fetch(imap.SeqSet{{Start: 1, Stop: 0}}, opts).Collect()
		if err != nil || len(msgs) != 1000 {
			b.Fatalf("FETCH = %d, %v", len(msgs), err)
		}
	}
}

// BenchmarkIMAPSearch10000 runs a flag search (index only) and a body
// search (reads every file) over 10 000 messages.
func BenchmarkIMAPSearch10000(b *testing.B) {
	e := benchEnv(b, 10000)
	c := e.login(b, nil)
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		b.Fatal(err)
	}
	b.Run("flags", func(b *testing.B) {
		for b.Loop() {
			d, err := c.Search(&imap.SearchCriteria{NotFlag: []imap.Flag{imap.FlagSeen}}, nil).Wait()
			if err != nil || d.Count != 0 && len(d.AllSeqNums()) != 10000 {
				b.Fatalf("SEARCH = %v, %v", d, err)
			}
		}
	})
	b.Run("body", func(b *testing.B) {
		for b.Loop() {
			d, err := c.Search(&imap.SearchCriteria{Body: []string{"refunds"}}, nil).Wait()
			if err != nil || len(d.AllSeqNums()) != 2500 {
				b.Fatalf("SEARCH = %v, %v", d, err)
			}
		}
	})
}
