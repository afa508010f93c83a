package parse

import (
	"encoding/base64"
	"regexp"
	"strings"
)

// encodedWordRE matches an RFC 2047 §2 encoded word.
var encodedWordRE = regexp.MustCompile(`=\?([^?\s]+)\?([bBqQ])\?([^?\s]*)\?=`)

// mergeWords joins adjacent encoded words of the same multibyte charset
// into one. RFC 2047 §5 forbids splitting a character across words, but
// some mailers do it in Shift_JIS, GBK, Big5 and the like; decoded word by
// word, the split character would be lost. (UTF-8 needs no merging: the
// decoder concatenates its bytes before they are read as text.) changed is
// false when nothing was merged.
func mergeWords(v string) (merged string, changed bool) {
	if !strings.Contains(v, "=?") {
		return v, false
	}
	locs := encodedWordRE.FindAllStringSubmatchIndex(v, 200)
	if len(locs) < 2 {
		return v, false
	}
	var b strings.Builder
	last := 0
	for i := 0; i < len(locs); {
		cs := v[locs[i][2]:locs[i][3]]
		enc := strings.ToUpper(v[locs[i][4]:locs[i][5]])
		// The run of words with the same charset and encoding separated
		// only by white space (which RFC 2047 §6.2 says to drop).
		j := i + 1
		for j < len(locs) && strings.EqualFold(v[locs[j][2]:locs[j][3]], cs) &&
			strings.EqualFold(v[locs[j][4]:locs[j][5]], enc) &&
			strings.TrimSpace(v[locs[j-1][1]:locs[j][0]]) == "" {
			j++
		}
		lcs := strings.ToLower(cs)
		if j-i < 2 || lcs == "utf-8" || lcs == "us-ascii" || strings.HasPrefix(lcs, "iso-8859") {
			b.WriteString(v[last:locs[j-1][1]])
			last = locs[j-1][1]
			i = j
			continue
		}
		var payload strings.Builder
		ok := true
		var raw []byte
		for k := i; k < j; k++ {
			text := v[locs[k][6]:locs[k][7]]
			if enc == "Q" {
				payload.WriteString(text)
				continue
			}
			d, err := base64.StdEncoding.DecodeString(text)
			if err != nil {
				ok = false
				break
			}
			raw = append(raw, d...)
		}
		b.WriteString(v[last:locs[i][0]])
		if !ok {
			b.WriteString(v[locs[i][0]:locs[j-1][1]])
		} else {
			if enc == "B" {
				payload.WriteString(base64.StdEncoding.EncodeToString(raw))
			}
			b.WriteString("=?" + cs + "?" + enc + "?" + payload.String() + "?=")
			changed = true
		}
		last = locs[j-1][1]
		i = j
	}
	b.WriteString(v[last:])
	return b.String(), changed
}

// decodeWords decodes the RFC 2047 words of an unstructured value after
// merging split multibyte words. ok is false when there was nothing to
// merge, so the caller's own decoding stands.
func decodeWords(v string) (string, bool) {
	merged, changed := mergeWords(v)
	if !changed {
		return "", false
	}
	d, err := wordDecoder.DecodeHeader(merged)
	if err != nil {
		return "", false
	}
	return d, true
}
