package auth

import (
	"context"
	"errors"

	"github.com/emersion/go-msgauth/dmarc"
	"golang.org/x/net/publicsuffix"

	"github.com/mailhook/mailhook/header"
	"github.com/mailhook/mailhook/inbound"
)

// DMARC policy values (RFC 7489 §6.3).
const (
	policyNone       = string(dmarc.PolicyNone)
	policyQuarantine = dmarc.PolicyQuarantine
	policyReject     = dmarc.PolicyReject
)

// checkDMARC evaluates DMARC for the author domain(s) of the message, as
// header.ReadAuthor reads them: the same reading the webhook's
// message.from comes from, so the address a payload shows is always one
// judged here.
//
// RFC 7489 §6.6.1 choices:
//   - No From field, or From fields in which no reading finds a domain:
//     DMARC does not apply; result "none" ("if they are not rejected,
//     they are ignored by DMARC"). Such a message shows no author address;
//     ingest refuses it under verify.multiple_from: reject.
//   - A From that does not give exactly one author domain (several
//     fields, several addresses, or a From only a lenient reading
//     understands): every domain any reading recovers is evaluated and the
//     worst outcome wins, a failure under the strictest policy first
//     (§6.6.1: "apply the most strict policy selected among the checks
//     that fail"). Ingest refuses such a message outright under
//     verify.multiple_from: reject, the default.
//
// A From is never "permerror" here: a domain that the payload could show
// is always evaluated.
func (v *Verifier) checkDMARC(ctx context.Context, author *header.Author, spf inbound.SPFResult, dkimRes []inbound.DKIMResult) inbound.DMARCResult {
	domains := author.Domains
	if len(domains) == 0 {
		return inbound.DMARCResult{Result: inbound.None, Policy: policyNone}
	}
	var best inbound.DMARCResult
	for i, d := range domains {
		r := v.evalDMARC(ctx, d, spf, dkimRes)
		if i == 0 || dmarcRank(r) < dmarcRank(best) {
			best = r
		}
	}
	return best
}

// dmarcRank orders outcomes from worst to best for combining several
// author domains.
func dmarcRank(r inbound.DMARCResult) int {
	switch r.Result {
	case inbound.Fail:
		switch r.Policy {
		case policyReject:
			return 0
		case policyQuarantine:
			return 1
		}
		return 2
	case inbound.TempError:
		return 3
	case inbound.PermError:
		return 4
	case inbound.None:
		return 5
	}
	return 6
}

// evalDMARC evaluates DMARC for one author domain (RFC 7489 §6.6).
func (v *Verifier) evalDMARC(ctx context.Context, from string, spf inbound.SPFResult, dkimRes []inbound.DKIMResult) inbound.DMARCResult {
	out := inbound.DMARCResult{Domain: from, Policy: policyNone}
	rec, atOrg, err := v.lookupDMARC(ctx, from)
	switch {
	case errors.Is(err, dmarc.ErrNoPolicy):
		out.Result = inbound.None
		return out
	case dmarc.IsTempFail(err):
		out.Result = inbound.TempError
		return out
	case err != nil:
		v.log.Debug("dmarc record unusable", "domain", from, "err", err)
		out.Result = inbound.PermError
		return out
	}

	// RFC 7489 §6.3 "sp": the policy for subdomains, when the record was
	// found at the organizational domain.
	policy := string(rec.Policy)
	if atOrg && rec.SubdomainPolicy != "" {
		policy = string(rec.SubdomainPolicy)
	}
	out.Policy = policy

	// RFC 7489 §3.1: identifier alignment. A pass needs one
	// authenticated and aligned identifier (§4.2).
	aligned := spf.Result == inbound.Pass && alignedDomain(spf.Domain, from, rec.SPFAlignment)
	for _, d := range dkimRes {
		if aligned {
			break
		}
		aligned = d.Result == inbound.Pass && alignedDomain(d.Domain, from, rec.DKIMAlignment)
	}
	if aligned {
		out.Result = inbound.Pass
		return out
	}
	// No aligned pass. If an aligned identifier could not be checked for
	// a transient DNS reason, the verdict is not final: temperror, so that
	// ingest can defer (451 4.4.3) rather than reject mail whose DNS
	// merely timed out.
	transient := spf.Result == inbound.TempError && alignedDomain(spf.Domain, from, rec.SPFAlignment)
	for _, d := range dkimRes {
		transient = transient || (d.Result == inbound.TempError && alignedDomain(d.Domain, from, rec.DKIMAlignment))
	}
	if transient {
		out.Result = inbound.TempError
		return out
	}
	out.Result = inbound.Fail

	// RFC 7489 §6.6.4: with pct below 100, messages outside the sample get
	// the next less strict policy.
	if rec.Percent != nil && *rec.Percent < 100 && policy != policyNone && !v.sample(*rec.Percent) {
		if policy == policyReject {
			out.Policy = policyQuarantine
		} else {
			out.Policy = policyNone
		}
	}
	return out
}

// lookupDMARC finds the DMARC record for the author domain, falling back to
// the organizational domain (RFC 7489 §6.6.3). atOrg reports that the
// record came from the fallback.
func (v *Verifier) lookupDMARC(ctx context.Context, domain string) (rec *dmarc.Record, atOrg bool, err error) {
	opts := &dmarc.LookupOptions{LookupTXT: func(name string) ([]string, error) {
		return v.res.LookupTXT(ctx, name)
	}}
	rec, err = dmarc.LookupWithOptions(domain, opts)
	if !errors.Is(err, dmarc.ErrNoPolicy) {
		return rec, false, err
	}
	org := orgDomain(domain)
	if org == domain {
		return nil, false, err
	}
	rec, err = dmarc.LookupWithOptions(org, opts)
	return rec, true, err
}

// orgDomain is the organizational domain of d (RFC 7489 §3.2): the public
// suffix plus one label. A domain that is itself a public suffix, or that
// the list cannot handle, is its own organizational domain.
func orgDomain(d string) string {
	org, err := publicsuffix.EffectiveTLDPlusOne(d)
	if err != nil {
		return d
	}
	return org
}

// alignedDomain reports whether an authenticated domain is aligned with the
// author domain (RFC 7489 §3.1.1, §3.1.2): equal in strict mode, same
// organizational domain in relaxed mode.
func alignedDomain(authenticated, from string, mode dmarc.AlignmentMode) bool {
	a := normDomain(authenticated)
	if a == "" {
		return false
	}
	if a == from {
		return true
	}
	if mode == dmarc.AlignmentStrict {
		return false
	}
	return orgDomain(a) == orgDomain(from)
}

// normDomain is header.NormDomain: names compare as DNS sees them.
func normDomain(d string) string { return header.NormDomain(d) }
