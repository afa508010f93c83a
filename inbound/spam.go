package inbound

// Spam is rspamd's verdict on one message, given by ingest/rspamd. Its JSON
// form is the "spam" object of the webhook contract in DESIGN.md ("Round 2
// contracts").
type Spam struct {
	// Result is SpamResultOK when rspamd answered, SpamResultError when
	// it could not be asked (down, slow, a bad reply) and the message was
	// accepted anyway (verify.rspamd.on_error: accept); the other fields
	// are then empty.
	Result        string       `json:"result"`
	Score         float64      `json:"score"`
	RequiredScore float64      `json:"required_score"`
	Action        string       `json:"action"`
	Symbols       []SpamSymbol `json:"symbols"`
	// Error says what went wrong when Result is SpamResultError.
	Error string `json:"error,omitempty"`
}

// SpamSymbol is one rspamd rule that contributed to the score.
type SpamSymbol struct {
	Name  string  `json:"name"`
	Score float64 `json:"score"`
}

// The values of Spam.Result.
const (
	SpamResultOK    = "ok"
	SpamResultError = "error"
)

// OK reports whether s is a verdict rspamd gave (not nil, not an error).
func (s *Spam) OK() bool { return s != nil && s.Result == SpamResultOK }

// The actions rspamd recommends (Spam.Action, the "action" of its reply).
const (
	SpamActionNone           = "no action"
	SpamActionGreylist       = "greylist"
	SpamActionAddHeader      = "add header"
	SpamActionRewriteSubject = "rewrite subject"
	SpamActionSoftReject     = "soft reject"
	SpamActionReject         = "reject"
	// SpamActionQuarantine and SpamActionDiscard are rspamd's optional
	// actions (force_actions rules may answer them).
	SpamActionQuarantine = "quarantine"
	SpamActionDiscard    = "discard"
)

// SpamActions lists the actions rspamd answers, mildest first. A reply
// with another one (a custom action) is still a verdict, recorded as it is.
var SpamActions = []string{SpamActionNone, SpamActionGreylist, SpamActionAddHeader, SpamActionRewriteSubject,
	SpamActionQuarantine, SpamActionSoftReject, SpamActionReject, SpamActionDiscard}
