package ingest

import (
	"bytes"
	"strings"
	"testing"
)

// refEndings is the byte-at-a-time reading checkEndings must agree with:
// the first NUL, bare CR or bare LF in order decides.
func refEndings(chunks ...string) (bare, nul bool) {
	prevCR := false
	for _, c := range strings.Join(chunks, "") {
		switch {
		case c == 0:
			return false, true
		case c == '\n' && !prevCR, c == '\r' && prevCR, c != '\n' && c != '\r' && prevCR:
			return true, false
		}
		prevCR = c == '\r'
	}
	return prevCR, false // a CR at the very end is bare too (receive checks)
}

// TestCheckEndingsMatchesByteLoop compares checkEndings with the byte
// loop on every string of up to 8 bytes over {a, CR, LF, NUL}, whole and
// cut in two chunks at every point.
func TestCheckEndingsMatchesByteLoop(t *testing.T) {
	const alphabet = "a\r\n\x00"
	var all []string
	level := []string{""}
	for n := 0; n <= 8; n++ {
		all = append(all, level...)
		var next []string
		for _, s := range level {
			for _, c := range alphabet {
				next = append(next, s+string(c))
			}
		}
		level = next
	}
	checked := 0
	for _, s := range all {
		for cut := 0; cut <= len(s); cut++ {
			sp := &spool{}
			for _, ch := range []string{s[:cut], s[cut:]} {
				if sp.bare || sp.nul {
					break
				}
				sp.checkEndings([]byte(ch))
			}
			bare, nul := sp.bare || (!sp.nul && sp.prevCR), sp.nul
			wb, wn := refEndings(s)
			if bare != wb || nul != wn {
				t.Fatalf("%q cut at %d: bare %v nul %v, byte loop says bare %v nul %v", s, cut, bare, nul, wb, wn)
			}
			checked++
		}
	}
	if checked < 300000 {
		t.Fatalf("only %d cases checked", checked)
	}
}

// BenchmarkCheckEndings100K: the line-ending check of a 100 KB message of
// 78-byte lines.
func BenchmarkCheckEndings100K(b *testing.B) {
	msg := bytes.Repeat([]byte(strings.Repeat("x", 76)+"\r\n"), 100<<10/78)
	b.SetBytes(int64(len(msg)))
	for b.Loop() {
		sp := &spool{}
		sp.checkEndings(msg)
		if sp.bare || sp.nul {
			b.Fatal("clean message refused")
		}
	}
}
