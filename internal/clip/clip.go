// Package clip shortens text for logs, stored errors and displays
// without splitting a UTF-8 sequence (a cut inside one would leave an
// invalid string, which JSON encoders then replace or refuse).
package clip

import "unicode/utf8"

// UTF8 returns s when it is at most n bytes long; otherwise its longest
// prefix of at most n bytes that ends on a rune boundary, followed by
// ellipsis ("", "...", "…"), which is not counted in n.
func UTF8(s string, n int, ellipsis string) string {
	if len(s) <= n {
		return s
	}
	n = max(n, 0)
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + ellipsis
}
