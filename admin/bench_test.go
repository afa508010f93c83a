package admin

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/mailhook/mailhook/deliver"
)

// BenchmarkRecordAccepted measures the activity writes of one accepted
// message (its record and parsed form, then its attempt with the webhook
// body sent), as
// concurrent SMTP sessions make them, for a 2 KB and a 100 KB text body.
// The attempt follows its acceptance at once, so the committer mostly
// writes the two as one record: the cost when a webhook is answered
// within the committer's delay.
func BenchmarkRecordAccepted(b *testing.B) {
	for _, size := range []int{2 << 10, 100 << 10} {
		b.Run(fmt.Sprintf("%dKB", size>>10), func(b *testing.B) {
			a := openActivity(b, nil)
			raw := "From: alice@example.org\r\nTo: support@example.test\r\nSubject: hello\r\n\r\n" +
				strings.Repeat(strings.Repeat("x", 76)+"\r\n", size/78)
			mail, jobs := accept(b, nil, nil, mailOpts{id: "tpl", raw: raw})
			sent := make([]byte, 2*size)
			b.SetBytes(int64(len(raw)))
			b.ReportAllocs()
			b.SetParallelism(10) // 20 sessions on 2 cores, as compare.sh runs them
			stopCPU := reportCPU(b)
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
					// The attempt, with the webhook body it sent.
					if err := a.RecordAttempt(js[0], deliver.Attempt{Status: 200, Body: sent}, deliver.SettleDelivered); err != nil {
						b.Fatal(err)
					}
				}
			})
			// The records still waiting for the committer are part of the
			// cost.
			a.db.c.flush()
			stopCPU()
		})
	}
}

// reportCPU reports the process's CPU time (user and system) per
// operation, from now to the call of the function it returns: unlike the
// wall time, it does not count waiting for a batch's company.
func reportCPU(b *testing.B) func() {
	cpu := func() time.Duration {
		var ru syscall.Rusage
		syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
		return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	start := cpu()
	return func() {
		b.ReportMetric(float64(cpu()-start)/float64(b.N), "cpu-ns/op")
	}
}

// BenchmarkMessagesFiltered measures a page of the message list over 5000
// records when the filter matches one in ten.
func BenchmarkMessagesFiltered(b *testing.B) {
	a := openActivity(b, nil)
	t0 := time.Now().Add(-time.Hour)
	tpl, _ := accept(b, nil, nil, mailOpts{id: "tpl"})
	// Concurrent writers share transactions (the committer), so filling is fast.
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
// attempt on a message with a 16 KiB text body, alone in its transaction:
// the stored record is read, one attempt added and the record written
// back.
func BenchmarkRecordAttempt(b *testing.B) {
	a := openActivity(b, nil)
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
		a.db.c.flush()
		b.StartTimer()
		if err := a.RecordAttempt(js[0], at, deliver.SettleDelivered); err != nil {
			b.Fatal(err)
		}
		a.db.c.flush() // one caller: measure the work, not the wait for company
	}
}
