package pop3

// The TRANSACTION state (RFC 1939 §5): the maildrop's listing, deletions
// and the messages sent dot-stuffed.

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"strconv"
)

// count returns the number and total size of messages not marked deleted.
func (s *session) count() (n int, size int64) {
	for i, m := range s.msgs {
		if !s.deleted[i] {
			n++
			size += m.Size
		}
	}
	return n, size
}

// msgArg parses a message-number argument (RFC 1939 §5): a decimal number
// from 1 to the number of messages, not marked as deleted. It answers -ERR
// itself and returns -1 when the argument is not acceptable.
func (s *session) msgArg(arg string) int {
	n, ok := parseNum(arg)
	if !ok {
		s.fail("invalid message number")
		return -1
	}
	if n < 1 || n > len(s.msgs) {
		s.fail(fmt.Sprintf("no such message, only %d messages in maildrop", len(s.msgs)))
		return -1
	}
	if s.deleted[n-1] {
		s.fail(fmt.Sprintf("message %d already deleted", n))
		return -1
	}
	return n - 1
}

// parseNum parses a non-negative decimal of at most 9 digits.
func parseNum(arg string) (int, bool) {
	if arg == "" || len(arg) > 9 {
		return 0, false
	}
	n := 0
	for _, c := range []byte(arg) {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int(c-'0')
	}
	return n, true
}

// stat implements STAT (RFC 1939 §5).
func (s *session) stat(args []string) {
	if len(args) != 0 {
		s.fail("STAT takes no arguments")
		return
	}
	n, size := s.count()
	s.reply(fmt.Sprintf("+OK %d %d", n, size))
}

// list implements LIST [msg] (RFC 1939 §5).
func (s *session) list(args []string) {
	switch len(args) {
	case 0:
		n, size := s.count()
		s.reply(fmt.Sprintf("+OK %d messages (%d octets)", n, size))
		for i, m := range s.msgs {
			if !s.deleted[i] {
				s.reply(strconv.Itoa(i+1) + " " + strconv.FormatInt(m.Size, 10))
			}
		}
		s.reply(".")
	case 1:
		if i := s.msgArg(args[0]); i >= 0 {
			s.reply(fmt.Sprintf("+OK %d %d", i+1, s.msgs[i].Size))
		}
	default:
		s.fail("usage: LIST [msg]")
	}
}

// uidl implements UIDL [msg] (RFC 1939 §7).
func (s *session) uidl(args []string) {
	switch len(args) {
	case 0:
		s.reply("+OK unique-id listing follows")
		for i, m := range s.msgs {
			if !s.deleted[i] {
				s.reply(strconv.Itoa(i+1) + " " + m.UID)
			}
		}
		s.reply(".")
	case 1:
		if i := s.msgArg(args[0]); i >= 0 {
			s.reply(fmt.Sprintf("+OK %d %s", i+1, s.msgs[i].UID))
		}
	default:
		s.fail("usage: UIDL [msg]")
	}
}

// dele implements DELE (RFC 1939 §5): it only marks; QUIT removes.
func (s *session) dele(args []string) {
	if len(args) != 1 {
		s.fail("usage: DELE msg")
		return
	}
	if i := s.msgArg(args[0]); i >= 0 {
		s.deleted[i] = true
		s.reply(fmt.Sprintf("+OK message %d deleted", i+1))
	}
}

// rset implements RSET (RFC 1939 §5).
func (s *session) rset(args []string) {
	if len(args) != 0 {
		s.fail("RSET takes no arguments")
		return
	}
	clear(s.deleted)
	n, size := s.count()
	s.reply(fmt.Sprintf("+OK maildrop has %d messages (%d octets)", n, size))
}

// retr implements RETR (RFC 1939 §5).
func (s *session) retr(args []string) bool {
	if len(args) != 1 {
		s.fail("usage: RETR msg")
		return false
	}
	i := s.msgArg(args[0])
	if i < 0 {
		return false
	}
	s.retrieve++
	return s.send(i, -1, fmt.Sprintf("+OK %d octets", s.msgs[i].Size))
}

// top implements TOP (RFC 1939 §7).
func (s *session) top(args []string) bool {
	if len(args) != 2 {
		s.fail("usage: TOP msg n")
		return false
	}
	i := s.msgArg(args[0])
	if i < 0 {
		return false
	}
	n, ok := parseNum(args[1])
	if !ok {
		s.fail("invalid line count")
		return false
	}
	return s.send(i, n, "+OK top of message follows")
}

