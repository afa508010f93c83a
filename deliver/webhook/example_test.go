package webhook_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mailhook/mailhook/deliver"
	"github.com/mailhook/mailhook/deliver/webhook"
	"github.com/mailhook/mailhook/inbound"
	"github.com/mailhook/mailhook/parse"
)

// verifyWebhook is what a receiver writes (README): stdlib only, constant
// time comparison, five minutes of timestamp tolerance. body must be the raw
// request bytes, not re-encoded JSON.
func verifyWebhook(secret string, h http.Header, body []byte, now time.Time) error {
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, "whsec_"))
	if err != nil {
		return err
	}
	id, ts := h.Get("webhook-id"), h.Get("webhook-timestamp")
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil || id == "" {
		return errors.New("missing webhook-id or webhook-timestamp")
	}
	if d := now.Sub(time.Unix(sec, 0)); d > 5*time.Minute || d < -5*time.Minute {
		return errors.New("webhook-timestamp outside tolerance")
	}
	mac := hmac.New(sha256.New, key)
	fmt.Fprintf(mac, "%s.%s.", id, ts)
	mac.Write(body)
	want := mac.Sum(nil)
	for _, sig := range strings.Fields(h.Get("webhook-signature")) {
		version, b64, _ := strings.Cut(sig, ",")
		got, err := base64.StdEncoding.DecodeString(b64)
		if version == "v1" && err == nil && hmac.Equal(got, want) {
			return nil
		}
	}
	return errors.New("no valid signature")
}

// A receiver verifying what a Sender posts.
func ExampleSender() {
	secret := webhook.NewSecret()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(io.LimitReader(r.Body, 50<<20))
		if err := verifyWebhook(secret, r.Header, body, time.Now()); err != nil {
			http.Error(w, err.Error(), http.StatusUnauthorized)
			return
		}
		var ev struct {
			Type    string `json:"type"`
			Message struct {
				Subject string `json:"subject"`
			} `json:"message"`
		}
		json.Unmarshal(body, &ev)
		fmt.Printf("verified %s: %s\n", ev.Type, ev.Message.Subject)
	}))
	defer srv.Close()

	s := webhook.NewSender(webhook.Options{Version: "1.0.0", Endpoints: map[string]webhook.Endpoint{
		// allow_private only because this receiver listens on loopback.
		"tickets": {URL: srv.URL, Secrets: []string{secret}, AllowPrivate: true},
	}})
	defer s.Close()
	job := &deliver.Job{ID: "job_1", Kind: deliver.KindWebhook, Target: "tickets", Route: "support"}
	mail := &inbound.Mail{ID: "m_1", Message: &parse.Message{Subject: "Printer on fire"}}
	o := s.Handle(context.Background(), job, mail, nil)
	fmt.Println("done:", o.Done, o.Attempt.Status)
	// Output:
	// verified message.received: Printer on fire
	// done: true 200
}

func TestGoReceiverSnippet(t *testing.T) {
	secret := "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	h := http.Header{}
	h.Set("webhook-id", "msg_p5jXN8AQM9LWM0D4loKWxJek")
	h.Set("webhook-timestamp", "1614265330")
	h.Set("webhook-signature", "v1,bm9ub25l v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=")
	body := []byte(`{"test": 2432232314}`)
	at := time.Unix(1614265330, 0)
	if err := verifyWebhook(secret, h, body, at.Add(4*time.Minute)); err != nil {
		t.Errorf("spec vector: %v", err)
	}
	if err := verifyWebhook(secret, h, body, at.Add(6*time.Minute)); err == nil {
		t.Error("accepted a timestamp 6 minutes old")
	}
	if err := verifyWebhook(secret, h, append(body, ' '), at); err == nil {
		t.Error("accepted a changed body")
	}
}
