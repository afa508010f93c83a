package admin

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/mailhook/mailhook/replyaddr"
)

func TestMintReplyAPI(t *testing.T) {
	signer, err := replyaddr.New(replyaddr.Options{Secrets: []string{"0123456789abcdef0123"}, Domain: "example.test"})
	if err != nil {
		t.Fatal(err)
	}
	on := httptest.NewServer(NewServer(ServerOptions{Token: testToken, MintReply: signer.Mint}))
	t.Cleanup(on.Close)
	off := httptest.NewServer(NewServer(ServerOptions{Token: testToken}))
	t.Cleanup(off.Close)
	post := func(base, token, body string) (int, map[string]any) {
		req, _ := http.NewRequest("POST", base+"/api/reply-addresses", strings.NewReader(body))
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var v map[string]any
		json.NewDecoder(resp.Body).Decode(&v)
		return resp.StatusCode, v
	}
	code, v := post(on.URL, testToken, `{"thread": "t-42", "ttl": "30d"}`)
	addr, _ := v["address"].(string)
	if code != 201 || v["thread"] != "t-42" || v["expires_at"] == nil {
		t.Fatalf("mint = %d %v", code, v)
	}
	if r, ok := signer.Verify(addr); !ok || !r.Valid || r.Thread != "t-42" {
		t.Errorf("minted %q verifies as %+v, %v", addr, r, ok)
	}
	exp, _ := time.Parse(time.RFC3339, v["expires_at"].(string))
	if d := time.Until(exp); d < 29*24*time.Hour || d > 31*24*time.Hour {
		t.Errorf("expires_at %s, want in 30 days", exp)
	}
	for _, c := range []struct {
		base, token, body string
		code              int
	}{
		{on.URL, "", `{"thread": "t"}`, 401},
		{on.URL, testToken, `{"thread": "a b"}`, 400},
		{on.URL, testToken, `{"thread": "t", "ttl": "soon"}`, 400},
		{on.URL, testToken, `{"thread": "t", "extra": 1}`, 400},
		{on.URL, testToken, `not json`, 400},
		{off.URL, testToken, `{"thread": "t"}`, 404},
	} {
		if code, v := post(c.base, c.token, c.body); code != c.code {
			t.Errorf("POST %s = %d %v, want %d", c.body, code, v, c.code)
		}
	}
}
