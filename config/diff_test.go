package config

import (
	"slices"
	"testing"
)

func TestFingerprintChanged(t *testing.T) {
	a := Default()
	a.Webhooks = map[string]Webhook{"t": {URL: "http://a.test/", Secret: "whsec_x"}}
	b := a
	b.Webhooks = map[string]Webhook{"t": {URL: "http://b.test/", Secret: "whsec_x"}, "new": {URL: "http://c.test/"}}
	b.Admin.Token = "other"
	got := Changed(Fingerprint(&a), Fingerprint(&b))
	if !slices.Contains(got, "webhooks.t.url") || !slices.Contains(got, "admin.token") || !slices.Contains(got, "webhooks.new.url") || slices.Contains(got, "webhooks.t.secret") {
		t.Errorf("Changed = %v", got)
	}
	if got := Changed(Fingerprint(&a), Fingerprint(&a)); len(got) != 0 {
		t.Errorf("Changed(a, a) = %v", got)
	}
	for k, v := range Fingerprint(&b) {
		if v == "other" || len(v) != 64 {
			t.Errorf("fingerprint of %s = %q: want a hash, never the value", k, v)
		}
	}
}
