package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// clientOptions configure one load run of the SMTP client.
type clientOptions struct {
	Addr     string
	Sessions int
	// PerConn is the number of messages per connection; 0 = as many as
	// the run allows.
	PerConn int
	// Duration and Count bound the run; the first reached ends it.
	Duration time.Duration
	Count    int64
	// Rate, when > 0, sends at a fixed rate (messages per second) in all,
	// message i at start + i/Rate, whatever the replies take (an open loop,
	// as long as sessions are free).
	Rate float64
	Msgs *messageSet
	// RunID goes into every Subject: "mhb RUNID-SEQ".
	RunID   string
	Timeout time.Duration // per reply
	// OnAccept is called when the client read the 250 after the data,
	// with the time it had sent the data's end: the server's acceptance
	// falls between the two, and a webhook can arrive before the client
	// reads its 250 but not before the data's end was sent.
	OnAccept func(seq int64, sent time.Time)
	// Binary is smtp-source's path, for runSMTPSource.
	Binary string
	// OnSent, for runSMTPSource, gets the running count of messages whose
	// data went out (their replies may still be on the way).
	OnSent func(n int64)
}

// clientStats are the counts of one run.
type clientStats struct {
	Attempted     atomic.Int64
	Accepted      atomic.Int64
	AcceptedBytes atomic.Int64
	Connections   atomic.Int64
	NoPipelining  atomic.Int64

	mu     sync.Mutex
	errors map[string]int64

	Start, End time.Time
	// Fatal is why the client stopped before the run's bound (smtp-source
	// exited), or "".
	Fatal string
}

func (s *clientStats) fail(key string) {
	s.mu.Lock()
	if s.errors == nil {
		s.errors = map[string]int64{}
	}
	s.errors[key]++
	s.mu.Unlock()
}

// Errors returns a copy of the error counts, keyed "STAGE CODE" (a reply
// code) or "STAGE io: KIND".
func (s *clientStats) Errors() map[string]int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]int64, len(s.errors))
	for k, v := range s.errors {
		out[k] = v
	}
	return out
}

// errorSummary writes the error counts on one line, most frequent first.
func errorSummary(m map[string]int64) string {
	if len(m) == 0 {
		return "-"
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return m[keys[i]] > m[keys[j]] || m[keys[i]] == m[keys[j]] && keys[i] < keys[j] })
	var b bytes.Buffer
	for i, k := range keys {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%s×%d", k, m[k])
	}
	return b.String()
}

// runClient runs the load until its bound and returns the counts.
func runClient(ctx context.Context, o clientOptions) *clientStats {
	if o.Timeout <= 0 {
		o.Timeout = time.Minute
	}
	st := &clientStats{}
	var next atomic.Int64
	st.Start = time.Now()
	deadline := time.Time{}
	if o.Duration > 0 {
		deadline = st.Start.Add(o.Duration)
	}
	// take hands out the next message number, or false when the run is over.
	take := func() (int64, bool) {
		if ctx.Err() != nil || !deadline.IsZero() && !time.Now().Before(deadline) {
			return 0, false
		}
		seq := next.Add(1) - 1
		if o.Count > 0 && seq >= o.Count {
			return 0, false
		}
		if o.Rate > 0 {
			at := st.Start.Add(time.Duration(float64(seq) / o.Rate * float64(time.Second)))
			if !deadline.IsZero() && !at.Before(deadline) {
				return 0, false
			}
			if d := time.Until(at); d > 0 {
				t := time.NewTimer(d)
				select {
				case <-ctx.Done():
					t.Stop()
					return 0, false
				case <-t.C:
				}
			}
		}
		return seq, true
	}
	var wg sync.WaitGroup
	addrs := strings.Split(o.Addr, ",")
	for i := range o.Sessions {
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() {
				if r := recover(); r != nil {
					st.fail(fmt.Sprintf("panic: %v", r))
				}
			}()
			// Sessions spread over the servers of a comma-separated Addr
			// (the nodes of --nodes), one server per session.
			s := &session{o: &o, st: st, addr: addrs[i%len(addrs)]}
			s.run(ctx, take)
		}()
	}
	wg.Wait()
	st.End = time.Now()
	return st
}

