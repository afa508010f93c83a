package main

import (
	"bytes"
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"fmt"
	mrand "math/rand/v2"
	"strconv"
	"strings"

	"github.com/emersion/go-msgauth/dkim"
)

// The bench's sender: its domain publishes SPF for 127.0.0.1, a DKIM key
// and DMARC p=reject on the loopback DNS server, so every message passes
// all three checks and the full verification path runs.
const (
	senderDomain = "bench.test"
	dkimSelector = "mhb"
	mailFrom     = "load@" + senderDomain
	rcptDomain   = "example.test"
	rcptTo       = "support@" + rcptDomain
	heloName     = "client." + senderDomain
)

// signedHeaders are the header fields the DKIM signature covers
// (RFC 6376 §5.4.1 recommends these and more). Subject and Message-ID carry
// the per-message token and are left out, so one signature made up front
// stays valid for every message of a template and the client spends no CPU
// on signing during the run; the verifier's work is the same either way.
var signedHeaders = []string{"From", "To", "Date", "MIME-Version", "Content-Type"}

// template is one message shape: the bytes before the per-message header
// fields (DKIM-Signature and the signed fields) and the bytes after them
// (the blank line, the body and the terminating "." line, RFC 5321 §4.1.1.4).
type template struct {
	head []byte
	tail []byte
}

// size is the message size without the per-message fields (about 100
// bytes more on the wire).
func (t *template) size() int { return len(t.head) + len(t.tail) - len(".\r\n") }

// messageSet is the set of templates a run draws from.
type messageSet struct {
	label   string
	tmpls   []*template
	weights []int // cumulative, out of weights[len-1]
	dkimKey string
	dkimPub string // the p= value of the DKIM key record
	dkimAlg string // k= of the key record
}

// pick chooses the template of message seq, deterministically.
func (m *messageSet) pick(seq int64) *template {
	if len(m.tmpls) == 1 {
		return m.tmpls[0]
	}
	x := int(uint64(seq)*0x9E3779B97F4A7C15>>33) % m.weights[len(m.weights)-1]
	for i, w := range m.weights {
		if x < w {
			return m.tmpls[i]
		}
	}
	return m.tmpls[len(m.tmpls)-1]
}

// mixedSizes is the mix behind --size mixed: mostly small mail, some with
// attachments, a few large ones.
var mixedSizes = []struct {
	size, weight int
}{{2 << 10, 60}, {10 << 10, 25}, {100 << 10, 10}, {1 << 20, 4}, {5 << 20, 1}}

// parseSize reads "2k", "100k", "10m", "2048" or "mixed".
func parseSize(s string) ([]int, []int, error) {
	s = strings.ToLower(strings.TrimSpace(s))
	if s == "mixed" {
		var sizes, weights []int
		for _, m := range mixedSizes {
			sizes = append(sizes, m.size)
			weights = append(weights, m.weight)
		}
		return sizes, weights, nil
	}
	mult := 1
	switch {
	case strings.HasSuffix(s, "k"), strings.HasSuffix(s, "kb"):
		mult, s = 1<<10, strings.TrimSuffix(strings.TrimSuffix(s, "b"), "k")
	case strings.HasSuffix(s, "m"), strings.HasSuffix(s, "mb"):
		mult, s = 1<<20, strings.TrimSuffix(strings.TrimSuffix(s, "b"), "m")
	}
	n, err := strconv.Atoi(s)
	if err != nil || n <= 0 || n > 1<<30/mult {
		return nil, nil, fmt.Errorf("size %q: want a number with k or m, or mixed", s)
	}
	return []int{n * mult}, []int{1}, nil
}

// sizeLabel writes a size as the matrix shows it ("2KB", "100KB", "10MB").
func sizeLabel(n int) string {
	switch {
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%dMB", n>>20)
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%dKB", n>>10)
	}
	return fmt.Sprintf("%dB", n)
}

// newMessageSet builds the templates for spec (see parseSize), signed with
// a fresh key of kind dkimKind ("ed25519", "rsa" or "none").
func newMessageSet(spec, dkimKind string) (*messageSet, error) {
	sizes, weights, err := parseSize(spec)
	if err != nil {
		return nil, err
	}
	m := &messageSet{dkimKey: dkimKind}
	var signer crypto.Signer
	switch dkimKind {
	case "none", "":
		m.dkimKey = "none"
	case "ed25519":
		pub, key, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			return nil, err
		}
		signer, m.dkimAlg, m.dkimPub = key, "ed25519", base64.StdEncoding.EncodeToString(pub)
	case "rsa":
		key, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			return nil, err
		}
		der, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
		if err != nil {
			return nil, err
		}
		signer, m.dkimAlg, m.dkimPub = key, "rsa", base64.StdEncoding.EncodeToString(der)
	default:
		return nil, fmt.Errorf("dkim %q: want ed25519, rsa or none", dkimKind)
	}
	var labels []string
	total := 0
	for i, size := range sizes {
		t, err := buildTemplate(size, signer, int64(i))
		if err != nil {
			return nil, err
		}
		total += weights[i]
		m.tmpls = append(m.tmpls, t)
		m.weights = append(m.weights, total)
		labels = append(labels, sizeLabel(size))
	}
	m.label = strings.Join(labels, "+")
	if len(sizes) > 1 {
		m.label = "mixed"
	}
	return m, nil
}

