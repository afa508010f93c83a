package webhook

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

// BenchmarkSend measures attempts through Handle to a local keep-alive
// HTTP sink answering 204: serial, parallel (up to the endpoint's
// concurrency), and with the raw message (64 KiB) streamed in.
func BenchmarkSend(b *testing.B) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.WriteHeader(http.StatusNoContent)
	}))
	defer srv.Close()
	raw := make([]byte, 64<<10)
	for i := range raw {
		raw[i] = byte('a' + i%26)
	}
	s := NewSender(Options{Endpoints: map[string]Endpoint{
		"e":   {URL: srv.URL + "/hook", Secrets: []string{NewSecret()}, AllowPrivate: true},
		"raw": {URL: srv.URL + "/hook", Secrets: []string{NewSecret()}, AllowPrivate: true, Raw: true},
	}})
	defer s.Close()
	mail := testMail()
	ctx := context.Background()
	run := func(b *testing.B, target string, parallel bool) {
		b.ReportAllocs()
		start := time.Now()
		if parallel {
			b.RunParallel(func(pb *testing.PB) {
				job := testJob(target)
				for pb.Next() {
					if o := s.Handle(ctx, job, mail, rawOf(raw)); !o.Done {
						b.Errorf("Handle = %+v", o)
						return
					}
				}
			})
		} else {
			job := testJob(target)
			for b.Loop() {
				if o := s.Handle(ctx, job, mail, rawOf(raw)); !o.Done {
					b.Fatalf("Handle = %+v", o)
				}
			}
		}
		b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "req/s")
	}
	b.Run("serial", func(b *testing.B) { run(b, "e", false) })
	b.Run("parallel", func(b *testing.B) { run(b, "e", true) })
	b.Run("raw64k", func(b *testing.B) { run(b, "raw", false) })
}
