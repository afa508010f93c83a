// Package auth verifies who sent a message: SPF (RFC 7208), DKIM (RFC 6376,
// RFC 8463), DMARC (RFC 7489), and writes Authentication-Results (RFC 8601).
package auth

// Results are the verification results of one message. Their JSON form is
// the "auth" object of the webhook contract in DESIGN.md.
type Results struct {
	SPF   SPFResult    `json:"spf"`
	DKIM  []DKIMResult `json:"dkim"`
	DMARC DMARCResult  `json:"dmarc"`
	// AuthenticationResults is the header field value mailhook added.
	AuthenticationResults string `json:"authentication_results"`
	// Quarantine is true when DMARC failed under p=quarantine (or p=reject
	// when enforcement is off); rules can match on it.
	Quarantine bool `json:"quarantine,omitempty"`
}

// Verdict is one check's result, as Authentication-Results writes it
// (RFC 8601 §2.7) and the webhook's "auth" object carries it.
type Verdict string

// Verdicts. Not every check gives every one: SPF has softfail (RFC 7208
// §2.6), DMARC has neither softfail nor neutral (RFC 7489 §11.2); policy
// (RFC 8601 §2.7.1) is for route rules only.
const (
	Pass      Verdict = "pass"
	Fail      Verdict = "fail"
	SoftFail  Verdict = "softfail"
	Neutral   Verdict = "neutral"
	None      Verdict = "none"
	TempError Verdict = "temperror"
	PermError Verdict = "permerror"
	Policy    Verdict = "policy"
)

// SPFResult is the SPF verdict for MAIL FROM (or HELO when MAIL FROM is null).
type SPFResult struct {
	Result Verdict `json:"result"` // pass fail softfail neutral none temperror permerror
	Domain string  `json:"domain"`
	// Identity is the identity checked: "mailfrom", or "helo" when MAIL
	// FROM was null (RFC 7208 §2.3, §2.4).
	Identity string `json:"identity,omitempty"`
}

// DKIMResult is the verdict for one DKIM-Signature.
type DKIMResult struct {
	Result   Verdict `json:"result"` // pass fail neutral temperror permerror
	Domain   string  `json:"domain"`
	Selector string  `json:"selector"`
	Error    string  `json:"error,omitempty"`
}

// DMARCResult is the DMARC verdict for the From domain.
type DMARCResult struct {
	Result Verdict `json:"result"` // pass fail none temperror permerror
	Policy string  `json:"policy"` // none quarantine reject (the one that applies)
	Domain string  `json:"domain"`
}

// Summary returns the single results matchable by route rules:
// spf, dkim (pass if any signature passed, else the first result or "none"),
// dmarc, and dmarc_policy.
func (r *Results) Summary() map[string]string {
	if r == nil {
		return map[string]string{}
	}
	dkim := None
	for i, d := range r.DKIM {
		if i == 0 {
			dkim = d.Result
		}
		if d.Result == Pass {
			dkim = Pass
			break
		}
	}
	return map[string]string{
		"spf":          string(r.SPF.Result),
		"dkim":         string(dkim),
		"dmarc":        string(r.DMARC.Result),
		"dmarc_policy": r.DMARC.Policy,
	}
}
