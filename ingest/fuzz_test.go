package ingest

import (
	"bufio"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// pipeListener hands net.Pipe connections to the server, so a fuzz
// iteration costs no socket.
type pipeListener struct {
	ch     chan net.Conn
	closed chan struct{}
	once   sync.Once
}

func (l *pipeListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.ch:
		return c, nil
	case <-l.closed:
		return nil, net.ErrClosed
	}
}
func (l *pipeListener) Close() error   { l.once.Do(func() { close(l.closed) }); return nil }
func (l *pipeListener) Addr() net.Addr { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 25} }

// FuzzSession feeds arbitrary client bytes to a session. Every reply must
// be a well-formed SMTP reply line, nothing may panic, and a commit may only
// follow a proper <CRLF>.<CRLF>.
func FuzzSession(f *testing.F) {
	seeds, _ := filepath.Glob(filepath.Join("testdata", "*.txt"))
	for _, s := range seeds {
		b, err := os.ReadFile(s)
		if err != nil {
			f.Fatal(err)
		}
		f.Add([]byte(clientSide(string(b))))
	}
	f.Add([]byte("EHLO x\r\nMAIL FROM:<a@b.test>\r\nRCPT TO:<support@example.test>\r\nDATA\r\nFrom: a@b.test\r\nSubject: x\r\n\r\nhi\r\n.\r\nQUIT\r\n"))
	f.Add([]byte("HELO x\r\nMAIL FROM:<>\r\nRCPT TO:<support@example.test>\r\nBDAT 5 LAST\r\nhello"))

	h := start(f, nil)
	l := &pipeListener{ch: make(chan net.Conn), closed: make(chan struct{})}
	go h.srv.Serve(l)
	f.Cleanup(func() { l.Close() })

	f.Fuzz(func(t *testing.T, in []byte) {
		client, server := net.Pipe()
		defer client.Close()
		l.ch <- server
		deadline := time.Now().Add(2 * time.Second)
		client.SetDeadline(deadline)
		go func() {
			client.Write(in)
			client.Write([]byte("\r\nQUIT\r\n"))
		}()
		r := bufio.NewReader(client)
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				return
			}
			if len(line) < 4 || line[0] < '2' || line[0] > '5' || (line[3] != ' ' && line[3] != '-') {
				t.Fatalf("malformed reply %q", line)
			}
			if strings.HasPrefix(line, "221 ") {
				return
			}
		}
	})
}

// clientSide returns the C: lines of a transcript as the bytes a client
// sends.
func clientSide(transcript string) string {
	var b strings.Builder
	for _, line := range strings.Split(transcript, "\n") {
		if rest, ok := strings.CutPrefix(strings.TrimRight(line, "\r"), "C: "); ok {
			b.WriteString(rest + "\r\n")
		}
	}
	return b.String()
}

// TestTranscripts replays testdata/*.txt: "C: " lines are sent, "S: " lines
// are reply prefixes the server must answer with, in order.
func TestTranscripts(t *testing.T) {
	files, _ := filepath.Glob(filepath.Join("testdata", "*.txt"))
	if len(files) == 0 {
		t.Fatal("no transcripts in testdata")
	}
	for _, file := range files {
		t.Run(filepath.Base(file), func(t *testing.T) {
			b, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			h := start(t, nil)
			c := dial(t, h.addr)
			for i, line := range strings.Split(string(b), "\n") {
				line = strings.TrimRight(line, "\r")
				switch {
				case strings.HasPrefix(line, "C: "):
					c.send(line[3:] + "\r\n")
				case strings.HasPrefix(line, "S: "):
					if got := c.reply(); !strings.HasPrefix(got, line[3:]) {
						t.Fatalf("line %d: got %q, want %q", i+1, got, line[3:])
					}
				case strings.HasPrefix(line, "COMMITTED: "):
					want := strings.TrimSpace(line[len("COMMITTED: "):])
					if got := h.rec.count(); want != strconv.Itoa(got) {
						t.Fatalf("line %d: committed %d, want %s", i+1, got, want)
					}
				}
			}
		})
	}
}
