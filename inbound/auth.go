package inbound

import "strings"

// Auth are the SPF, DKIM and DMARC verdicts on one message, given by the
// verifier (ingest/auth). Their JSON form is the "auth" object of the
// webhook contract in DESIGN.md.
type Auth struct {
	SPF   SPFResult    `json:"spf"`
	DKIM  []DKIMResult `json:"dkim"`
	DMARC DMARCResult  `json:"dmarc"`
	// AuthenticationResults is the header field value mailhook added.
	AuthenticationResults string `json:"authentication_results"`
	// Quarantine is true when the message is passed on flagged, for rules
	// to route: DMARC failed under p=quarantine, or under p=reject with
	// enforcement off, or rspamd's action asks for it (see Quarantined).
	// Ingest sets it, once, after both verdicts.
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
func (a *Auth) Summary() map[string]string {
	if a == nil {
		return map[string]string{}
	}
	dkim := None
	for i, d := range a.DKIM {
		if i == 0 {
			dkim = d.Result
		}
		if d.Result == Pass {
			dkim = Pass
			break
		}
	}
	return map[string]string{
		"spf":          string(a.SPF.Result),
		"dkim":         string(dkim),
		"dmarc":        string(a.DMARC.Result),
		"dmarc_policy": a.DMARC.Policy,
	}
}

// Reject reports whether DMARC failed under p=reject (after pct sampling),
// in which case ingest answers 550 5.7.1 when verify.enforce_dmarc is on,
// and sets Quarantine instead when it is off.
func (a *Auth) Reject() bool {
	return a != nil && a.DMARC.Result == Fail && a.DMARC.Policy == "reject"
}

// HeaderField returns the whole Authentication-Results field to prepend to
// the message: the name, AuthenticationResults folded after each ";"
// (RFC 5322 §2.2.3), and CRLF.
func (a *Auth) HeaderField() string {
	return "Authentication-Results: " + strings.ReplaceAll(a.AuthenticationResults, "; ", ";\r\n\t") + "\r\n"
}
