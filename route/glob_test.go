package route

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func TestMatchGlob(t *testing.T) {
	tests := []struct {
		glob, addr string
		null       bool // compile with allowNull (mail_from)
		want       bool
	}{
		{glob: "support@example.test", addr: "support@example.test", want: true},
		{glob: "support@example.test", addr: "SUPPORT@Example.TEST", want: true},
		{glob: "Support@EXAMPLE.test", addr: "support@example.test", want: true},
		{glob: "support@example.test", addr: "support@example.test.", want: true},
		{glob: "support@example.test", addr: "<support@example.test>", want: true},
		{glob: "support@example.test", addr: "sales@example.test", want: false},
		{glob: "support@example.test", addr: "support@example.org", want: false},
		{glob: "support@example.test", addr: "support@sub.example.test", want: false},
		{glob: "support@example.test", addr: "xsupport@example.test", want: false},
		// Plus addressing.
		{glob: "support@example.test", addr: "support+billing@example.test", want: true},
		{glob: "support@example.test", addr: "support+a+b@example.test", want: true},
		{glob: "support+*@example.test", addr: "support+billing@example.test", want: true},
		{glob: "support+*@example.test", addr: "support@example.test", want: false},
		{glob: "support+billing@example.test", addr: "support+billing@example.test", want: true},
		{glob: "support+billing@example.test", addr: "support+other@example.test", want: false},
		{glob: "support@example.test", addr: "supportx+tag@example.test", want: false},
		{glob: "support@example.test", addr: "+support@example.test", want: false},
		// Wildcards.
		{glob: "*@example.test", addr: "anyone@example.test", want: true},
		{glob: "*@example.test", addr: "any.one+x@example.test", want: true},
		{glob: "*@example.test", addr: "anyone@sub.example.test", want: false},
		{glob: "*@*.example.test", addr: "anyone@sub.example.test", want: true},
		{glob: "*@*.example.test", addr: "anyone@a.b.example.test", want: true},
		{glob: "*@*.example.test", addr: "anyone@example.test", want: false},
		{glob: "*@*.example.test", addr: "anyone@evilexample.test", want: false},
		{glob: "*@*", addr: "a@b", want: true},
		{glob: "user?@example.test", addr: "user1@example.test", want: true},
		{glob: "user?@example.test", addr: "user@example.test", want: false},
		{glob: "user?@example.test", addr: "user12@example.test", want: false},
		{glob: "user?@example.test", addr: "useré@example.test", want: true},
		{glob: "no-reply*@*", addr: "no-reply-42@mailer.example.org", want: true},
		{glob: "*a*b*c@example.test", addr: "xaybzc@example.test", want: true},
		{glob: "*a*b*c@example.test", addr: "xaybzcd@example.test", want: false},
		{glob: "josé@exämple.test", addr: "JOSÉ@EXÄMPLE.test", want: true},
		// Relay tricks and routing syntax never match, even a catch-all.
		{glob: "user@ours.test", addr: "user%other.test@ours.test", want: false},
		{glob: "*@ours.test", addr: "user%other.test@ours.test", want: false},
		{glob: "*@ours.test", addr: "other.test!user@ours.test", want: false},
		{glob: "*@ours.test", addr: `"user@other.test"@ours.test`, want: false},
		{glob: "*@ours.test", addr: `"user"@ours.test`, want: false},
		{glob: "*@other.test", addr: "@ours.test:user@other.test", want: false},
		{glob: "*@ours.test", addr: "@ours.test,@x.test:user@ours.test", want: false},
		{glob: "*@*", addr: "user@[192.0.2.1]", want: false},
		{glob: "*@ours.test", addr: "user@ours.test@other.test", want: false},
		{glob: "*@ours.test", addr: "us er@ours.test", want: false},
		{glob: "*@ours.test", addr: "user.@ours.test", want: false},
		{glob: "*@ours.test", addr: "a..b@ours.test", want: false},
		{glob: "*@ours.test", addr: "@ours.test", want: false},
		{glob: "*@ours.test", addr: "user", want: false},
		{glob: "*@ours.test", addr: "user@", want: false},
		{glob: "*@ours.test", addr: "user@ours.test\r\n", want: true}, // trimmed
		{glob: "*@ours.test", addr: "user\x00@ours.test", want: false},
		{glob: "*@ours.test", addr: "\xff@ours.test", want: false},
		// Null reverse-path.
		{glob: "<>", addr: "", null: true, want: true},
		{glob: "<>", addr: "<>", null: true, want: true},
		{glob: "", addr: "<>", null: true, want: true},
		{glob: "<>", addr: "a@example.test", null: true, want: false},
		{glob: "*@*", addr: "", null: true, want: false},
		{glob: "*@*", addr: "<>", null: true, want: false},
	}
	for _, tt := range tests {
		t.Run(tt.glob+" "+tt.addr, func(t *testing.T) {
			g, err := compileGlob(tt.glob, tt.null)
			if err != nil {
				t.Fatalf("compileGlob(%q) = %v", tt.glob, err)
			}
			if got := g.match(splitAddr(tt.addr)); got != tt.want {
				t.Errorf("glob %q match %q = %v, want %v", tt.glob, tt.addr, got, tt.want)
			}
		})
	}
}

