package queuetest

import (
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mailhook/mailhook/deliver"
)

// raw2K is a 2 KB message.
var raw2K = "Subject: bench\r\n\r\n" + strings.Repeat("0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ!\r\n", 32)[:2048-18]

var benchSeq atomic.Int64

// BenchCommit measures parallel commits of a 2 KB message with one webhook
// job each, as concurrent SMTP sessions make them (8 per CPU), and reports
// jobs/s.
func BenchCommit(b *testing.B, q deliver.Queue) {
	b.SetBytes(int64(len(raw2K)))
	// SMTP sessions wait on disk and network, not CPU: many run at once.
	b.SetParallelism(8)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			id := fmt.Sprint("bm", benchSeq.Add(1))
			m := NewMail(b, id, raw2K)
			if err := q.Commit(b.Context(), m, []*deliver.Job{NewJob(id+"-j", id, deliver.KindWebhook, time.Time{})}); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "jobs/s")
}

// BenchTakeAck measures parallel workers (4 per CPU) taking 10 jobs at a
// time and acking each, and reports jobs/s.
func BenchTakeAck(b *testing.B, q deliver.Queue) {
	const perMsg = 100
	for i := 0; i < b.N; i += perMsg {
		id := fmt.Sprint("bt", benchSeq.Add(1))
		var jobs []*deliver.Job
		for k := 0; k < perMsg && i+k < b.N; k++ {
			jobs = append(jobs, NewJob(fmt.Sprint(id, "-", k), id, deliver.KindWebhook, time.Time{}))
		}
		if err := q.Commit(b.Context(), NewMail(b, id, raw2K), jobs); err != nil {
			b.Fatal(err)
		}
	}
	var done atomic.Int64
	b.SetParallelism(4)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			jobs, err := q.Take(b.Context(), deliver.Kinds, 10, time.Minute)
			if err != nil {
				b.Error(err)
				return
			}
			for _, j := range jobs {
				if err := q.Ack(b.Context(), j); err != nil {
					b.Error(err)
					return
				}
			}
			done.Add(int64(len(jobs)))
		}
	})
	b.ReportMetric(float64(done.Load())/b.Elapsed().Seconds(), "jobs/s")
}
