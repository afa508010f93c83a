package clip

import (
	"testing"
	"unicode/utf8"
)

func TestUTF8(t *testing.T) {
	for _, tc := range []struct {
		s        string
		n        int
		ellipsis string
		want     string
	}{
		{"short", 10, "…", "short"},
		{"exactly10!", 10, "…", "exactly10!"},
		{"eleven char", 10, "", "eleven cha"},
		{"eleven char", 10, "...", "eleven cha..."},
		{"añb", 2, "", "a"},           // ñ is 2 bytes: not split
		{"a€b", 3, "…", "a…"},         // € is 3 bytes
		{"€€", 4, "", "€"},            // cut inside the second €
		{"\x80\x80\x80", 2, "…", "…"}, // no boundary at all
		{"abc", 0, "…", "…"},
		{"abc", -1, "", ""},
	} {
		got := UTF8(tc.s, tc.n, tc.ellipsis)
		if got != tc.want {
			t.Errorf("UTF8(%q, %d, %q) = %q, want %q", tc.s, tc.n, tc.ellipsis, got, tc.want)
		}
		if utf8.ValidString(tc.s) && !utf8.ValidString(got) {
			t.Errorf("UTF8(%q, %d) = %q is not valid UTF-8", tc.s, tc.n, got)
		}
	}
}
