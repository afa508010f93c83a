package parse

import (
	"bytes"
	"encoding/json"
	"os"
	"strings"
	"testing"
	"unicode/utf8"
)

// FuzzParse feeds arbitrary input to Parse: it must never panic, never
// fail (the reader cannot fail), and always return valid UTF-8 that
// round-trips through JSON. Seeds: the conformance corpus and the messages
// the other tests build. Panics are not recovered while fuzzing.
func FuzzParse(f *testing.F) {
	for _, file := range corpusFiles(f) {
		b, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte(dsnMessage))
	f.Add([]byte(nested(30)))
	raw, _ := attachmentMessage(3000)
	f.Add(raw)
	for _, tc := range stripCases {
		f.Add([]byte("Content-Type: text/plain; format=flowed\r\n\r\n" + tc.in))
	}
	recoverPanics = false
	defer func() { recoverPanics = true }()
	opts := Options{MaxDecodedBytes: 4 << 20, MaxHeaderBytes: 64 << 10, MaxParts: 200}
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := Parse(bytes.NewReader(data), opts)
		if err != nil {
			t.Fatalf("Parse = %v", err)
		}
		checkInvariants(t, m)
		if _, err := json.Marshal(m); err != nil {
			t.Fatal(err)
		}
	})
}

// FuzzStripReply checks that StripReply never panics, returns valid UTF-8
// for valid input, and never makes the text longer.
func FuzzStripReply(f *testing.F) {
	for _, tc := range stripCases {
		f.Add(tc.in)
	}
	f.Fuzz(func(t *testing.T, s string) {
		out := StripReply(s)
		if utf8.ValidString(s) && !utf8.ValidString(out) {
			t.Errorf("StripReply(%q) = %q: invalid UTF-8", s, out)
		}
		if len(out) > len(s) {
			t.Errorf("StripReply(%q) = %q: longer than its input", s, out)
		}
		// The remembered colons change no decision.
		lines := strings.Split(normalizeNewlines(s), "\n")
		memo := replyLines{l: lines, colons: make([]uint8, len(lines))}
		for i := range lines {
			c1, ok1 := cutAt(lines, i)
			c2, ok2 := memo.cutAt(i)
			if c1 != c2 || ok1 != ok2 {
				t.Errorf("line %d of %q: cutAt = %d, %v; with colons remembered %d, %v", i, s, c1, ok1, c2, ok2)
			}
		}
	})
}
