// Package specialip tells the addresses that are not on the public
// Internet (loopback, private, link-local, multicast and the other
// special-purpose ranges of RFC 6890) from those that are. It is the rule
// webhooks dial by (deliver/webhook refuses such an address without
// allow_private) and the one config checks webhook URLs against.
package specialip

import "net/netip"

// Special-purpose ranges besides what netip classifies; see the
// IANA IPv4 and IPv6 Special-Purpose Address Registries (RFC 6890).
var special = []struct {
	p      netip.Prefix
	reason string
}{
	{netip.MustParsePrefix("0.0.0.0/8"), `"this network" address (RFC 1122 section 3.2.1.3)`},
	{netip.MustParsePrefix("100.64.0.0/10"), "shared address space (carrier-grade NAT, RFC 6598)"},
	{netip.MustParsePrefix("192.0.0.0/24"), "IETF protocol assignment (RFC 6890)"},
	{netip.MustParsePrefix("192.0.2.0/24"), "documentation address (RFC 5737)"},
	{netip.MustParsePrefix("198.51.100.0/24"), "documentation address (RFC 5737)"},
	{netip.MustParsePrefix("203.0.113.0/24"), "documentation address (RFC 5737)"},
	{netip.MustParsePrefix("198.18.0.0/15"), "benchmarking address (RFC 2544)"},
	{netip.MustParsePrefix("240.0.0.0/4"), "reserved address (RFC 1112)"}, // includes 255.255.255.255
	{netip.MustParsePrefix("::/96"), "IPv4-compatible IPv6 address (deprecated, RFC 4291 section 2.5.5.1)"},
	{netip.MustParsePrefix("100::/64"), "discard-only address (RFC 6666)"},
	{netip.MustParsePrefix("64:ff9b:1::/48"), "local-use NAT64 address (RFC 8215)"},
	{netip.MustParsePrefix("2001:db8::/32"), "documentation address (RFC 3849)"},
	{netip.MustParsePrefix("fec0::/10"), "site-local address (deprecated, RFC 3879)"},
}

var (
	nat64 = netip.MustParsePrefix("64:ff9b::/96") // RFC 6052: IPv4 in the last 32 bits
	sixTo = netip.MustParsePrefix("2002::/16")    // RFC 3056: IPv4 in bits 16-47
	meta  = netip.MustParseAddr("169.254.169.254")
)

// Reason says what kind of special-purpose address addr is, like
// "loopback address" or "documentation address (RFC 5737)", or returns ""
// for a public address. An IPv4 address inside IPv4-mapped, NAT64 or 6to4
// IPv6 is judged as that IPv4 address. The zone is ignored.
func Reason(a netip.Addr) string {
	a = a.Unmap().WithZone("")
	switch {
	case !a.IsValid():
		return "invalid address"
	case a == meta:
		return "link-local address (cloud metadata service)"
	case a.IsLoopback():
		return "loopback address"
	case a.IsUnspecified():
		return "unspecified address"
	case a.IsPrivate():
		return "private address"
	case a.IsLinkLocalUnicast():
		return "link-local address"
	case a.IsMulticast(), a.IsLinkLocalMulticast(), a.IsInterfaceLocalMulticast():
		return "multicast address"
	}
	for _, r := range special {
		if r.p.Contains(a) {
			return r.reason
		}
	}
	if a.Is6() {
		b := a.As16()
		var v4 [4]byte
		switch {
		case nat64.Contains(a):
			copy(v4[:], b[12:16])
		case sixTo.Contains(a):
			copy(v4[:], b[2:6])
		default:
			return ""
		}
		if r := Reason(netip.AddrFrom4(v4)); r != "" {
			return r + " (embedded in " + a.String() + ")"
		}
	}
	return ""
}
