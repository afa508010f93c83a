// Package smtptest is an SMTP client for tests that need the replies as
// the sender sees them: the code and text of each reply, including the
// text after a 250 to the final dot ("Ok: queued as ID"), which net/smtp
// drops.
package smtptest

import (
	"fmt"
	"net"
	"net/textproto"
	"time"
)

// Result holds the replies of one transaction, each as "code text".
type Result struct {
	// Rcpt are the replies to each RCPT TO, in order.
	Rcpt []string
	// Data is the reply to the final dot, or to DATA when it was refused;
	// empty when no recipient was accepted.
	Data string
}

// Send runs one transaction (EHLO, MAIL, RCPT for each recipient, DATA)
// against addr, with a 30-second deadline on the whole. msg is dot-stuffed
// here. The error is for a connection failure or a refused EHLO or MAIL;
// refused recipients and data are in the Result.
func Send(addr, from string, rcpts []string, msg string) (Result, error) {
	var res Result
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return res, err
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(30 * time.Second))
	c := textproto.NewConn(conn)
	cmd := func(want int, format string, args ...any) (string, bool, error) {
		if format != "" {
			if err := c.PrintfLine(format, args...); err != nil {
				return "", false, err
			}
		}
		code, text, err := c.ReadResponse(want)
		if _, isProto := err.(*textproto.Error); err != nil && !isProto {
			return "", false, err
		}
		return fmt.Sprintf("%d %s", code, text), err == nil, nil
	}
	if r, ok, err := cmd(220, ""); err != nil || !ok {
		return res, fmt.Errorf("smtptest: greeting %q: %v", r, err)
	}
	for _, s := range []string{"EHLO client.test", "MAIL FROM:<" + from + ">"} {
		r, ok, err := cmd(250, "%s", s)
		if err != nil {
			return res, err
		}
		if !ok {
			return res, fmt.Errorf("smtptest: %q: %s", s, r)
		}
	}
	accepted := 0
	for _, to := range rcpts {
		r, ok, err := cmd(250, "RCPT TO:<%s>", to)
		if err != nil {
			return res, err
		}
		res.Rcpt = append(res.Rcpt, r)
		if ok {
			accepted++
		}
	}
	if accepted == 0 {
		cmd(221, "QUIT")
		return res, nil
	}
	r, ok, err := cmd(354, "DATA")
	if err != nil {
		return res, err
	}
	if !ok {
		res.Data = r
		return res, nil
	}
	w := c.DotWriter()
	if _, err := w.Write([]byte(msg)); err != nil {
		return res, err
	}
	if err := w.Close(); err != nil {
		return res, err
	}
	if res.Data, _, err = cmd(250, ""); err != nil {
		return res, err
	}
	cmd(221, "QUIT")
	return res, nil
}
