package pop3

import (
	"fmt"
	"strconv"
	"strings"
	"testing"
)

// benchMessage makes a message of about 4 KiB with a few dot lines.
func benchMessage(i int) string {
	var b strings.Builder
	fmt.Fprintf(&b, "From: sender%d@example.test\r\nTo: alice@example.test\r\nSubject: message %d\r\nMessage-ID: <%d@example.test>\r\n\r\n", i, i, i)
	for j := 0; b.Len() < 4096; j++ {
		if j%10 == 0 {
			b.WriteString(".a line that needs byte-stuffing\r\n")
		}
		b.WriteString("The quick brown fox jumps over the lazy dog, line " + strconv.Itoa(j) + ".\r\n")
	}
	return b.String()
}

// BenchmarkRETRAll logs in, retrieves all of 1000 messages one RETR at a
// time, as poplib does, and quits.
func BenchmarkRETRAll(b *testing.B) {
	const n = 1000
	for _, fx := range fixtures {
		b.Run(fx.name, func(b *testing.B) {
			e := fx.setup(b)
			total := 0
			for i := range n {
				m := benchMessage(i)
				total += len(m)
				e.deliver(b, alice, m)
			}
			_, addr, _ := startServer(b, opts(e))
			b.SetBytes(int64(total))
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				c := dial(b, addr)
				c.login(alice, alicePass)
				got := 0
				for i := 1; i <= n; i++ {
					got += retrLean(b, c, i)
				}
				if got != total {
					b.Fatalf("retrieved %d octets, want %d", got, total)
				}
				c.ok("QUIT")
				c.conn.Close()
			}
		})
	}
}

// retrLean is RETR without the test client's per-line bookkeeping, so the
// figure is mostly the server's: it returns the unstuffed octet count.
func retrLean(b *testing.B, c *client, i int) int {
	if _, err := c.conn.Write([]byte("RETR " + strconv.Itoa(i) + "\r\n")); err != nil {
		b.Fatal(err)
	}
	status, err := c.r.ReadSlice('\n')
	if err != nil || !strings.HasPrefix(string(status), "+OK") {
		b.Fatalf("RETR %d = %q, %v", i, status, err)
	}
	n := 0
	for {
		l, err := c.r.ReadSlice('\n')
		if err != nil {
			b.Fatalf("RETR %d: %v", i, err)
		}
		if len(l) == 3 && l[0] == '.' {
			return n
		}
		if l[0] == '.' {
			n--
		}
		n += len(l)
	}
}
