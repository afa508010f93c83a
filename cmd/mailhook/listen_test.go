package main

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mailhook/mailhook/deliver/webhook"
)

// TestListenHandler: a delivery signed with the secret is printed and
// answered 204; one signed with another secret is refused with 401 and
// the reason is printed.
func TestListenHandler(t *testing.T) {
	v, _, _, err := listenVerifier([]string{testSecret}, "/nonexistent.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var out syncBuffer
	srv := httptest.NewServer(listenHandler(v, &out, time.Now))
	defer srv.Close()
	post := func(secret string) int {
		key, _ := webhook.ParseSecret(secret)
		body := []byte(`{"type":"message.received","id":"x"}`)
		now := time.Now()
		req, _ := http.NewRequest("POST", srv.URL+"/hooks/mail", bytes.NewReader(body))
		req.Header.Set("webhook-id", "job_1")
		req.Header.Set("webhook-timestamp", strconv.FormatInt(now.Unix(), 10))
		req.Header.Set("webhook-signature", webhook.Sign(key, "job_1", now, body))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := post(testSecret); code != http.StatusNoContent || !strings.Contains(out.String(), "signature verified (v1)\n{\n  \"type\": \"message.received\"") {
		t.Errorf("good delivery: %d\n%s", code, out.String())
	}
	if code := post(webhook.NewSecret()); code != http.StatusUnauthorized || !strings.Contains(out.String(), "REJECTED (401): none of the 1 signature(s)") {
		t.Errorf("bad delivery: %d\n%s", code, out.String())
	}
	if _, _, code := runCLI(t, "", "webhook", "listen", "--config", "/nonexistent.yaml"); code != 1 {
		t.Errorf("listen without a secret or config: exit %d, want 1", code)
	}
}
