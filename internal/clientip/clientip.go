// Package clientip reads a client's IP address from a connection's remote
// address, the one way for every listener (SMTP, IMAP, POP3, admin), so
// that per-address limits, loopback checks and the remote_ip of the logs
// agree.
package clientip

import (
	"net"
	"net/netip"
)

// Of returns the IP address of the remote address a: a *net.TCPAddr, or
// any address whose String is "host:port" with an IP host. An IPv4
// address in IPv6 form (::ffff:192.0.2.1) is returned as IPv4. It returns
// the zero Addr when a carries no IP (a net.Pipe in tests, nil).
func Of(a net.Addr) netip.Addr {
	if ta, ok := a.(*net.TCPAddr); ok {
		if ip, ok := netip.AddrFromSlice(ta.IP); ok {
			return ip.Unmap()
		}
	}
	if a == nil {
		return netip.Addr{}
	}
	return Parse(a.String())
}

// Parse is Of for a "host:port" string, such as http.Request.RemoteAddr.
func Parse(hostport string) netip.Addr {
	ap, err := netip.ParseAddrPort(hostport)
	if err != nil {
		return netip.Addr{}
	}
	return ap.Addr().Unmap()
}

// String returns Of(a) as text, for logs and keys; when a carries no IP it
// returns a's host (or a.String() whole), so that such clients are still
// told apart as before.
func String(a net.Addr) string {
	if ip := Of(a); ip.IsValid() {
		return ip.String()
	}
	if a == nil {
		return ""
	}
	if host, _, err := net.SplitHostPort(a.String()); err == nil {
		return host
	}
	return a.String()
}
