package specialip

import (
	"net/netip"
	"strings"
	"testing"
)

func TestReason(t *testing.T) {
	for _, tc := range []struct{ addr, want string }{
		{"127.0.0.1", "loopback"}, {"127.8.9.1", "loopback"}, {"::1", "loopback"},
		{"::ffff:127.0.0.1", "loopback"},
		{"10.0.0.1", "private"}, {"172.16.5.4", "private"}, {"172.31.255.255", "private"}, {"192.168.1.1", "private"},
		{"fc00::1", "private"}, {"fd12:3456::1", "private"},
		{"169.254.169.254", "cloud metadata"}, {"169.254.1.1", "link-local"}, {"fe80::1", "link-local"},
		{"0.0.0.0", "unspecified"}, {"::", "unspecified"}, {"0.1.2.3", "this network"},
		{"224.0.0.1", "multicast"}, {"239.1.1.1", "multicast"}, {"ff02::1", "multicast"}, {"ff0e::1", "multicast"},
		{"100.64.0.1", "carrier-grade NAT"}, {"100.127.255.254", "carrier-grade NAT"},
		{"192.0.0.170", "IETF"}, {"192.0.2.1", "documentation"}, {"198.18.0.1", "benchmarking"},
		{"240.0.0.1", "reserved"}, {"255.255.255.255", "reserved"},
		{"64:ff9b::a00:1", "private address (embedded in 64:ff9b::a00:1)"}, {"2002:7f00:1::", "loopback address (embedded"},
		{"2001:db8::1", "documentation"}, {"fec0::1", "site-local"}, {"::127.0.0.1", "IPv4-compatible"},
		{"8.8.8.8", ""}, {"1.1.1.1", ""}, {"100.128.0.1", ""}, {"172.32.0.1", ""}, {"2606:4700::1111", ""},
		{"64:ff9b::808:808", ""}, {"2002:808:808::", ""},
	} {
		got := Reason(netip.MustParseAddr(tc.addr))
		if (tc.want == "") != (got == "") || !strings.Contains(got, tc.want) {
			t.Errorf("Reason(%s) = %q, want %q", tc.addr, got, tc.want)
		}
	}
}