// session is one client connection at a time, reconnecting as needed.
type session struct {
	o          *clientOptions
	addr       string
	st         *clientStats
	c          net.Conn
	r          *bufio.Reader
	w          *bufio.Writer
	pipelining bool
	sent       int // messages on this connection
	line       []byte
	scratch    []byte
}

func (s *session) run(ctx context.Context, take func() (int64, bool)) {
	defer s.close(true)
	for {
		seq, ok := take()
		if !ok {
			return
		}
		s.st.Attempted.Add(1)
		if s.c == nil {
			if !s.connect() {
				// Do not spin on a server that refuses connections.
				select {
				case <-ctx.Done():
					return
				case <-time.After(10 * time.Millisecond):
				}
				continue
			}
		}
		s.send(seq)
		if s.c != nil && s.o.PerConn > 0 && s.sent >= s.o.PerConn {
			s.close(true)
		}
	}
}

// connect dials, reads the greeting and says EHLO (RFC 5321 §4.1.1.1).
func (s *session) connect() bool {
	c, err := net.DialTimeout("tcp", s.addr, s.o.Timeout)
	if err != nil {
		s.st.fail("CONNECT io: " + ioKind(err))
		return false
	}
	s.st.Connections.Add(1)
	s.c, s.sent = c, 0
	if s.r == nil {
		s.r = bufio.NewReaderSize(c, 4096)
		s.w = bufio.NewWriterSize(c, 64<<10)
	} else {
		s.r.Reset(c)
		s.w.Reset(c)
	}
	if code, ok := s.reply("CONNECT"); !ok {
		return false
	} else if code != 220 {
		s.st.fail("CONNECT " + strconv.Itoa(code))
		s.close(false)
		return false
	}
	s.w.WriteString("EHLO " + heloName + "\r\n")
	if !s.flush("EHLO") {
		return false
	}
	s.pipelining = false
	code, ok := s.replyFunc("EHLO", func(line []byte) {
		if len(line) > 4 && bytes.EqualFold(bytes.TrimSpace(line[4:]), []byte("PIPELINING")) {
			s.pipelining = true
		}
	})
	if !ok {
		return false
	}
	if code != 250 {
		s.st.fail("EHLO " + strconv.Itoa(code))
		s.close(false)
		return false
	}
	if !s.pipelining {
		s.st.NoPipelining.Add(1)
	}
	return true
}

