package pop3

import (
	"bufio"
	"io"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// A transcript is a POP3 dialogue, one line each:
//
//	# comment
//	O: option        server option: loopback-remote, allow-plaintext
//	C: line          sent by the client (consecutive C: lines go in one write)
//	C| line          sent by the client with a bare LF line end
//	S: line          expected from the server, exactly
//	S~ regexp        expected from the server, matched whole
//	S: <closed>      the server closes the connection
//
// Alice's maildrop holds the three test messages (want in flows_test.go).
type step struct {
	kind byte // 'C', 'S', '~', 'X' (closed)
	text string
	re   *regexp.Regexp
	line int
}

func parseTranscript(t *testing.T, r io.Reader) (opts []string, steps []step) {
	t.Helper()
	sc := bufio.NewScanner(r)
	n := 0
	for sc.Scan() {
		n++
		l := sc.Text()
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		if len(l) < 3 {
			t.Fatalf("line %d: %q: too short", n, l)
		}
		tag, text := l[:3], l[3:]
		switch tag {
		case "O: ":
			opts = append(opts, text)
		case "C: ":
			steps = append(steps, step{kind: 'C', text: text + "\r\n", line: n})
		case "C| ":
			steps = append(steps, step{kind: 'C', text: text + "\n", line: n})
		case "S: ":
			if text == "<closed>" {
				steps = append(steps, step{kind: 'X', line: n})
			} else {
				steps = append(steps, step{kind: 'S', text: text, line: n})
			}
		case "S~ ":
			steps = append(steps, step{kind: '~', re: regexp.MustCompile("^(?:" + text + ")$"), line: n})
		default:
			t.Fatalf("line %d: %q: unknown tag", n, l)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return opts, steps
}

func runTranscript(t *testing.T, e env, src io.Reader) {
	t.Helper()
	withMessages(t, e)
	options, steps := parseTranscript(t, src)
	o := opts(e)
	for _, opt := range options {
		switch opt {
		case "loopback-remote":
			o.LoopbackIsRemote = true
		case "allow-plaintext":
			o.AllowPlaintextAuth = true
		default:
			t.Fatalf("unknown option %q", opt)
		}
	}
	_, addr, _ := startServer(t, o)
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	c := newClient(t, conn)
	for i := 0; i < len(steps); {
		st := steps[i]
		switch st.kind {
		case 'C':
			// Pipeline consecutive client lines in one write (RFC
			// 2449 §6.6).
			var b strings.Builder
			for ; i < len(steps) && steps[i].kind == 'C'; i++ {
				b.WriteString(steps[i].text)
			}
			if _, err := io.WriteString(c.conn, b.String()); err != nil {
				t.Fatalf("line %d: write: %v", st.line, err)
			}
			continue
		case 'S':
			if got := c.line(); got != st.text {
				t.Fatalf("line %d: server said %q, want %q", st.line, got, st.text)
			}
		case '~':
			if got := c.line(); !st.re.MatchString(got) {
				t.Fatalf("line %d: server said %q, want a match for %s", st.line, got, st.re)
			}
		case 'X':
			c.expectClosed()
		}
		i++
	}
}

func TestTranscripts(t *testing.T) {
	files, err := filepath.Glob("testdata/*.txt")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatal("no transcripts in testdata")
	}
	for _, f := range files {
		t.Run(strings.TrimSuffix(filepath.Base(f), ".txt"), func(t *testing.T) {
			eachFixture(t, func(t *testing.T, e env) {
				fh, err := os.Open(f)
				if err != nil {
					t.Fatal(err)
				}
				defer fh.Close()
				runTranscript(t, e, fh)
			})
		})
	}
}

// TestTranscriptInline holds dialogues too small for a file of their own.
func TestTranscriptInline(t *testing.T) {
	tests := []struct{ name, script string }{
		{"quit before login", "C: QUIT\nS: +OK bye\nS: <closed>\n"},
		{"lowercase commands", "C: user alice\nS: +OK\nC: pass correct horse\nS~ \\+OK maildrop has 3 messages .*\nC: stat\nS: +OK 3 215\nC: quit\nS: +OK bye (3 messages left)\n"},
		{"password with spaces and a bare LF line end", "C| USER alice\nS: +OK\nC| PASS correct horse\nS~ \\+OK.*\nC| QUIT\nS~ \\+OK.*\n"},
		{"transaction commands before login", "C: STAT\nS: -ERR STAT not valid in the AUTHORIZATION state\nC: NOOP\nS: -ERR NOOP not valid in the AUTHORIZATION state\n"},
		{"authorization commands after login", "C: USER alice\nC: PASS correct horse\nS: +OK\nS~ \\+OK.*\nC: USER bob\nS: -ERR USER not valid in the TRANSACTION state\nC: STLS\nS: -ERR STLS not valid in the TRANSACTION state\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			eachFixture(t, func(t *testing.T, e env) {
				runTranscript(t, e, strings.NewReader("S~ \\+OK .*\n"+tt.script))
			})
		})
	}
}
