package relay

import (
	"errors"
	"strings"
	"testing"

	"github.com/mailhook/mailhook/header"
)

func TestScanHeader(t *testing.T) {
	for _, tc := range []struct {
		name string
		msg  string
		want HeaderFacts
	}{
		{"empty", "", HeaderFacts{}},
		{"crlf", "Received: a\r\nReceived: b\r\nX-Loop: one\r\nSubject: x\r\n\r\nReceived: in body\r\n",
			HeaderFacts{Received: 2, Loops: []string{"one"}}},
		{"lf and folding", "received: a\nX-LOOP:\n two\nAuto-Submitted: auto-replied (vacation)\n\nbody",
			HeaderFacts{Received: 1, Loops: []string{"two"}, AutoSubmitted: true}},
		{"auto-submitted no", "Auto-Submitted: No\r\n\r\n", HeaderFacts{}},
		// A line that is not a field ends the header (package header).
		{"garbage line first", "not a header\r\n: no name\r\nReceived: x\r\n\r\n", HeaderFacts{}},
		{"garbage line after", "Received: x\r\nnot a header\r\nReceived: y\r\n\r\n", HeaderFacts{Received: 1}},
		{"no body", "Received: x", HeaderFacts{Received: 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ScanHeader(strings.NewReader(tc.msg))
			if err != nil {
				t.Fatal(err)
			}
			if got.Received != tc.want.Received || got.AutoSubmitted != tc.want.AutoSubmitted ||
				strings.Join(got.Loops, "|") != strings.Join(tc.want.Loops, "|") {
				t.Errorf("ScanHeader = %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestCheckLoop(t *testing.T) {
	if err := CheckLoop(HeaderFacts{Received: 30}, "mx.test", 0); err != nil {
		t.Errorf("30 hops: %v", err)
	}
	if err := CheckLoop(HeaderFacts{Received: 31}, "mx.test", 0); !errors.Is(err, ErrLoop) {
		t.Errorf("31 hops: %v, want ErrLoop", err)
	}
	if err := CheckLoop(HeaderFacts{Loops: []string{"other", "MX.TEST"}}, "mx.test", 0); !errors.Is(err, ErrLoop) {
		t.Errorf("marker: %v, want ErrLoop", err)
	}
	hf := FactsOf([]header.Field{{Name: "Received", Value: "x"}, {Name: "X-Loop", Value: " mx.test "}})
	if err := CheckLoop(hf, "mx.test", 0); !errors.Is(err, ErrLoop) || hf.Received != 1 {
		t.Errorf("FactsOf: %+v, %v", hf, err)
	}
}

// TestScanHeaderBounded: a header without end is read only up to the
// limit.
func TestScanHeaderBounded(t *testing.T) {
	r := strings.NewReader(strings.Repeat("Received: x\r\n", 1<<20))
	hf, err := ScanHeader(r)
	if err != nil {
		t.Fatal(err)
	}
	if max := maxHeaderScan / len("Received: x\r\n"); hf.Received > max+1 {
		t.Errorf("counted %d Received fields, more than the %d the limit allows", hf.Received, max)
	}
	if r.Len() == 0 {
		t.Error("ScanHeader read the whole input")
	}
}

func FuzzScanHeader(f *testing.F) {
	f.Add("Received: a\r\nX-Loop: b\r\n\r\nbody")
	f.Add("\n")
	f.Add(" folded first\r\n")
	f.Fuzz(func(t *testing.T, msg string) {
		hf, err := ScanHeader(strings.NewReader(msg))
		// An in-memory reader never fails, and each field takes a line.
		if err != nil {
			t.Fatalf("ScanHeader(%q) = %v", msg, err)
		}
		if lines := strings.Count(msg, "\n") + 1; hf.Received > lines || len(hf.Loops) > lines {
			t.Errorf("ScanHeader(%q) counted %d Received and %d X-Loop fields in %d lines", msg, hf.Received, len(hf.Loops), lines)
		}
	})
}
