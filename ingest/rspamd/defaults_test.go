package rspamd

import (
	"testing"

	"github.com/mailhook/mailhook/config"
)

// TestConfigDefaultTimeout: verify.rspamd.timeout's default, which config
// writes itself (it imports no stage), is this client's DefaultTimeout.
func TestConfigDefaultTimeout(t *testing.T) {
	cfg, err := config.LoadBytes([]byte(`
hostname: mx.example.test
data_dir: /tmp/mailhook-rspamd-defaults
domains: [example.test]
verify: {rspamd: {url: "http://127.0.0.1:11333"}}
routes: [{name: all, actions: [{drop: true}]}]
`))
	if err != nil {
		t.Fatal(err)
	}
	if got := cfg.Verify.Rspamd.Timeout; got != DefaultTimeout {
		t.Errorf("verify.rspamd.timeout defaults to %v; the client's DefaultTimeout is %v", got, DefaultTimeout)
	}
}
