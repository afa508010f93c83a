package ingest

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/mailhook/mailhook/internal/clientip"
)

// limitListener enforces the connection limits at accept time: past the
// total or the per-IP limit a client gets 421 and is closed before any
// session starts.
type limitListener struct {
	net.Listener
	s *Server

	mu    sync.Mutex
	perIP map[string]int
	total int
}

func (l *limitListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		ip := clientip.String(c.RemoteAddr())
		if obs := l.s.o.Observer; obs != nil {
			obs.Connection(ip)
		}
		l.mu.Lock()
		over := l.total >= l.s.o.Limits.MaxConnections || l.perIP[ip] >= l.s.o.Limits.MaxConnectionsPerIP
		if !over {
			l.total++
			l.perIP[ip]++
		}
		l.mu.Unlock()
		if over {
			l.s.o.Logger.Info("connection refused", "remote_ip", ip, "status", 421, "reason", "too many connections")
			_ = c.SetWriteDeadline(time.Now().Add(5 * time.Second))
			fmt.Fprintf(c, "%d %d.%d.%d %s\r\n", ErrTooManyConns.Code, ErrTooManyConns.EnhancedCode[0],
				ErrTooManyConns.EnhancedCode[1], ErrTooManyConns.EnhancedCode[2], ErrTooManyConns.Message)
			c.Close()
			continue
		}
		lim := l.s.o.Limits
		return &sessionConn{Conn: c, l: l, ip: ip, idle: lim.ReadTimeout,
			end: time.Now().Add(lim.MaxSessionTime), rate: lim.MinDataRate, log: l.s.o.Logger, plain: true}, nil
	}
}

func (l *limitListener) release(ip string) {
	l.mu.Lock()
	l.total--
	if l.perIP[ip]--; l.perIP[ip] <= 0 {
		delete(l.perIP, ip)
	}
	l.mu.Unlock()
}

// sessionConn is one client connection. It makes the read deadline an idle
// timeout, renewed on every read, so a large DATA is not cut off while bytes
// flow but a silent client is; it bounds the whole session
// (Limits.MaxSessionTime) and the pace of DATA (Limits.MinDataRate); and it
// frees the connection's place in the limits when closed.
type sessionConn struct {
	net.Conn
	l    *limitListener
	ip   string
	idle time.Duration
	end  time.Time // the session's deadline
	rate int64     // minimum DATA bytes a second; <= 0 is off
	log  *slog.Logger
	once sync.Once

	mu        sync.Mutex
	dataStart time.Time // zero outside DATA
	dataBytes int64
	plain     bool // no TLS seen yet: a reply can be written in clear
}

// startData and endData bracket DATA (or BDAT) for the rate limit.
func (c *sessionConn) startData() {
	c.mu.Lock()
	c.dataStart, c.dataBytes = time.Now(), 0
	c.mu.Unlock()
}

func (c *sessionConn) endData() {
	c.mu.Lock()
	c.dataStart = time.Time{}
	c.mu.Unlock()
}

// deadline is the earliest of the idle timeout, the session's end and,
// in DATA, the time by which the bytes received fall below the rate.
func (c *sessionConn) deadline(now time.Time) (time.Time, string) {
	d, why := c.end, "Session time limit reached"
	if c.idle > 0 && now.Add(c.idle).Before(d) {
		d, why = now.Add(c.idle), ""
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.rate > 0 && !c.dataStart.IsZero() {
		dd := c.dataStart.Add(dataGrace + time.Duration(float64(c.dataBytes)/float64(c.rate)*float64(time.Second)))
		if dd.Before(d) {
			d, why = dd, "Data rate below the minimum"
		}
	}
	return d, why
}

func (c *sessionConn) Read(b []byte) (int, error) {
	now := time.Now()
	d, why := c.deadline(now)
	_ = c.Conn.SetReadDeadline(d)
	n, err := c.Conn.Read(b)
	c.mu.Lock()
	c.dataBytes += int64(n)
	c.mu.Unlock()
	var ne net.Error
	if err != nil && why != "" && errors.As(err, &ne) && ne.Timeout() && !time.Now().Before(d) {
		// Our limit, not the client's silence: say so (in clear only
		// when the session never started TLS: the first byte of a TLS
		// session is 0x16) and close.
		c.log.Info("session closed", "remote_ip", c.ip, "status", "421 4.4.2", "reason", why)
		c.mu.Lock()
		plain := c.plain
		c.mu.Unlock()
		if plain {
			_ = c.Conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
			fmt.Fprintf(c.Conn, "421 4.4.2 %s, closing connection\r\n", why)
		}
		c.Close()
		return n, net.ErrClosed
	}
	return n, err
}

// Write notes when TLS starts: a TLS record (our ServerHello) begins with
// 0x16, an SMTP reply with a digit.
func (c *sessionConn) Write(b []byte) (int, error) {
	if len(b) > 0 && b[0] == 0x16 {
		c.mu.Lock()
		c.plain = false
		c.mu.Unlock()
	}
	return c.Conn.Write(b)
}

// SetReadDeadline is a no-op: the deadline is set on each Read.
func (c *sessionConn) SetReadDeadline(t time.Time) error { return nil }

func (c *sessionConn) Close() error {
	c.once.Do(func() { c.l.release(c.ip) })
	return c.Conn.Close()
}
