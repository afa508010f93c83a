package rspamd_test

import (
	"bytes"
	"context"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mailhook/mailhook/inbound"
	"github.com/mailhook/mailhook/ingest/rspamd"
	"github.com/mailhook/mailhook/ingest/rspamd/rspamdtest"
)

// BenchmarkCheck2KB checks a 2 KB message from 20 goroutines (20 SMTP
// sessions) against a real rspamd. ns/op is the wall time per check with
// rspamd on the same machine; client-cpu-ms/op is this process's own CPU
// per check apart from what rspamd spends: the client's share (request,
// headers, JSON reply) and the loopback DNS server rspamd queries, which
// runs in this process too (an upper bound on the client's share).
func BenchmarkCheck2KB(b *testing.B) {
	srv := rspamdtest.Start(b)
	c, err := rspamd.New(rspamd.Options{URL: srv.URL, Timeout: time.Minute})
	if err != nil {
		b.Fatal(err)
	}
	msg := []byte(message(strings.Repeat("Lorem ipsum dolor sit amet, consectetur adipiscing. ", 38)))
	req := &rspamd.Request{IP: "192.0.2.10", Helo: "mail.example.org", MailFrom: "alice@example.org",
		Rcpts: []string{"support@example.test"}, QueueID: "01bench", Hostname: "mx.example.test",
		Auth: &inbound.Auth{SPF: inbound.SPFResult{Result: "pass"}, DKIM: []inbound.DKIMResult{{Result: "pass", Domain: "example.org"}},
			DMARC: inbound.DMARCResult{Result: "pass", Policy: "reject", Domain: "example.org"}}}
	cpu := func() time.Duration {
		var ru syscall.Rusage
		syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
		return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	b.SetParallelism(10) // × GOMAXPROCS (2 here): 20 goroutines
	b.ReportAllocs()
	b.ResetTimer()
	start := cpu()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := c.Check(context.Background(), req, bytes.NewReader(msg), int64(len(msg))); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(cpu()-start)/float64(time.Millisecond)/float64(b.N), "client-cpu-ms/op")
}
