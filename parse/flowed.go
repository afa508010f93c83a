package parse

import "strings"

// unflow undoes format=flowed (RFC 3676 §4): a line ending in a space is
// joined with the next line of the same quote depth. Space-stuffing (§4.4)
// is removed, quote depth (§4.5) is kept as "> " prefixes, and with DelSp=yes
// (§4.2) the trailing space of a flowed line is deleted when joining. The
// signature separator "-- " (§4.3) is never flowed.
func unflow(s string, delSp bool) string {
	lines := strings.Split(s, "\n")
	var b strings.Builder
	b.Grow(len(s))
	var para strings.Builder
	paraDepth := -1
	flush := func() {
		if paraDepth < 0 {
			return
		}
		if paraDepth > 0 {
			b.WriteString(strings.Repeat(">", paraDepth))
			b.WriteByte(' ')
		}
		b.WriteString(para.String())
		b.WriteByte('\n')
		para.Reset()
		paraDepth = -1
	}
	for i, line := range lines {
		if i == len(lines)-1 && line == "" {
			break // the text's final newline
		}
		depth := 0
		for depth < len(line) && line[depth] == '>' {
			depth++
		}
		line = line[depth:]
		line = strings.TrimPrefix(line, " ") // space-stuffing
		if paraDepth >= 0 && depth != paraDepth {
			// §4.5: a change of quote depth ends the paragraph.
			flush()
		}
		flowed := strings.HasSuffix(line, " ") && line != "-- "
		if flowed && delSp {
			line = line[:len(line)-1]
		}
		para.WriteString(line)
		paraDepth = depth
		if !flowed {
			flush()
		}
	}
	flush()
	out := b.String()
	if !strings.HasSuffix(s, "\n") {
		out = strings.TrimSuffix(out, "\n")
	}
	return out
}
