package main

import (
	"fmt"

	"github.com/mailhook/mailhook/dns/dnstest"
)

// startDNS serves the TXT records in txt (owner name → values) on
// 127.0.0.1 over UDP and TCP, with the loopback DNS server mailhook's own
// tests use: enough for the verifier to reach SPF, DKIM and DMARC pass for
// the bench's sender domain. Names it does not hold get NXDOMAIN; names it
// holds, asked for another type, NOERROR with no answer (RFC 2308 §2.1,
// §2.2). Addr is the value for verify.dns_resolver; the caller closes it.
func startDNS(txt map[string][]string) (*dnstest.Server, error) {
	s, err := dnstest.New("")
	if err != nil {
		return nil, fmt.Errorf("dns: %w", err)
	}
	for name, vals := range txt {
		for _, v := range vals {
			s.AddTXT(name, 300, v)
		}
	}
	return s, nil
}
