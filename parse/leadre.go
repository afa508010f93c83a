package parse

import (
	"regexp"
	"strings"
	"unicode"
	"unicode/utf8"
)

// leadRE is a line expression, anchored at the start and case-insensitive,
// whose every match starts (after the spaces \s matches) with one of the
// characters of first, compared as (?i) does. Go's regexp finds no
// literal prefix in such an expression and runs its machine over every
// line it is given; match looks at the first character and runs it only on
// the few lines that could match. TestLeadREFirst derives each
// expression's possible first characters from its syntax and checks them
// against first.
type leadRE struct {
	re    *regexp.Regexp
	first string
}

func newLeadRE(first, expr string) leadRE {
	return leadRE{regexp.MustCompile(expr), first}
}

// reSpace is what \s matches in Go's regexp (RE2's Perl class).
const reSpace = "\t\n\f\r "

func (l leadRE) MatchString(s string) bool {
	t := strings.TrimLeft(s, reSpace)
	if t == "" {
		return false
	}
	r, _ := utf8.DecodeRuneInString(t)
	return foldedIn(r, l.first) && l.re.MatchString(s)
}

// foldedIn reports whether r, or a rune that simple case folding makes
// equal to it (as (?i) compares), is in set.
func foldedIn(r rune, set string) bool {
	for f := r; ; {
		if strings.ContainsRune(set, f) {
			return true
		}
		if f = unicode.SimpleFold(f); f == r {
			return false
		}
	}
}
