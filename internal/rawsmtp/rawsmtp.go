// Package rawsmtp is an SMTP client for tests that sends bytes exactly as
// given, over a raw socket: no client library to fix up line ends, dots or
// addresses, so that tests see what the listener does with what an
// attacker would send.
package rawsmtp

import (
	"bufio"
	"fmt"
	"net"
	"strings"
	"time"
)

// Reply reads one reply and returns its last line without the line end,
// or "EOF: " and any partial line when the connection ends first.
func Reply(r *bufio.Reader) string {
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return "EOF: " + line
		}
		if len(line) < 4 || line[3] != '-' {
			return strings.TrimRight(line, "\r\n")
		}
	}
}

// Transaction connects to addr, says EHLO and runs one transaction: MAIL
// FROM:<from>, RCPT TO:<r> for each of rcpts, and, when a recipient was
// taken, DATA with data followed by <CRLF>.<CRLF>. It returns the replies
// to MAIL, each RCPT and the end of data, stopping at the first refusal
// that ends the transaction. The whole exchange has a 30 second deadline.
func Transaction(addr, from string, rcpts []string, data string) ([]string, error) {
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(30 * time.Second))
	r := bufio.NewReader(c)
	Reply(r)
	fmt.Fprintf(c, "EHLO client.test\r\n")
	Reply(r)
	fmt.Fprintf(c, "MAIL FROM:<%s>\r\n", from)
	out := []string{Reply(r)}
	if !strings.HasPrefix(out[0], "250") {
		return out, nil
	}
	ok := false
	for _, rc := range rcpts {
		fmt.Fprintf(c, "RCPT TO:<%s>\r\n", rc)
		out = append(out, Reply(r))
		ok = ok || strings.HasPrefix(out[len(out)-1], "250")
	}
	if !ok {
		return out, nil
	}
	fmt.Fprintf(c, "DATA\r\n")
	if got := Reply(r); !strings.HasPrefix(got, "354") {
		return append(out, got), nil
	}
	if _, err := c.Write([]byte(data + "\r\n.\r\n")); err != nil {
		return out, err
	}
	out = append(out, Reply(r))
	fmt.Fprintf(c, "QUIT\r\n")
	return out, nil
}
