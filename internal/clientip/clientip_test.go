package clientip

import (
	"net"
	"net/netip"
	"testing"
)

func TestOf(t *testing.T) {
	p1, p2 := net.Pipe()
	defer p1.Close()
	defer p2.Close()
	for _, tc := range []struct {
		a    net.Addr
		want string // Of(a).String()
		str  string // String(a)
	}{
		{&net.TCPAddr{IP: net.IPv4(192, 0, 2, 1), Port: 25}, "192.0.2.1", "192.0.2.1"},
		{&net.TCPAddr{IP: net.ParseIP("::ffff:192.0.2.1"), Port: 25}, "192.0.2.1", "192.0.2.1"},
		{&net.TCPAddr{IP: net.ParseIP("2001:db8::1"), Port: 143}, "2001:db8::1", "2001:db8::1"},
		{&net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 53}, "127.0.0.1", "127.0.0.1"},
		{p1.RemoteAddr(), "invalid IP", "pipe"},
		{nil, "invalid IP", ""},
	} {
		if got := Of(tc.a).String(); got != tc.want {
			t.Errorf("Of(%v) = %s, want %s", tc.a, got, tc.want)
		}
		if got := String(tc.a); got != tc.str {
			t.Errorf("String(%v) = %q, want %q", tc.a, got, tc.str)
		}
	}
	if got := Parse("[::ffff:10.0.0.1]:8025"); got != netip.MustParseAddr("10.0.0.1") {
		t.Errorf("Parse(mapped) = %v", got)
	}
	if got := Parse("not an address"); got.IsValid() {
		t.Errorf("Parse(garbage) = %v, want the zero Addr", got)
	}
}
