package webhook

import (
	"fmt"
	"net/netip"
	"syscall"

	"github.com/mailhook/mailhook/internal/specialip"
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

// CheckAddr returns a *RefusedError when a webhook must not reach addr
// without allow_private: loopback, private (RFC 1918, RFC 4193 fc00::/7),
// link-local (169.254.0.0/16 with the cloud metadata service, fe80::/10),
// unspecified, multicast, carrier-grade NAT, and the other special-purpose
// ranges; an IPv4 address inside IPv4-mapped, NAT64 or 6to4 IPv6 is judged
// as that IPv4 address. It returns nil for a public address.
func CheckAddr(addr netip.Addr) error {
	if r := specialip.Reason(addr); r != "" {
		return &RefusedError{Addr: addr, Reason: r}
	}
	return nil
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