func TestCompileGlobErrors(t *testing.T) {
	tests := []struct {
		glob string
		null bool
	}{
		{glob: ""},
		{glob: "<>"},
		{glob: "example.test"},
		{glob: "a@b@example.test"},
		{glob: "@example.test"},
		{glob: "user@"},
		{glob: "user%other@example.test"},
		{glob: "user!x@example.test"},
		{glob: `"user"@example.test`},
		{glob: "us er@example.test"},
		{glob: "user@[192.0.2.1]"},
		{glob: "user@exa_mple.test"},
		{glob: "[a-z]@example.test"},
		{glob: "\xff@example.test"},
		{glob: strings.Repeat("a", maxGlobLen) + "@example.test"},
		{glob: "a@b@c", null: true},
	}
	for _, tt := range tests {
		t.Run(tt.glob, func(t *testing.T) {
			if _, err := compileGlob(tt.glob, tt.null); err == nil {
				t.Errorf("compileGlob(%q) = nil error, want one", tt.glob)
			}
		})
	}
}

func TestWildMatch(t *testing.T) {
	tests := []struct {
		p, s string
		want bool
	}{
		{"", "", true},
		{"*", "", true},
		{"*", "abc", true},
		{"?", "", false},
		{"a*", "a", true},
		{"*a", "ba", true},
		{"*a", "ab", false},
		{"a*b*c", "abc", true},
		{"a*b*c", "aXbYbZc", true},
		{"a*b*c", "aXbYbZ", false},
		{"**", "x", true},
		{"?*?", "x", false},
		{"?*?", "xy", true},
		{"é?", "éü", true},
	}
	for _, tt := range tests {
		if got := wildMatch(tt.p, tt.s); got != tt.want {
			t.Errorf("wildMatch(%q, %q) = %v, want %v", tt.p, tt.s, got, tt.want)
		}
	}
}

// refMatch is a slow, obviously correct wildcard matcher on runes.
func refMatch(p, s []rune) bool {
	if len(p) == 0 {
		return len(s) == 0
	}
	switch p[0] {
	case '*':
		for i := 0; i <= len(s); i++ {
			if refMatch(p[1:], s[i:]) {
				return true
			}
		}
		return false
	case '?':
		return len(s) > 0 && refMatch(p[1:], s[1:])
	default:
		return len(s) > 0 && s[0] == p[0] && refMatch(p[1:], s[1:])
	}
}

// FuzzMatchGlob checks that matching never panics, agrees with a reference
// matcher, and never lets routing syntax match.
func FuzzMatchGlob(f *testing.F) {
	seeds := [][2]string{
		{"support@example.test", "support+tag@example.test"},
		{"support+*@example.test", "support+billing@Example.Test"},
		{"*@example.test", "user%other.test@example.test"},
		{"*@*.example.test", "a@b.example.test"},
		{"*@*", "@ours:user@other.test"},
		{"*@*", `"a@b"@c`},
		{"user?@example.test", "useré@example.test"},
		{"<>", ""},
		{"*a*b*c@x", "aaabbbccc@x"},
	}
	for _, s := range seeds {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, pattern, address string) {
		if len(pattern) > 64 || len(address) > 64 {
			return // keep the reference matcher cheap
		}
		g, err := compileGlob(pattern, true)
		if err != nil {
			return
		}
		a := splitAddr(address)
		got := g.match(a)
		if got && strings.ContainsAny(address, `%!"[`) {
			t.Fatalf("glob %q matched routing syntax %q", pattern, address)
		}
		if g.null || a.null || a.opaque {
			return
		}
		if !utf8.ValidString(g.local) || !utf8.ValidString(a.local) {
			return
		}
		want := refMatch([]rune(g.domain), []rune(a.domain)) && refMatch([]rune(g.local), []rune(a.local))
		if !want && !g.plus {
			if i := strings.IndexByte(a.local, '+'); i > 0 {
				want = refMatch([]rune(g.domain), []rune(a.domain)) && refMatch([]rune(g.local), []rune(a.local[:i]))
			}
		}
		if got != want {
			t.Fatalf("glob %q match %q = %v, reference says %v", pattern, address, got, want)
		}
	})
}
