package relay

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"strings"
	"testing"
)

// BenchmarkHandle relays a 1 MiB message to a loopback sink per
// iteration, plain and DKIM-signed. B/op far below the message size shows
// the message is streamed, not buffered.
func BenchmarkHandle(b *testing.B) {
	body := strings.Repeat("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcd\r\n", 16<<10)
	msg := testMsg() + body
	_, key, _ := ed25519.GenerateKey(rand.Reader)
	signer, err := NewDKIMSigner("fwd.mailhook.test", "sel", key)
	if err != nil {
		b.Fatal(err)
	}
	for _, bc := range []struct {
		name string
		dkim *DKIMSigner
	}{{"plain", nil}, {"dkim-ed25519", signer}} {
		b.Run(bc.name, func(b *testing.B) {
			s := startSink(b, sinkOpts{}, func(s *sink) { s.discard = true })
			r, err := New(Options{Hostname: "mx.mailhook.test", Smarthost: s.addr, TLS: TLSNone, DKIM: bc.dkim})
			if err != nil {
				b.Fatal(err)
			}
			f := newFixture(b, msg, "example.net", "bob@example.net")
			b.SetBytes(int64(len(msg)))
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				if out := r.Handle(context.Background(), f.job, f.mail, f.raw); !out.Done {
					b.Fatalf("Handle = %+v", out)
				}
			}
		})
	}
}
