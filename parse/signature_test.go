package parse

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestReplyShapes parses real-shaped multipart replies as Gmail, Outlook
// (desktop and web) and Thunderbird write them and checks the reply parts:
// stripped_text, stripped_signature and stripped_html.
func TestReplyShapes(t *testing.T) {
	cases := []struct {
		file          string
		text, sig     string
		html, notHTML []string
	}{
		{
			file:    "gmail.eml",
			text:    "Thanks, the printer works again after the firmware update.",
			sig:     "--\nAlice Example\nHead of Facilities, Example Corp",
			html:    []string{`<div dir="ltr"><div>Thanks, the printer works again after the firmware update.</div>`},
			notHTML: []string{"Alice Example", "gmail_signature", "gmail_quote", "Hello Alice", "-- </span>"},
		},
		{
			file:    "outlook-desktop.eml",
			text:    "Hello,\n\nYes, Thursday at 10:00 works for us.\n\nKind regards\nCarol",
			html:    []string{"Yes, Thursday at 10:00 works for us.", "Carol<o:p></o:p></p>", "</div></div></body></html>"},
			notHTML: []string{"From:</b>", "Would Thursday", "border-top"},
		},
		{
			file:    "outlook-web.eml",
			text:    "Hi team,\n\nthe corrected invoice is attached. I will be out of office tomorrow.\n\nBest regards,\nBob Builder\nFinance | Example Ltd.",
			sig:     "Get Outlook for iOS<https://aka.ms/o0ukef>",
			html:    []string{"the corrected invoice is attached.", "Bob Builder", "</body></html>"},
			notHTML: []string{"divRplyFwdMsg", "could you send", "<hr"},
		},
		{
			file:    "thunderbird.eml",
			text:    "Hi,\n\nthe parcel arrived today – thank you!\n\nDave",
			sig:     "--\nDave Müller\nExample GmbH · Berlin",
			html:    []string{"<p>the parcel arrived today – thank you!</p>", "</body>\n</html>"},
			notHTML: []string{"moz-signature", "Dave Müller", "schrieb", "Your parcel has shipped", "blockquote"},
		},
	}
	for _, c := range cases {
		t.Run(c.file, func(t *testing.T) {
			f, err := os.Open(filepath.Join("testdata", "replies", c.file))
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			m, err := Parse(f, Options{})
			if err != nil {
				t.Fatal(err)
			}
			if len(m.Warnings) > 0 {
				t.Errorf("warnings: %q", m.Warnings)
			}
			if m.StrippedText != c.text {
				t.Errorf("stripped_text = %q, want %q", m.StrippedText, c.text)
			}
			if m.StrippedSignature != c.sig {
				t.Errorf("stripped_signature = %q, want %q", m.StrippedSignature, c.sig)
			}
			for _, s := range c.html {
				if !strings.Contains(m.StrippedHTML, s) {
					t.Errorf("stripped_html lacks %q:\n%s", s, m.StrippedHTML)
				}
			}
			for _, s := range c.notHTML {
				if strings.Contains(m.StrippedHTML, s) {
					t.Errorf("stripped_html holds %q:\n%s", s, m.StrippedHTML)
				}
			}
			if !strings.HasPrefix(m.HTML, m.StrippedHTML[:20]) {
				t.Errorf("stripped_html does not start like html: %q", m.StrippedHTML[:20])
			}
		})
	}
}

func TestStripSignature(t *testing.T) {
	for in, want := range map[string]string{
		"Hi\n\n-- \nBob":                                      "--\nBob",
		"Hi\n\nSent from my iPhone":                           "Sent from my iPhone",
		"Hi\n\nOn Mon, Bob wrote:\n> x\n-- \nQ":               "", // below the quote: not the reply's
		"Hi\n> quoted\n-- \nBob":                              "", // below a quoted line
		"Just text\nno signature":                             "",
		"Hi\n-- \nBob\n\n-----Original Message-----\nFrom: a": "--\nBob",
	} {
		if got := StripSignature(in); got != want {
			t.Errorf("StripSignature(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestStripHTML(t *testing.T) {
	for in, want := range map[string]string{
		"<p>plain</p>": "<p>plain</p>",
		`<div><p>new</p><blockquote type="cite"><div><p>old</p></div></blockquote><p>after</p></div>`: "<div><p>new</p><p>after</p></div>",
		`<div><p>new</p><div class="gmail_quote"><p>old</p></div><p>tail</p></div>`:                   "<div><p>new</p></div>",
		`<p>x<br/></p><div class="moz-signature"><img src="a.png"></div>`:                             "<p>x<br/></p>",
	} {
		if got := StripHTML(in); got != want {
			t.Errorf("StripHTML(%q) = %q, want %q", in, got, want)
		}
	}
}

func readReply(b *testing.B, name string) []byte {
	raw, err := os.ReadFile(filepath.Join("testdata", "replies", name))
	if err != nil {
		b.Fatal(err)
	}
	return raw
}

func BenchmarkParseGmailReply(b *testing.B) { benchParse(b, readReply(b, "gmail.eml")) }
func BenchmarkParseOutlookDesktopReply(b *testing.B) {
	benchParse(b, readReply(b, "outlook-desktop.eml"))
}

// BenchmarkStripHTMLQuoted is the worst case of StripHTML: 100 KB of HTML
// with the quote marker at the very end, so every token is copied.
func BenchmarkStripHTMLQuoted(b *testing.B) {
	var s strings.Builder
	for s.Len() < 100<<10 {
		s.WriteString(`<tr><td><h2>Story</h2><p>Lorem ipsum dolor sit amet, <b>consectetur</b> adipiscing &amp; more.</p><a href="https://example.com/s">Read</a></td></tr>` + "\n")
	}
	s.WriteString(`<div class="gmail_quote">old</div>`)
	html := s.String()
	b.SetBytes(int64(len(html)))
	for b.Loop() {
		StripHTML(html)
	}
}

// TestHasQuoteMarker: the anchored search finds every marker wherever it
// stands (first, last, overlapping near misses) exactly when
// strings.Contains does.
func TestHasQuoteMarker(t *testing.T) {
	fills := []string{"", "x", "moz-cit", "blockquot", "gmail", "-top", "<p>plain text</p>"}
	for _, m := range htmlQuoteMarkers {
		for _, before := range fills {
			for _, after := range fills {
				for _, s := range []string{before + m + after, before + m[:len(m)-1] + after, before + m[1:] + after} {
					want := false
					for _, x := range htmlQuoteMarkers {
						want = want || strings.Contains(s, x)
					}
					if got := hasQuoteMarker(s); got != want {
						t.Errorf("hasQuoteMarker(%q) = %v, want %v", s, got, want)
					}
				}
			}
		}
	}
	for _, m := range quoteMarkers {
		t.Logf("%s: searched at %q", m.s, m.s[m.k])
	}
}