// txtRecords are the DNS records the loopback server publishes for the
// sender: SPF (RFC 7208), the DKIM key (RFC 6376 §3.6.1) and DMARC
// p=reject (RFC 7489 §6.3).
func (m *messageSet) txtRecords() map[string][]string {
	r := map[string][]string{
		senderDomain:             {"v=spf1 ip4:127.0.0.1 -all"},
		"_dmarc." + senderDomain: {"v=DMARC1; p=reject; adkim=r; aspf=r"},
	}
	if m.dkimPub != "" {
		r[dkimSelector+"._domainkey."+senderDomain] = []string{"v=DKIM1; k=" + m.dkimAlg + "; p=" + m.dkimPub}
	}
	return r
}

const lorem = "Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor incididunt ut labore et dolore magna aliqua."

// buildTemplate makes a message of about size bytes: plain text when small,
// multipart/mixed with a base64 attachment when 8 KB or more, so the parser
// decodes a realistic structure. Lines stay under 80 bytes and never start
// with ".", so no dot-stuffing is needed (RFC 5321 §4.5.2).
func buildTemplate(size int, signer crypto.Signer, seed int64) (*template, error) {
	const boundary = "mhb-boundary-7f3c"
	var hdr, body bytes.Buffer
	hdr.WriteString("From: Load Generator <" + mailFrom + ">\r\n")
	hdr.WriteString("To: Support <" + rcptTo + ">\r\n")
	hdr.WriteString("Date: Sun, 29 Nov 2026 05:00:00 +0000\r\n")
	hdr.WriteString("MIME-Version: 1.0\r\n")
	// Room for the DKIM-Signature (about 300-500 bytes) and the
	// per-message fields (about 100 bytes).
	budget := size - 250 - 100
	if signer != nil {
		budget -= 400
	}
	words := strings.Fields(lorem)
	text := func(b *bytes.Buffer, n int) {
		line := 0
		for i := 0; b.Len() < n; i++ {
			w := words[i%len(words)]
			if line+len(w)+1 > 72 {
				b.WriteString("\r\n")
				line = 0
			} else if line > 0 {
				b.WriteByte(' ')
				line++
			}
			b.WriteString(w)
			line += len(w)
		}
		b.WriteString("\r\n")
	}
	if size < 8<<10 {
		hdr.WriteString("Content-Type: text/plain; charset=utf-8\r\n")
		text(&body, max(budget, 40))
	} else {
		hdr.WriteString("Content-Type: multipart/mixed; boundary=\"" + boundary + "\"\r\n")
		body.WriteString("--" + boundary + "\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n")
		text(&body, 1000)
		body.WriteString("--" + boundary + "\r\nContent-Type: application/octet-stream\r\n" +
			"Content-Disposition: attachment; filename=\"data.bin\"\r\nContent-Transfer-Encoding: base64\r\n\r\n")
		rest := budget - body.Len() - 200
		raw := make([]byte, max(rest, 76)/4*3)
		rng := mrand.New(mrand.NewPCG(uint64(seed), uint64(size)))
		for i := range raw {
			raw[i] = byte(rng.Uint32())
		}
		enc := base64.StdEncoding.EncodeToString(raw)
		for len(enc) > 76 {
			body.WriteString(enc[:76])
			body.WriteString("\r\n")
			enc = enc[76:]
		}
		body.WriteString(enc + "\r\n--" + boundary + "--\r\n")
	}
	msg := append(append(hdr.Bytes(), "\r\n"...), body.Bytes()...)
	split := hdr.Len() // the per-message fields go here, before the blank line
	if signer != nil {
		var out bytes.Buffer
		err := dkim.Sign(&out, bytes.NewReader(msg), &dkim.SignOptions{
			Domain: senderDomain, Selector: dkimSelector, Signer: signer,
			HeaderCanonicalization: dkim.CanonicalizationRelaxed,
			BodyCanonicalization:   dkim.CanonicalizationRelaxed,
			HeaderKeys:             signedHeaders,
		})
		if err != nil {
			return nil, fmt.Errorf("dkim sign: %w", err)
		}
		split += out.Len() - len(msg)
		msg = out.Bytes()
	}
	t := &template{head: msg[:split:split]}
	t.tail = append(append([]byte(nil), msg[split:]...), ".\r\n"...)
	return t, nil
}
