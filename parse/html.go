package parse

import (
	"regexp"
	"strings"

	"golang.org/x/net/html"
	"golang.org/x/net/html/atom"
)

// htmlTexts renders HTML as plain text from one parse of src, in full and
// without the quoted parts. Block elements become line breaks, list items
// get "- ", scripts and styles are dropped and white space is collapsed as a
// browser would. quoteless leaves out what mail clients mark as quoted in
// HTML: Gmail's gmail_quote, Yahoo's yahoo_quoted, Thunderbird's
// moz-cite-prefix and signature, Apple Mail's and Thunderbird's
// <blockquote type="cite">, and everything after Outlook's divRplyFwdMsg /
// appendonsend markers.
func htmlTexts(src string) (full, quoteless string) {
	doc, err := html.Parse(strings.NewReader(src))
	if err != nil {
		return "", ""
	}
	r := &htmlRenderer{}
	r.render(doc, 0)
	full = tidyText(r.b.String())
	if !r.sawQuote {
		// Nothing marked as quoted: the second rendering would be the same.
		return full, full
	}
	return full, renderText(doc, true)
}

func renderText(doc *html.Node, stripQuotes bool) string {
	r := &htmlRenderer{stripQuotes: stripQuotes}
	r.render(doc, 0)
	return tidyText(r.b.String())
}

type htmlRenderer struct {
	b           strings.Builder
	stripQuotes bool
	stopped     bool
	sawQuote    bool // an element quoteAction would strip was seen
	pre         int
	space       bool // a collapsed space is pending
}

var blockAtoms = map[atom.Atom]bool{
	atom.P: true, atom.Div: true, atom.Br: true, atom.Li: true, atom.Tr: true,
	atom.H1: true, atom.H2: true, atom.H3: true, atom.H4: true, atom.H5: true, atom.H6: true,
	atom.Blockquote: true, atom.Hr: true, atom.Table: true, atom.Ul: true, atom.Ol: true,
	atom.Pre: true, atom.Section: true, atom.Article: true, atom.Header: true, atom.Footer: true,
	atom.Dl: true, atom.Dt: true, atom.Dd: true, atom.Address: true, atom.Center: true,
}

func attr(n *html.Node, key string) string {
	for _, a := range n.Attr {
		if a.Key == key {
			return a.Val
		}
	}
	return ""
}

func hasClass(n *html.Node, class string) bool {
	return hasWord(attr(n, "class"), class)
}

// hasWord reports whether the space-separated list s holds w, without
// splitting s (this runs for every element of the document).
func hasWord(s, w string) bool {
	for from := 0; ; {
		i := strings.Index(s[from:], w)
		if i < 0 {
			return false
		}
		i += from
		end := i + len(w)
		if (i == 0 || isHTMLSpace(rune(s[i-1]))) && (end == len(s) || isHTMLSpace(rune(s[end]))) {
			return true
		}
		from = i + 1
	}
}

// quoteAction says what stripping does with an element: 0 keep, 1 skip the
// element, 2 skip it and everything after it.
func quoteAction(n *html.Node) int {
	if len(n.Attr) == 0 {
		return 0 // most elements: every marker is an attribute
	}
	if n.DataAtom == atom.Blockquote && (attr(n, "type") == "cite" || hasClass(n, "gmail_quote")) {
		return 1
	}
	if hasClass(n, "gmail_quote") || hasClass(n, "gmail_quote_container") || hasClass(n, "yahoo_quoted") ||
		attr(n, "id") == "divRplyFwdMsg" || attr(n, "id") == "appendonsend" || attr(n, "id") == "stopSpelling" {
		return 2
	}
	if hasClass(n, "moz-cite-prefix") || hasClass(n, "moz-signature") || hasClass(n, "gmail_signature") ||
		attr(n, "data-smartmail") == "gmail_signature" || hasClass(n, "gmail_extra") {
		return 1
	}
	return 0
}

