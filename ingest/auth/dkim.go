package auth

import (
	"context"
	"errors"
	"io"
	"strings"

	"github.com/emersion/go-msgauth/dkim"

	"github.com/mailhook/mailhook/header"
	"github.com/mailhook/mailhook/inbound"
)

// verifyDKIM verifies the first v.maxSigs DKIM-Signature fields of the
// message (RFC 6376 §6, Ed25519 per RFC 8463) with go-msgauth/dkim and our
// resolver. fields is the parsed header of msg, used to report d= and s=
// for each signature in order.
func (v *Verifier) verifyDKIM(ctx context.Context, fields []header.Field, msg io.Reader) []inbound.DKIMResult {
	var sigs []map[string]string
	for _, f := range fields {
		if f.Is("DKIM-Signature") {
			sigs = append(sigs, tagList(f.Value))
		}
	}
	if len(sigs) == 0 {
		return []inbound.DKIMResult{}
	}
	opts := &dkim.VerifyOptions{
		LookupTXT: func(domain string) ([]string, error) {
			return v.res.LookupTXT(ctx, domain)
		},
		MaxVerifications: v.maxSigs,
	}
	verifs, err := dkim.VerifyWithOptions(msg, opts)
	if err != nil && !errors.Is(err, dkim.ErrTooManySignatures) {
		// Not a verdict on a signature: the header could not be parsed,
		// or reading failed (the caller checks for that).
		out := make([]inbound.DKIMResult, 0, min(len(sigs), v.maxSigs))
		for _, s := range sigs[:min(len(sigs), v.maxSigs)] {
			out = append(out, inbound.DKIMResult{Result: inbound.PermError, Domain: s["d"], Selector: s["s"], Error: err.Error()})
		}
		return out
	}
	if len(sigs) > len(verifs) {
		v.log.Debug("dkim signatures over the limit ignored", "count", len(sigs), "verified", len(verifs))
	}
	out := make([]inbound.DKIMResult, 0, len(verifs))
	for i, vr := range verifs {
		r := inbound.DKIMResult{Domain: strings.ToLower(vr.Domain)}
		if i < len(sigs) {
			r.Selector = sigs[i]["s"]
			if r.Domain == "" {
				r.Domain = strings.ToLower(sigs[i]["d"])
			}
		}
		// RFC 8601 §2.7.1 result values.
		switch {
		case vr.Err == nil:
			r.Result = inbound.Pass
		case dkim.IsTempFail(vr.Err):
			r.Result = inbound.TempError
		case dkim.IsPermFail(vr.Err):
			r.Result = inbound.PermError
		default:
			r.Result = inbound.Fail
		}
		if vr.Err != nil {
			r.Error = vr.Err.Error()
		}
		out = append(out, r)
	}
	return out
}

// tagList splits a DKIM tag=value list (RFC 6376 §3.2) into a map, with
// folding whitespace removed from values. It is only used to report s= and
// d= next to the library's verdicts; the library does the real parsing.
func tagList(s string) map[string]string {
	m := map[string]string{}
	for _, p := range strings.Split(s, ";") {
		k, val, ok := strings.Cut(p, "=")
		if !ok {
			continue
		}
		k = strings.TrimSpace(k)
		if _, dup := m[k]; dup {
			continue
		}
		m[k] = strings.Join(strings.Fields(val), "")
	}
	return m
}
