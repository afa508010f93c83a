package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"
)

// The second client is Postfix's smtp-source: one connection per message
// (or one per session with --per-conn 0, its -d), no pipelining, an
// independent implementation of the client side of the dialogue. It sends
// the same DKIM-signed message as the builtin client, from a file (-F), so
// mailhook does the same work for either.
//
// smtp-source has no way to vary the Subject per message, and a message
// sent twice unchanged would be one message to mailhook (its stable id is
// the envelope and the content, the queue's commit key). So each run of
// smtp-source (a round) gets a file of its own, Subject "mhb RUNID-rN",
// and -N numbers the recipients within the round ("1support@...",
// "2support@..."): the webhook receiver knows a message by its Subject and
// recipient, and reads when it was accepted from the webhook's payload
// (receiver.byKey). smtp-source cannot stop at a time, so a run of
// --duration is rounds sized from the rate measured so far.

// smtpSourceHint says how to get smtp-source.
const smtpSourceHint = "Debian/Ubuntu: apt-get install postfix"

// findSMTPSource returns the path of smtp-source: on PATH, or in /usr/sbin
// where the postfix package installs it (often not on a user's PATH).
func findSMTPSource() (string, error) {
	for _, n := range []string{"smtp-source", "/usr/sbin/smtp-source"} {
		if p, err := exec.LookPath(n); err == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("smtp-source is not installed: not on PATH nor in /usr/sbin (%s)", smtpSourceHint)
}

// smtpSourceUnfit says why smtp-source cannot drive the runs of s, or "".
func smtpSourceUnfit(s runSpec) string {
	switch {
	case s.Rate > 0:
		return "--rate: smtp-source cannot hold a fixed rate"
	case s.PerConn != 0 && s.PerConn != 1:
		return "--per-conn: smtp-source sends one message per connection (1) or reuses it for the whole run (0)"
	case s.Nodes > 1:
		return "--nodes: smtp-source talks to one server"
	case strings.EqualFold(strings.TrimSpace(s.Size), "mixed"):
		return "--size mixed: smtp-source sends one message file"
	}
	return ""
}

const (
	// roundLength is the most a round of a --duration run is sized for.
	roundLength = 5 * time.Second
	// firstRound is the messages per session of a run's first round,
	// which measures the rate the later ones are sized by.
	firstRound = 4
)

// runSMTPSource runs the load with smtp-source, in rounds until the run's
// bound, and returns the counts as runClient does. OnAccept is not called
// (smtp-source does not say when each message was accepted); OnSent gets
// the running count of messages whose data went out.
func runSMTPSource(ctx context.Context, o clientOptions) *clientStats {
	st := &clientStats{Start: time.Now()}
	defer func() { st.End = time.Now() }()
	if o.Timeout <= 0 {
		o.Timeout = time.Minute
	}
	dir, err := os.MkdirTemp("", "mailhook-bench-source-")
	if err != nil {
		st.fail("smtp-source: " + err.Error())
		st.Fatal = err.Error()
		return st
	}
	defer os.RemoveAll(dir)
	var deadline time.Time
	if o.Duration > 0 {
		deadline = st.Start.Add(o.Duration)
	}
	var sent, attempted int64
	rate := 0.0 // messages per second, measured
	for round := 0; ctx.Err() == nil; round++ {
		m := int64(1 << 30)
		if !deadline.IsZero() {
			left := time.Until(deadline)
			if left <= 0 {
				break
			}
			if rate == 0 {
				m = int64(o.Sessions * firstRound)
			} else {
				m = max(int64(rate*min(left, roundLength).Seconds()), int64(o.Sessions))
			}
		}
		if o.Count > 0 {
			if o.Count <= attempted {
				break
			}
			m = min(m, o.Count-attempted)
		}
		t0 := time.Now()
		r := sourceRound(ctx, o, dir, round, m, func(n int64) {
			if o.OnSent != nil {
				o.OnSent(sent + n)
			}
		})
		sent += r.sent
		attempted += r.attempted
		st.Attempted.Add(r.attempted)
		st.Accepted.Add(r.accepted)
		st.AcceptedBytes.Add(r.accepted * int64(r.size))
		st.Connections.Add(r.connections)
		for k, v := range r.errors {
			for range v {
				st.fail(k)
			}
		}
		if r.fatal != "" {
			st.Fatal = r.fatal
			break
		}
		if d := time.Since(t0).Seconds(); d > 0 && r.accepted > 0 {
			rate = float64(r.attempted) / d
		}
	}
	return st
}

// roundResult is what one run of smtp-source did.
type roundResult struct {
	attempted, sent, accepted, connections int64
	size                                   int // bytes of the message
	errors                                 map[string]int64
	fatal                                  string // why smtp-source stopped early, or ""
}

// sourceRound runs smtp-source once for m messages; onSent gets its -c
// counter (data sent, the reply not yet read) as it advances.
func sourceRound(ctx context.Context, o clientOptions, dir string, round int, m int64, onSent func(int64)) (r roundResult) {
	r.errors = map[string]int64{}
	tag := fmt.Sprintf("%s-r%d", o.RunID, round)
	msg := sourceMessage(o.Msgs.pick(0), tag)
	r.size = len(msg)
	file := filepath.Join(dir, "message.eml")
	// smtp-source reads lines and ends each with CRLF itself.
	if err := os.WriteFile(file, bytes.ReplaceAll(msg, []byte("\r\n"), []byte("\n")), 0o600); err != nil {
		r.fatal = err.Error()
		return r
	}
	sessions := min(int64(o.Sessions), m)
	args := []string{"-A", "-c", "-N", "-s", strconv.FormatInt(sessions, 10), "-m", strconv.FormatInt(m, 10),
		"-F", file, "-f", mailFrom, "-t", rcptTo, "-M", heloName}
	if o.PerConn == 0 {
		args = append(args, "-d")
	}
	args = append(args, "inet:"+o.Addr)
	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	cmd := exec.CommandContext(rctx, o.Binary, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &limitedBuffer{b: &stderr, n: 1 << 20}
	out, err := cmd.StdoutPipe()
	if err != nil {
		r.fatal = err.Error()
		return r
	}
	if err := cmd.Start(); err != nil {
		r.fatal = "smtp-source: " + err.Error()
		return r
	}
	// The counter goes to stdout as "N\r" after each message's data. No
	// progress for a reply timeout ends the round.
	var mu sync.Mutex
	var counter int64
	stalled := false
	watchdog := time.AfterFunc(o.Timeout, func() {
		mu.Lock()
		stalled = true
		mu.Unlock()
		cancel()
	})
	sc := bufio.NewScanner(out)
	sc.Split(splitCR)
	for sc.Scan() {
		n, err := strconv.ParseInt(strings.TrimSpace(sc.Text()), 10, 64)
		if err != nil {
			continue
		}
		watchdog.Reset(o.Timeout)
		mu.Lock()
		counter = n
		mu.Unlock()
		onSent(n)
	}
	_, _ = io.Copy(io.Discard, out)
	werr := cmd.Wait()
	watchdog.Stop()
	mu.Lock()
	r.sent = counter
	timedOut := stalled
	mu.Unlock()

	dotRefused := int64(0)
	fatal := ""
	for line := range strings.Lines(stderr.String()) {
		key, isFatal := sourceError(strings.TrimSpace(line))
		switch {
		case key == "":
		case isFatal:
			if fatal == "" {
				fatal = key
			}
		default:
			r.errors[key]++
			if strings.HasPrefix(key, "DOT ") {
				dotRefused++
			}
		}
	}
	r.accepted = max(r.sent-dotRefused, 0)
	r.attempted = m
	switch {
	case werr == nil:
	case ctx.Err() != nil:
		// Cancelled: messages in flight may or may not have been taken.
		r.attempted = r.sent
		r.accepted = max(r.accepted-sessions, 0)
	default:
		if timedOut {
			fatal = fmt.Sprintf("smtp-source: no message sent in %v", o.Timeout)
		} else if fatal == "" {
			fatal = "smtp-source: " + werr.Error()
		}
		// Up to one message per session had its data sent and no
		// reply read: count only what surely was accepted.
		r.attempted = r.sent
		r.accepted = max(r.accepted-sessions, 0)
		r.errors[fatal]++
		r.fatal = fatal
	}
	if o.PerConn == 0 {
		r.connections = sessions
	} else {
		r.connections = r.attempted
	}
	return r
}

// sourceMessage is the message of a round: the template with its
// Message-ID and Subject.
func sourceMessage(t *template, tag string) []byte {
	var b bytes.Buffer
	b.Write(t.head)
	fmt.Fprintf(&b, "Message-ID: <%s@%s>\r\nSubject: mhb %s\r\n", tag, senderDomain, tag)
	b.Write(t.tail[:len(t.tail)-len(".\r\n")])
	return b.Bytes()
}

// sourceRefusal reads the warnings smtp-source -A writes for a refused
// command: "smtp-source: warning: recipient rejected: 451 4.3.0 text".
var sourceRefusal = regexp.MustCompile(`^(?:[^:]*: )?warning: (.+?) rejected: (\d{3})`)

// sourceError reads one stderr line of smtp-source: the key an error is
// counted under (as the builtin client's: "RCPT 451", "DOT 554"), whether
// it ended smtp-source, or "" for a line that is neither.
func sourceError(line string) (string, bool) {
	if m := sourceRefusal.FindStringSubmatch(line); m != nil {
		stage := map[string]string{"sender": "MAIL", "recipient": "RCPT", "data": "DATA", "end of data": "DOT",
			"rset": "RSET", "HELO": "HELO", "LHLO": "LHLO", "EHLO": "EHLO"}[m[1]]
		if stage == "" {
			stage = strings.ToUpper(m[1])
		}
		return stage + " " + m[2], false
	}
	if _, rest, ok := strings.Cut(line, "fatal: "); ok {
		return "smtp-source: " + rest, true
	}
	if _, rest, ok := strings.Cut(line, "warning: "); ok {
		return "smtp-source: " + rest, false
	}
	return "", false
}

// splitCR splits smtp-source's counter output at "\r" (and "\n").
func splitCR(data []byte, atEOF bool) (int, []byte, error) {
	if i := bytes.IndexAny(data, "\r\n"); i >= 0 {
		return i + 1, data[:i], nil
	}
	if atEOF && len(data) > 0 {
		return len(data), data, nil
	}
	return 0, nil, nil
}

// limitedBuffer keeps the first n bytes written and drops the rest.
type limitedBuffer struct {
	b *bytes.Buffer
	n int
}

func (l *limitedBuffer) Write(p []byte) (int, error) {
	if room := l.n - l.b.Len(); room > 0 {
		l.b.Write(p[:min(len(p), room)])
	}
	return len(p), nil
}
