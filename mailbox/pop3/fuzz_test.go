package pop3

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// fuzzConn is a net.Conn that reads a fixed input and discards output.
type fuzzConn struct {
	r io.Reader
}

func (c *fuzzConn) Read(p []byte) (int, error)  { return c.r.Read(p) }
func (c *fuzzConn) Write(p []byte) (int, error) { return len(p), nil }
func (c *fuzzConn) Close() error                { return nil }
func (c *fuzzConn) LocalAddr() net.Addr         { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 110} }
func (c *fuzzConn) RemoteAddr() net.Addr {
	return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 40000}
}
func (c *fuzzConn) SetDeadline(time.Time) error      { return nil }
func (c *fuzzConn) SetReadDeadline(time.Time) error  { return nil }
func (c *fuzzConn) SetWriteDeadline(time.Time) error { return nil }

// FuzzCommand feeds arbitrary client input to a session: the command
// reader, the state machine and every command handler must neither panic
// nor hang, and the maildrop lock must be released at the end.
func FuzzCommand(f *testing.F) {
	files, _ := filepath.Glob("testdata/*.txt")
	for _, name := range files {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		var in strings.Builder
		sc := bufio.NewScanner(bytes.NewReader(b))
		for sc.Scan() {
			if l, ok := strings.CutPrefix(sc.Text(), "C: "); ok {
				in.WriteString(l + "\r\n")
			}
		}
		f.Add([]byte(in.String()))
	}
	f.Add([]byte("USER alice\r\nPASS correct horse\r\nTOP 1 0\r\nTOP 2 99999999\r\nDELE 3\r\nRETR 3\r\nRSET\r\nQUIT\r\n"))
	f.Add([]byte("AUTH PLAIN\r\nAGFsaWNlAGNvcnJlY3QgaG9yc2U=\r\nUIDL 1\r\nLIST\r\n"))
	f.Add([]byte("AUTH PLAIN =\r\nAUTH PLAIN\r\n=\r\nAUTH plain AGFsaWNl\r\n\x00\xff\r\n"))

	f.Fuzz(func(t *testing.T, in []byte) {
		b := newFakeBackend()
		b.addUser(alice, alicePass)
		for _, m := range []string{msgDots, msgBareLF, msgTop} {
			b.deliver(alice, []byte(m))
		}
		srv := New(Options{Backend: b, MaxErrors: 1000})
		srv.afterFailure = func(context.Context, time.Duration) {}
		s := newSession(srv, &fuzzConn{r: bytes.NewReader(in)})
		s.serve() // no recover here: a panic fails the fuzz run
		if b.locked[alice] {
			t.Fatal("maildrop still locked after the session ended")
		}
	})
}

// FuzzWriteMessage checks the RETR encoder on arbitrary stored messages:
// the output parses back as a multi-line response whose content is the
// input with CRLF line ends, and WireSize matches it.
func FuzzWriteMessage(f *testing.F) {
	for _, m := range []string{msgDots, msgBareLF, msgTop, "", ".", "\r", "a\r\r\n.\n", "\n\n.\r\n"} {
		f.Add([]byte(m))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		var out bytes.Buffer
		w := bufio.NewWriter(&out)
		if err := writeMessage(w, bufio.NewReader(bytes.NewReader(in)), -1); err != nil {
			t.Fatal(err)
		}
		w.Flush()
		wire := out.String()
		if !strings.HasSuffix(wire, ".\r\n") || (len(wire) > 3 && !strings.HasSuffix(wire, "\r\n.\r\n")) {
			t.Fatalf("output %q does not end in CRLF.CRLF", wire)
		}
		body := strings.TrimSuffix(wire, ".\r\n")
		lines := strings.SplitAfter(body, "\r\n")
		var content strings.Builder
		for _, l := range lines {
			if strings.HasPrefix(l, ".") {
				if !strings.HasPrefix(l, "..") {
					t.Fatalf("unstuffed line %q in %q", l, wire)
				}
				l = l[1:]
			}
			if strings.Contains(strings.TrimSuffix(l, "\r\n"), "\n") {
				t.Fatalf("bare LF in line %q", l)
			}
			content.WriteString(l)
		}
		if w := crlfLines(string(in)); content.String() != w {
			t.Fatalf("content %q, want %q", content.String(), w)
		}
		n, err := WireSize(bytes.NewReader(in))
		if err != nil || n != int64(content.Len()) {
			t.Fatalf("WireSize = %d, %v; want %d", n, err, content.Len())
		}
	})
}

// crlfLines is the reference for what RETR must carry: every line of in
// (LF or CRLF ended, or unterminated at the end) ending in CRLF, bare CRs
// inside lines kept. It is written independently of copyLines.
func crlfLines(in string) string {
	var b strings.Builder
	lines := strings.Split(in, "\n")
	for i, l := range lines {
		if i == len(lines)-1 && l == "" {
			break
		}
		b.WriteString(strings.TrimSuffix(l, "\r"))
		b.WriteString("\r\n")
	}
	return b.String()
}