// send runs one transaction. With PIPELINING (RFC 2920 §3.1) MAIL, RCPT and
// DATA go in one write, DATA last in the group, and the client waits for
// the 354 before the message.
func (s *session) send(seq int64) {
	t := s.o.Msgs.pick(seq)
	s.sent++
	s.scratch = s.scratch[:0]
	s.scratch = fmt.Appendf(s.scratch, "Message-ID: <%s.%d@%s>\r\nSubject: mhb %s-%d\r\n", s.o.RunID, seq, senderDomain, s.o.RunID, seq)
	size := len(t.head) + len(s.scratch) + len(t.tail) - 3
	mail := "MAIL FROM:<" + mailFrom + "> SIZE=" + strconv.Itoa(size) + "\r\n"
	rcpt := "RCPT TO:<" + rcptTo + ">\r\n"
	var mailCode, rcptCode, dataCode int
	var ok bool
	if s.pipelining {
		s.w.WriteString(mail + rcpt + "DATA\r\n")
		if !s.flush("MAIL") {
			return
		}
		if mailCode, ok = s.reply("MAIL"); !ok {
			return
		}
		if rcptCode, ok = s.reply("RCPT"); !ok {
			return
		}
		if dataCode, ok = s.reply("DATA"); !ok {
			return
		}
	} else {
		for _, step := range []struct {
			cmd, stage string
			code       *int
		}{{mail, "MAIL", &mailCode}, {rcpt, "RCPT", &rcptCode}, {"DATA\r\n", "DATA", &dataCode}} {
			s.w.WriteString(step.cmd)
			if !s.flush(step.stage) {
				return
			}
			if *step.code, ok = s.reply(step.stage); !ok {
				return
			}
			if *step.code >= 400 {
				break
			}
		}
	}
	failed := ""
	switch {
	case mailCode != 250:
		failed = "MAIL " + strconv.Itoa(mailCode)
	case rcptCode != 250 && rcptCode != 251:
		failed = "RCPT " + strconv.Itoa(rcptCode)
	case dataCode != 354:
		failed = "DATA " + strconv.Itoa(dataCode)
	}
	if dataCode == 354 {
		s.w.Write(t.head)
		s.w.Write(s.scratch)
		s.w.Write(t.tail)
		if !s.flush("DOT") {
			return
		}
		sent := time.Now()
		code, ok := s.reply("DOT")
		if !ok {
			return
		}
		if failed == "" && code == 250 {
			s.st.Accepted.Add(1)
			s.st.AcceptedBytes.Add(int64(size))
			if s.o.OnAccept != nil {
				s.o.OnAccept(seq, sent)
			}
			return
		}
		if failed == "" {
			failed = "DOT " + strconv.Itoa(code)
		}
	}
	s.st.fail(failed)
	if mailCode == 421 || rcptCode == 421 || dataCode == 421 {
		s.close(false)
		return
	}
	// Start clean for the next transaction (RFC 5321 §4.1.1.5).
	s.w.WriteString("RSET\r\n")
	if s.flush("RSET") {
		if code, ok := s.reply("RSET"); ok && code != 250 {
			s.close(false)
		}
	}
}

func (s *session) flush(stage string) bool {
	s.c.SetWriteDeadline(time.Now().Add(s.o.Timeout))
	if err := s.w.Flush(); err != nil {
		s.st.fail(stage + " io: " + ioKind(err))
		s.close(false)
		return false
	}
	return true
}

func (s *session) reply(stage string) (int, bool) { return s.replyFunc(stage, nil) }

// replyFunc reads one reply, possibly multi-line (RFC 5321 §4.2.1), and
// returns its code; each line goes to each when not nil.
func (s *session) replyFunc(stage string, each func([]byte)) (int, bool) {
	s.c.SetReadDeadline(time.Now().Add(s.o.Timeout))
	for lines := 0; ; lines++ {
		line, err := s.r.ReadSlice('\n')
		if err != nil {
			if errors.Is(err, bufio.ErrBufferFull) {
				err = errors.New("reply line too long")
			}
			s.st.fail(stage + " io: " + ioKind(err))
			s.close(false)
			return 0, false
		}
		if len(line) < 4 || lines > 100 {
			s.st.fail(stage + " io: bad reply")
			s.close(false)
			return 0, false
		}
		if each != nil {
			each(line)
		}
		if line[3] != '-' {
			code, err := strconv.Atoi(string(line[:3]))
			if err != nil {
				s.st.fail(stage + " io: bad reply")
				s.close(false)
				return 0, false
			}
			return code, true
		}
	}
}

// close ends the connection, with QUIT when polite (RFC 5321 §4.1.1.10).
func (s *session) close(polite bool) {
	if s.c == nil {
		return
	}
	if polite {
		s.c.SetDeadline(time.Now().Add(2 * time.Second))
		s.w.WriteString("QUIT\r\n")
		if s.w.Flush() == nil {
			s.r.ReadSlice('\n')
		}
	}
	s.c.Close()
	s.c = nil
}

// ioKind names an I/O error without its addresses, so error counts stay
// few keys.
func ioKind(err error) string {
	var ne net.Error
	switch {
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "closed by server"
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE):
		return "connection reset"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused"
	case errors.Is(err, os.ErrDeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return "timeout"
	}
	return err.Error()
}