// render walks the tree iteratively in depth where it can; depth is bounded
// by the HTML parser's own nesting limit.
func (r *htmlRenderer) render(n *html.Node, depth int) {
	if r.stopped || depth > 512 {
		return
	}
	switch n.Type {
	case html.TextNode:
		r.text(n.Data)
		return
	case html.CommentNode, html.DoctypeNode:
		return
	case html.ElementNode:
		switch n.DataAtom {
		case atom.Script, atom.Style, atom.Head, atom.Title, atom.Template, atom.Noscript:
			return
		case atom.Img:
			return
		}
		switch a := quoteAction(n); {
		case a != 0 && !r.stripQuotes:
			r.sawQuote = true
		case a == 1:
			return
		case a == 2:
			r.stopped = true
			return
		}
	}
	block := n.Type == html.ElementNode && blockAtoms[n.DataAtom]
	if block {
		r.newline()
	}
	if n.DataAtom == atom.Li {
		r.b.WriteString("- ")
	}
	if n.DataAtom == atom.Pre {
		r.pre++
	}
	if n.DataAtom == atom.Td || n.DataAtom == atom.Th {
		r.space = r.b.Len() > 0
	}
	start := r.b.Len()
	for c := n.FirstChild; c != nil; c = c.NextSibling {
		r.render(c, depth+1)
	}
	if n.DataAtom == atom.A && !r.stopped {
		// A link's target follows its text, as plain-text mail shows
		// it, unless the text is the target already.
		href := strings.TrimSpace(attr(n, "href"))
		if (strings.HasPrefix(href, "http://") || strings.HasPrefix(href, "https://")) && len(href) < 2048 &&
			!strings.Contains(r.b.String()[start:], href) && r.b.Len() > start {
			r.word("<" + href + ">")
			r.space = false
		}
	}
	if n.DataAtom == atom.Pre {
		r.pre--
	}
	if n.DataAtom == atom.P || n.DataAtom == atom.Blockquote || (n.DataAtom >= atom.H1 && isHeading(n.DataAtom)) {
		r.newline()
		r.b.WriteByte('\n')
	} else if block {
		r.newline()
	}
}

func isHeading(a atom.Atom) bool {
	switch a {
	case atom.H1, atom.H2, atom.H3, atom.H4, atom.H5, atom.H6:
		return true
	}
	return false
}

func (r *htmlRenderer) newline() {
	r.space = false
	s := r.b.String()
	if len(s) > 0 && s[len(s)-1] != '\n' {
		r.b.WriteByte('\n')
	}
}

func (r *htmlRenderer) text(s string) {
	if r.pre > 0 {
		r.b.WriteString(s)
		return
	}
	start := -1
	for i := 0; i <= len(s); i++ {
		if i == len(s) || isHTMLSpace(rune(s[i])) {
			if start >= 0 {
				r.word(s[start:i])
				start = -1
			}
			if i < len(s) {
				r.space = true
			}
		} else if start < 0 {
			start = i
		}
	}
}

func (r *htmlRenderer) word(w string) {
	if (r.space || strings.HasPrefix(w, "<http")) && !endsWithNewline(&r.b) {
		r.b.WriteByte(' ')
	}
	r.space = false
	r.b.WriteString(strings.ReplaceAll(w, "\u00a0", " "))
}

func isHTMLSpace(c rune) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f'
}

func endsWithNewline(b *strings.Builder) bool {
	s := b.String()
	return len(s) == 0 || s[len(s)-1] == '\n'
}

var blankLinesRE = regexp.MustCompile(`\n{3,}`)

// tidyText trims trailing spaces on lines and collapses runs of blank lines.
func tidyText(s string) string {
	lines := strings.Split(s, "\n")
	for i, l := range lines {
		lines[i] = strings.TrimRight(l, " \t")
	}
	s = strings.Join(lines, "\n")
	s = blankLinesRE.ReplaceAllString(s, "\n\n")
	return strings.TrimSpace(s)
}
