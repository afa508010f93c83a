package parse

import (
	"regexp/syntax"
	"strings"
	"testing"
	"unicode"
)

// TestLeadREFirst: every character a match of each leadRE can start with
// (after ^\s*), read from the expression's syntax, is in its first set,
// so the check before the expression never turns away a line it matches.
func TestLeadREFirst(t *testing.T) {
	for name, l := range map[string]leadRE{
		"separatorRE": separatorRE, "fromLabelRE": fromLabelRE,
		"headerLabelRE": headerLabelRE, "sentFromRE": sentFromRE,
	} {
		re, err := syntax.Parse(l.re.String(), syntax.Perl)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		// The expressions are ^\s*(…): what follows the spaces is what
		// match looks at.
		if re.Op != syntax.OpConcat || len(re.Sub) < 3 || re.Sub[0].Op != syntax.OpBeginText ||
			re.Sub[1].Op != syntax.OpStar || re.Sub[1].Sub[0].String() != `[\t\n\f\r ]` {
			t.Fatalf("%s = %s: not ^\\s*…", name, re)
		}
		runes, any, nullable := firstRunes(&syntax.Regexp{Op: syntax.OpConcat, Sub: re.Sub[2:]})
		if any || nullable {
			t.Fatalf("%s: a match may start with any character (%v) or be empty (%v)", name, any, nullable)
		}
		if len(runes) == 0 {
			t.Fatalf("%s: no first characters found", name)
		}
		for _, r := range runes {
			if strings.ContainsRune(reSpace, r) {
				t.Errorf("%s: a match may start with space %q after ^\\s*", name, r)
			}
			if !foldedIn(r, l.first) {
				t.Errorf("%s: a match may start with %q, not in %q", name, r, l.first)
			}
		}
	}
}

// firstRunes returns the characters a match of re can start with, whether
// it can start with any (a wide class), and whether it can be empty.
func firstRunes(re *syntax.Regexp) (runes []rune, any, nullable bool) {
	switch re.Op {
	case syntax.OpLiteral:
		if len(re.Rune) == 0 {
			return nil, false, true
		}
		r := re.Rune[0]
		runes = append(runes, r)
		if re.Flags&syntax.FoldCase != 0 {
			for f := unicode.SimpleFold(r); f != r; f = unicode.SimpleFold(f) {
				runes = append(runes, f)
			}
		}
		return runes, false, false
	case syntax.OpCharClass:
		for i := 0; i+1 < len(re.Rune); i += 2 {
			if re.Rune[i+1]-re.Rune[i] > 64 {
				return nil, true, false
			}
			for r := re.Rune[i]; r <= re.Rune[i+1]; r++ {
				runes = append(runes, r)
			}
		}
		return runes, false, false
	case syntax.OpAnyChar, syntax.OpAnyCharNotNL:
		return nil, true, false
	case syntax.OpEmptyMatch, syntax.OpBeginLine, syntax.OpEndLine, syntax.OpBeginText,
		syntax.OpEndText, syntax.OpWordBoundary, syntax.OpNoWordBoundary:
		return nil, false, true
	case syntax.OpCapture:
		return firstRunes(re.Sub[0])
	case syntax.OpStar, syntax.OpQuest:
		runes, any, _ = firstRunes(re.Sub[0])
		return runes, any, true
	case syntax.OpPlus:
		return firstRunes(re.Sub[0])
	case syntax.OpRepeat:
		runes, any, nullable = firstRunes(re.Sub[0])
		return runes, any, nullable || re.Min == 0
	case syntax.OpConcat:
		for _, sub := range re.Sub {
			r, a, n := firstRunes(sub)
			runes, any = append(runes, r...), any || a
			if !n {
				return runes, any, false
			}
		}
		return runes, any, true
	case syntax.OpAlternate:
		for _, sub := range re.Sub {
			r, a, n := firstRunes(sub)
			runes, any, nullable = append(runes, r...), any || a, nullable || n
		}
		return runes, any, nullable
	}
	panic("firstRunes: unexpected op " + re.Op.String())
}

// TestLeadREMatches: lines each expression matches, with and without
// leading spaces and in other cases, still match through the check.
func TestLeadREMatches(t *testing.T) {
	for _, c := range []struct {
		l    leadRE
		line string
	}{
		{separatorRE, "-----Original Message-----"}, {separatorRE, "Begin forwarded message:"},
		{separatorRE, "НАЧАЛО ПЕРЕАДРЕСОВАННОГО СООБЩЕНИЯ:"}, {fromLabelRE, "*From:* Ann <a@b.c>"},
		{fromLabelRE, "От: Иван"}, {fromLabelRE, "差出人: 山田"}, {headerLabelRE, "Subject: hi"},
		{headerLabelRE, "ОТПРАВЛЕНО: сегодня"}, {headerLabelRE, "Дата: 1"}, {headerLabelRE, "À : x"},
		{sentFromRE, "Sent from my iPhone"}, {sentFromRE, "ſent from my phone"}, {sentFromRE, "Отправлено с iPhone"},
	} {
		for _, s := range []string{c.line, " \t" + c.line, strings.ToUpper(c.line), strings.ToLower(c.line)} {
			if want := c.l.re.MatchString(s); c.l.MatchString(s) != want {
				t.Errorf("%q: match %v, the expression alone %v", s, !want, want)
			}
		}
		if !c.l.MatchString(c.line) {
			t.Errorf("%q: not matched", c.line)
		}
	}
	for _, s := range []string{"iPhoneから送信", " iPhoneから送信 ", "Sent from my iPad"} {
		if !isSentFrom(s) {
			t.Errorf("isSentFrom(%q) = false", s)
		}
	}
	for _, s := range []string{"から送信", "Hello there", "Sent to my iPad"} {
		if isSentFrom(s) {
			t.Errorf("isSentFrom(%q) = true", s)
		}
	}
}

// FuzzLeadRE: the check never turns away a line the expression matches.
func FuzzLeadRE(f *testing.F) {
	for _, s := range []string{"Sent from my iPhone", "From: a", "-- Original Message --", "Subject: x", "iPhoneから送信"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		for _, l := range []leadRE{separatorRE, fromLabelRE, headerLabelRE, sentFromRE} {
			if l.re.MatchString(s) && !l.MatchString(s) {
				t.Errorf("%q: the expression matches, the check turns it away", s)
			}
		}
	})
}
