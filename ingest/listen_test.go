//go:build linux

package ingest

import (
	"net"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// sockopt reads an int socket option of c.
func sockopt(t *testing.T, c net.Conn, level, opt int) int {
	t.Helper()
	rc, err := c.(*net.TCPConn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var v int
	var gerr error
	if err := rc.Control(func(fd uintptr) { v, gerr = syscall.GetsockoptInt(int(fd), level, opt) }); err != nil {
		t.Fatal(err)
	}
	if gerr != nil {
		t.Fatal(gerr)
	}
	return v
}

// accepted returns the server side of one connection to l.
func accepted(t *testing.T, l net.Listener) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	s, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// The SMTP listener's connections have keep-alive on with the kernel's
// idle time (net.ipv4.tcp_keepalive_time), and TCP_NODELAY; a listener
// opened the default way sets Go's 15 s instead, so the check can tell
// them apart.
func TestListenKeepAliveKernelTimers(t *testing.T) {
	b, err := os.ReadFile("/proc/sys/net/ipv4/tcp_keepalive_time")
	if err != nil {
		t.Fatal(err)
	}
	kernel, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	l, err := Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	s := accepted(t, l)
	if v := sockopt(t, s, syscall.SOL_SOCKET, syscall.SO_KEEPALIVE); v != 1 {
		t.Errorf("SO_KEEPALIVE = %d on an SMTP connection, want 1", v)
	}
	if v := sockopt(t, s, syscall.IPPROTO_TCP, syscall.TCP_KEEPIDLE); v != kernel {
		t.Errorf("TCP_KEEPIDLE = %d s on an SMTP connection, want the kernel's %d", v, kernel)
	}
	if v := sockopt(t, s, syscall.IPPROTO_TCP, syscall.TCP_NODELAY); v == 0 {
		t.Error("TCP_NODELAY off on an SMTP connection")
	}

	d, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if v := sockopt(t, accepted(t, d), syscall.IPPROTO_TCP, syscall.TCP_KEEPIDLE); v == kernel {
		t.Errorf("the default listener's connection has the kernel's idle time %d too: this test cannot tell the two apart", v)
	}
}
