package admin

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/mailhook/mailhook/config"
)

func TestConfigDiff(t *testing.T) {
	running := config.Default()
	running.Domains = []string{"a.test"}
	s := NewServer(ServerOptions{Token: testToken, RunningConfig: func() map[string]string { return config.Fingerprint(&running) }})
	file := running
	file.Domains = []string{"b.test"}
	file.SMTP.MaxRecipients = 7
	body := `{"fingerprint": {`
	var parts []string
	for k, v := range config.Fingerprint(&file) {
		parts = append(parts, `"`+k+`": "`+v+`"`)
	}
	body += strings.Join(parts, ",") + "}}"
	req := httptest.NewRequest("POST", "/api/config/diff", strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+testToken)
	rec := httptest.NewRecorder()
	s.ServeHTTP(rec, req)
	if rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), `"domains"`) || !strings.Contains(rec.Body.String(), `"smtp.max_recipients"`) ||
		strings.Count(rec.Body.String(), `"`) != 2+2+2 {
		t.Errorf("diff = %d %s", rec.Code, rec.Body.String())
	}
	// No value is sent either way: the running hostname is not in the answer.
	if strings.Contains(rec.Body.String(), running.Hostname) {
		t.Errorf("answer shows a value: %s", rec.Body.String())
	}
}