// send writes message i as a multi-line response; bodyLines < 0 sends all
// of it. A failure after +OK went out cannot be reported in-band, so the
// connection is closed instead (the client sees no terminating "." and
// does not take a truncated message for a whole one).
func (s *session) send(i, bodyLines int, status string) bool {
	rc, err := s.drop.Open(s.ctx, i)
	if errors.Is(err, ErrNoSuchMessage) {
		s.fail("message was removed by another session")
		return false
	}
	if err != nil {
		s.log.Error("pop3 open message", "uid", s.msgs[i].UID, "err", err)
		s.reply("-ERR " + codeSysTemp + "cannot read the message now")
		return false
	}
	defer rc.Close()
	if s.mr == nil {
		s.mr = bufio.NewReaderSize(rc, 32*1024)
	} else {
		s.mr.Reset(rc)
	}
	defer s.mr.Reset(nil) // do not keep the message reader reachable
	s.reply(status)
	if err := writeMessage(s.w, s.mr, bodyLines); err != nil {
		s.log.Error("pop3 send message", "uid", s.msgs[i].UID, "err", err)
		s.reason = "send message: " + err.Error()
		return true
	}
	return false
}

// writeMessage copies a message from r to w as the body of a multi-line
// response (RFC 1939 §3): every line ends in CRLF (a bare LF in the stored
// message becomes CRLF), a line starting with "." gets another "." in front
// (byte-stuffing), and ".CRLF" ends it. bodyLines >= 0 stops after the
// header, the blank line and that many body lines (TOP).
func writeMessage(w *bufio.Writer, r *bufio.Reader, bodyLines int) error {
	if err := copyLines(w, r, bodyLines, true); err != nil {
		return err
	}
	_, err := w.WriteString(".\r\n")
	return err
}

// WireSize returns the size of a message as RETR sends it: lines ending in
// CRLF, without byte-stuffing and the terminating ".", which is the size
// RFC 1939 §5 asks LIST and STAT to report.
func WireSize(r io.Reader) (int64, error) {
	var c countWriter
	w := bufio.NewWriterSize(&c, 4096)
	if err := copyLines(w, bufio.NewReaderSize(r, 32*1024), -1, false); err != nil {
		return 0, err
	}
	if err := w.Flush(); err != nil {
		return 0, err
	}
	return c.n, nil
}

type countWriter struct{ n int64 }

func (c *countWriter) Write(p []byte) (int, error) { c.n += int64(len(p)); return len(p), nil }

// copyLines copies r to w with CRLF line ends, byte-stuffing when stuff is
// set; see writeMessage.
func copyLines(w *bufio.Writer, br *bufio.Reader, bodyLines int, stuff bool) error {
	bol := true        // at the beginning of a line
	header := true     // still in the header section
	pendingCR := false // a chunk ended in CR; the next decides if it was CRLF
	for {
		chunk, err := br.ReadSlice('\n')
		if len(chunk) > 0 {
			if pendingCR {
				pendingCR = false
				if chunk[0] != '\n' {
					w.WriteByte('\r') // a bare CR inside a line: kept
				}
			}
			if bol {
				if !header && bodyLines >= 0 {
					if bodyLines == 0 {
						break
					}
					bodyLines--
				}
				if header && (len(chunk) == 1 && chunk[0] == '\n' || len(chunk) == 2 && chunk[0] == '\r' && chunk[1] == '\n') {
					header = false
				}
				if stuff && chunk[0] == '.' {
					w.WriteByte('.')
				}
			}
			if chunk[len(chunk)-1] == '\n' {
				line := chunk[:len(chunk)-1]
				if n := len(line); n > 0 && line[n-1] == '\r' {
					line = line[:n-1]
				}
				w.Write(line)
				w.WriteString("\r\n")
				bol = true
			} else {
				if chunk[len(chunk)-1] == '\r' {
					chunk = chunk[:len(chunk)-1]
					pendingCR = true
				}
				w.Write(chunk)
				bol = false
			}
		}
		if err == io.EOF {
			break
		}
		if err != nil && !errors.Is(err, bufio.ErrBufferFull) {
			return fmt.Errorf("read message: %w", err)
		}
	}
	if !bol || pendingCR {
		w.WriteString("\r\n")
	}
	return nil
}
