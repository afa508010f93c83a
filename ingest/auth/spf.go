package auth

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"strings"

	"blitiri.com.ar/go/spf"
	"github.com/miekg/dns"

	"github.com/mailhook/mailhook/inbound"
)

// CheckSPF evaluates SPF (RFC 7208) for the client ip: the MAIL FROM
// identity, or the HELO identity when MAIL FROM is null (RFC 7208 §2.4,
// with "postmaster" as local-part). mailFrom may carry angle brackets.
// It only does DNS, so the SMTP session can call it at MAIL FROM time and
// let it run while DATA arrives. The lookups are bounded by
// Options.LookupTimeout each, Options.MessageTimeout in all, and the limits
// of RFC 7208 §4.6.4 (10 DNS-querying terms, 2 void lookups), which
// blitiri.com.ar/go/spf applies.
func (v *Verifier) CheckSPF(ctx context.Context, ip net.IP, helo, mailFrom string) inbound.SPFResult {
	ctx, cancel := context.WithTimeout(ctx, v.msgTimeout)
	defer cancel()

	mailFrom = strings.TrimSuffix(strings.TrimPrefix(strings.TrimSpace(mailFrom), "<"), ">")
	sender := mailFrom
	domain := ""
	if i := strings.LastIndexByte(mailFrom, '@'); i >= 0 {
		domain = mailFrom[i+1:]
	}
	if mailFrom == "" {
		// RFC 7208 §2.4: null reverse-path → check HELO as
		// postmaster@helo.
		domain = helo
		sender = "postmaster@" + helo
	}
	res := inbound.SPFResult{Domain: strings.ToLower(domain), Identity: "mailfrom"}
	if mailFrom == "" {
		res.Identity = "helo"
	}

	// RFC 7208 §4.3: a malformed domain (not a multi-label FQDN, empty or
	// over-long labels, an address literal) gives "none" without lookups.
	if !validSPFDomain(domain) {
		res.Result = inbound.None
		return res
	}
	r, err := spf.CheckHostWithSender(ip, helo, sender,
		spf.WithContext(ctx),
		spf.WithResolver(v.res),
		spf.WithTraceFunc(func(f string, a ...any) {
			if v.traceSPF {
				v.log.Debug("spf trace", "detail", fmt.Sprintf(f, a...))
			}
		}),
	)
	res.Result = inbound.Verdict(r)
	if v.log.Enabled(ctx, slog.LevelDebug) {
		v.log.Debug("spf checked", "remote_ip", ip.String(), "mail_from", mailFrom, "helo", helo,
			"result", res.Result, "reason", errString(err))
	}
	return res
}

// validSPFDomain applies the checks of RFC 7208 §4.3: the domain must be a
// fully qualified name of at least two labels, none empty or longer than
// 63 octets, and not an address literal.
func validSPFDomain(d string) bool {
	d = strings.TrimSuffix(d, ".")
	if d == "" || strings.HasPrefix(d, "[") || net.ParseIP(d) != nil {
		return false
	}
	if !strings.Contains(d, ".") {
		return false
	}
	_, ok := dns.IsDomainName(d)
	return ok
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}
