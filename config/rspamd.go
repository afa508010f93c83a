package config

import "time"

// Rspamd configures the spam check by rspamd (verify.rspamd); it is off
// while URL is empty.
type Rspamd struct {
	// URL is rspamd's normal worker (or proxy), like
	// "http://127.0.0.1:11333"; /checkv2 is added when it has no path.
	URL string `mapstructure:"url"`
	// Timeout bounds one check; past it the check failed (OnError).
	Timeout time.Duration `mapstructure:"timeout"`
	// Password is sent in rspamd's Password header, when it asks for one.
	Password string `mapstructure:"password"`
	// OnError is what happens when rspamd gives no verdict (down, slow):
	// "accept" (accepted with spam.result "error") or "defer" (451 4.4.3).
	OnError string `mapstructure:"on_error"`
	// Enforce makes rspamd's action the SMTP reply: reject is 550 5.7.1,
	// soft reject and greylist 451 4.7.1. Off, the verdict is only
	// recorded for the rules.
	Enforce bool `mapstructure:"enforce"`
}

// Enabled reports whether rspamd is configured.
func (r Rspamd) Enabled() bool { return r.URL != "" }

// defaultRspamd is verify.rspamd's defaults; the timeout is the rspamd
// client's own default (rspamd.DefaultTimeout), as docs/config.md lists it.
func defaultRspamd() Rspamd {
	return Rspamd{Timeout: 5 * time.Second, OnError: "accept", Enforce: true}
}

// validate checks verify.rspamd when it is enabled. The url is the rspamd
// client's to check (rspamd.CheckURL), in a Check given to Load.
func (r Rspamd) validate(add func(string, string, ...any)) {
	if !r.Enabled() {
		return
	}
	positive(add, "verify.rspamd.timeout", int64(r.Timeout))
	switch r.OnError {
	case "accept", "defer":
	default:
		add("verify.rspamd.on_error", "%q is not one of accept, defer", r.OnError)
	}
}
