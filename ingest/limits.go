package ingest

import (
	"fmt"
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
		return &sessionConn{Conn: c, l: l, ip: ip, idle: l.s.o.Limits.ReadTimeout}, nil
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
// flow but a silent client is, and it frees the connection's place in the
// limits when closed.
type sessionConn struct {
	net.Conn
	l    *limitListener
	ip   string
	idle time.Duration
	once sync.Once
}

func (c *sessionConn) Read(b []byte) (int, error) {
	if c.idle > 0 {
		_ = c.Conn.SetReadDeadline(time.Now().Add(c.idle))
	}
	return c.Conn.Read(b)
}

// SetReadDeadline is a no-op: the idle deadline is set on each Read.
func (c *sessionConn) SetReadDeadline(t time.Time) error {
	if c.idle > 0 {
		return nil
	}
	return c.Conn.SetReadDeadline(t)
}

func (c *sessionConn) Close() error {
	c.once.Do(func() { c.l.release(c.ip) })
	return c.Conn.Close()
}
