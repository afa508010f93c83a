package webhook

import (
	"fmt"
	"net/netip"
	"syscall"
)

// RefusedError is returned when the sender would dial an address it must
// not reach on behalf of a webhook URL (server-side request forgery, see the
// Standard Webhooks specification, "Server side request forgery"): the
// check runs in the dialer after DNS, on the very address being dialed, so
// a name that resolves (or rebinds) to an internal address is refused too.
type RefusedError struct {
	Addr   netip.Addr
	Reason string // "loopback address", "private address", ...
}

// Error says which address was refused, why, and how to allow it.
func (e *RefusedError) Error() string {
	return fmt.Sprintf("webhook: refusing to dial %s: %s; set allow_private to allow it", e.Addr, e.Reason)
}

// Special-purpose ranges refused besides what netip classifies; see the
// IANA IPv4 and IPv6 Special-Purpose Address Registries (RFC 6890).
var refusedPrefixes = []struct {
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

// CheckAddr returns a *RefusedError when a webhook must not reach addr
// without allow_private: loopback, private (RFC 1918, RFC 4193 fc00::/7),
// link-local (169.254.0.0/16 with the cloud metadata service, fe80::/10),
// unspecified, multicast, carrier-grade NAT, and the other special-purpose
// ranges; an IPv4 address inside IPv4-mapped, NAT64 or 6to4 IPv6 is judged
// as that IPv4 address. It returns nil for a public address.
func CheckAddr(addr netip.Addr) error {
	if r := refuseReason(addr); r != "" {
		return &RefusedError{Addr: addr, Reason: r}
	}
	return nil
}

func refuseReason(a netip.Addr) string {
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
	for _, r := range refusedPrefixes {
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
		if r := refuseReason(netip.AddrFrom4(v4)); r != "" {
			return r + " (embedded in " + a.String() + ")"
		}
	}
	return ""
}

// dialControl is the net.Dialer Control of the guarded transport: it runs
// after name resolution, for each address actually dialed (happy eyeballs
// included), before connect(2).
func dialControl(network, address string, _ syscall.RawConn) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return fmt.Errorf("webhook: refusing to dial %q: not an IP address", address)
	}
	return CheckAddr(ap.Addr())
}
