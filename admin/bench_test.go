package admin

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mailhook/mailhook/deliver"
)

// BenchmarkRecordAccepted measures the activity write on the accept path
// (one bbolt transaction, fsync shared between concurrent callers).
func BenchmarkRecordAccepted(b *testing.B) {
	a := openActivity(b, nil)
	mail, jobs := accept(b, nil, nil, mailOpts{id: "tpl"})
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			m := *mail
			m.ID = fmt.Sprintf("m-%p-%d", pb, i)
			i++
			js := []*deliver.Job{{ID: m.ID + "-w", MsgID: m.ID, Kind: jobs[0].Kind, Target: jobs[0].Target, Route: jobs[0].Route}}
			if err := a.RecordAccepted(&m, nil, js); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkMessagesFiltered measures a page of the message list over 5000
// records when the filter matches one in ten.
func BenchmarkMessagesFiltered(b *testing.B) {
	a := openActivity(b, nil)
	t0 := time.Now().Add(-time.Hour)
	tpl, _ := accept(b, nil, nil, mailOpts{id: "tpl"})
	// Concurrent writers share fsyncs (bbolt's Batch), so filling is fast.
	var wg sync.WaitGroup
	for w := range 16 {
		wg.Go(func() {
			for i := w; i < 5000; i += 16 {
				m := *tpl
				m.ID = fmt.Sprintf("m%05d", i)
				m.ReceivedAt = t0.Add(time.Duration(i) * time.Millisecond)
				m.Envelope.RcptTo = []string{"support@example.test"}
				if i%10 == 0 {
					m.Envelope.RcptTo = []string{"rare@example.test"}
				}
				js := []*deliver.Job{{ID: m.ID + "-w", MsgID: m.ID, Kind: deliver.KindWebhook, Target: "h", Route: "tickets"}}
				if err := a.RecordAccepted(&m, nil, js); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	b.ResetTimer()
	for b.Loop() {
		page, _, err := a.Messages(Query{Rcpt: "rare@", Limit: 50})
		if err != nil || len(page) != 50 {
			b.Fatalf("Messages = %d, %v", len(page), err)
		}
	}
}

// BenchmarkAttachment measures serving the 300 KiB attachment of the
// fixture through a signed URL (three passes over the raw message).
func BenchmarkAttachment(b *testing.B) {
	e := newEnv(b, testToken)
	f := newFixture(b)
	mail, _ := accept(b, e.q, e.act, mailOpts{id: "fire", raw: f.raw})
	u := e.srv.SignAttachmentURL(e.base, mail.ID, 0, time.Now().Add(time.Hour))
	b.SetBytes(int64(len(f.big)))
	for b.Loop() {
		res, err := http.Get(u)
		if err != nil {
			b.Fatal(err)
		}
		n, _ := io.Copy(io.Discard, res.Body)
		res.Body.Close()
		if res.StatusCode != 200 || n != int64(len(f.big)) {
			b.Fatalf("GET = %d, %d bytes", res.StatusCode, n)
		}
	}
}

// BenchmarkRecordAttempt measures the activity write after a delivery
// attempt on a message with a 16 KiB text body: the stored record is read,
// one attempt added and the record written back.
func BenchmarkRecordAttempt(b *testing.B) {
	a := openActivity(b, nil)
	a.db.MaxBatchDelay = 0 // one caller: measure the work, not the wait for company
	raw := "From: alice@example.org\r\nTo: support@example.test\r\nSubject: report\r\n\r\n" +
		strings.Repeat("The printer on floor 3 is on fire again, see below.\r\n", 16<<10/52)
	tpl, _ := accept(b, nil, nil, mailOpts{id: "tpl", raw: raw})
	at := deliver.Attempt{Status: 200, Latency: 3 * time.Millisecond}
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		m := *tpl
		m.ID = fmt.Sprintf("m%d", i)
		js := []*deliver.Job{{ID: m.ID + "-w", MsgID: m.ID, Kind: deliver.KindWebhook, Target: "h", Route: "tickets"}}
		if err := a.RecordAccepted(&m, nil, js); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		if err := a.RecordAttempt(js[0], at, deliver.SettleDelivered); err != nil {
			b.Fatal(err)
		}
	}
}
