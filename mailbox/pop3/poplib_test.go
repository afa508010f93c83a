package pop3

import (
	"crypto/tls"
	"encoding/json"
	"net"
	"os/exec"
	"slices"
	"strings"
	"testing"

	"github.com/mailhook/mailhook/internal/testenv"
)

// poplibScript drives the server with Python's poplib, a real client that
// mail tools are built on: STLS, USER/PASS, STAT, LIST, UIDL, RETR, TOP,
// DELE, RSET, QUIT, then a second session and a concurrent third one.
const poplibScript = `
import json, poplib, ssl, sys
host, port = sys.argv[1], int(sys.argv[2])
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
out = {}
p = poplib.POP3(host, port, timeout=10)
out["capa"] = sorted(p.capa().keys())
p.stls(ctx)
out["capa_tls"] = sorted(p.capa().keys())
p.user("alice")
p.pass_("correct horse")
out["stat"] = list(p.stat())
out["list"] = [l.decode() for l in p.list()[1]]
out["uidl"] = [l.decode() for l in p.uidl()[1]]
out["retr"] = []
for i in range(1, out["stat"][0] + 1):
    _, lines, octets = p.retr(i)
    out["retr"].append({"text": "".join(l.decode() + "\r\n" for l in lines), "octets": octets})
out["top"] = [l.decode() for l in p.top(3, 1)[1]]
p.dele(1)
try:
    p.retr(1)
    out["retr_deleted"] = "no error"
except poplib.error_proto as e:
    out["retr_deleted"] = e.args[0].decode()
p.rset()
p.dele(2)
out["quit"] = p.quit().decode()
p = poplib.POP3(host, port, timeout=10)
p.stls(ctx)
p.user("alice")
p.pass_("correct horse")
out["stat2"] = list(p.stat())
out["uidl2"] = [l.decode() for l in p.uidl()[1]]
q = poplib.POP3(host, port, timeout=10)
q.stls(ctx)
q.user("alice")
try:
    q.pass_("correct horse")
    out["in_use"] = "no error"
except poplib.error_proto as e:
    out["in_use"] = e.args[0].decode()
q.quit()
p.quit()
print(json.dumps(out))
`

type poplibResult struct {
	Capa    []string `json:"capa"`
	CapaTLS []string `json:"capa_tls"`
	Stat    []int    `json:"stat"`
	List    []string `json:"list"`
	UIDL    []string `json:"uidl"`
	Retr    []struct {
		Text   string `json:"text"`
		Octets int    `json:"octets"`
	} `json:"retr"`
	Top         []string `json:"top"`
	RetrDeleted string   `json:"retr_deleted"`
	Quit        string   `json:"quit"`
	Stat2       []int    `json:"stat2"`
	UIDL2       []string `json:"uidl2"`
	InUse       string   `json:"in_use"`
}

func TestPythonPoplib(t *testing.T) {
	py, err := exec.LookPath("python3")
	if err != nil {
		testenv.Missing(t, "python3 not installed: the poplib client test needs it")
	}
	eachFixture(t, func(t *testing.T, e env) {
		withMessages(t, e)
		o := opts(e)
		o.TLSConfig = &tls.Config{Certificates: []tls.Certificate{selfSigned(t)}}
		o.LoopbackIsRemote = true // so that poplib must use STLS
		_, addr, _ := startServer(t, o)
		host, port, _ := net.SplitHostPort(addr)
		cmd := exec.Command(py, "-c", poplibScript, host, port)
		outb, err := cmd.Output()
		if err != nil {
			var stderr string
			if ee, ok := err.(*exec.ExitError); ok {
				stderr = string(ee.Stderr)
			}
			t.Fatalf("poplib: %v\n%s", err, stderr)
		}
		var r poplibResult
		if err := json.Unmarshal(outb, &r); err != nil {
			t.Fatalf("poplib output %q: %v", outb, err)
		}

		if !slices.Contains(r.Capa, "STLS") || slices.Contains(r.Capa, "USER") {
			t.Errorf("CAPA before STLS = %v", r.Capa)
		}
		if slices.Contains(r.CapaTLS, "STLS") || !slices.Contains(r.CapaTLS, "USER") || !slices.Contains(r.CapaTLS, "SASL") {
			t.Errorf("CAPA after STLS = %v", r.CapaTLS)
		}
		if len(r.Stat) != 2 || r.Stat[0] != 3 || r.Stat[1] != 215 {
			t.Errorf("stat() = %v, want [3 215]", r.Stat)
		}
		if got, w := strings.Join(r.List, ","), "1 100,2 65,3 50"; got != w {
			t.Errorf("list() = %q, want %q", got, w)
		}
		if len(r.Retr) != 3 {
			t.Fatalf("retr: %d messages", len(r.Retr))
		}
		for i, m := range r.Retr {
			if m.Text != want[i] {
				t.Errorf("retr(%d) = %q, want %q", i+1, m.Text, want[i])
			}
			if m.Octets != len(want[i]) {
				t.Errorf("retr(%d) octets = %d, want %d (the LIST size)", i+1, m.Octets, len(want[i]))
			}
		}
		if got, w := strings.Join(r.Top, "|"), "From: c@example.test|Subject: top||b1"; got != w {
			t.Errorf("top(3, 1) = %q, want %q", got, w)
		}
		if !strings.HasPrefix(r.RetrDeleted, "-ERR message 1 already deleted") {
			t.Errorf("retr of a deleted message: %q", r.RetrDeleted)
		}
		if r.Quit != "+OK bye (2 messages left)" {
			t.Errorf("quit() = %q", r.Quit)
		}
		if len(r.Stat2) != 2 || r.Stat2[0] != 2 || r.Stat2[1] != 150 {
			t.Errorf("stat() in the next session = %v, want [2 150]", r.Stat2)
		}
		// UIDs survive: the second session lists messages 1 and 3 of
		// the first under the same unique-ids.
		uid := func(line string) string { _, u, _ := strings.Cut(line, " "); return u }
		if len(r.UIDL) != 3 || len(r.UIDL2) != 2 || uid(r.UIDL2[0]) != uid(r.UIDL[0]) || uid(r.UIDL2[1]) != uid(r.UIDL[2]) {
			t.Errorf("uidl() = %q then %q", r.UIDL, r.UIDL2)
		}
		if !strings.HasPrefix(r.InUse, "-ERR [IN-USE]") {
			t.Errorf("pass_() while another session holds the maildrop: %q", r.InUse)
		}
	})
}
