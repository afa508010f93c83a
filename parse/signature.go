package parse

import (
	"bytes"
	"strings"
	"unicode/utf8"

	"golang.org/x/net/html"
	"golang.org/x/net/html/atom"
)

// The reply's signature and HTML (the webhook's stripped_signature and
// stripped_html, as Mailgun sends them). They use the markers StripReply
// and the HTML renderer know (strip.go, html.go), so the three agree on
// where the reply ends.

// maxSignatureLines bounds a signature: past that many lines after its
// separator the rest is not taken as signature.
const maxSignatureLines = 15

// isSignatureStart reports whether line starts a signature: the RFC 3676
// §4.3 separator "-- " (also with its space lost, or as an em dash) or a
// "Sent from my …" line.
func isSignatureStart(line string) bool {
	if line == "-- " {
		return true
	}
	t := strings.TrimSpace(line)
	if t == "" || len(t) >= 70 {
		return false
	}
	if utf8.RuneCountInString(t) != len(t) { // a no-break space, maybe
		t = strings.TrimSpace(unicodeSpaces.Replace(t))
	}
	return t == "--" || t == "—" || t != "" && len(t) < 60 && isSentFrom(t)
}

// StripSignature returns the signature of a reply's text: from its
// separator line ("-- ", RFC 3676 §4.3, or "Sent from my …") to the start of
// the quoted message, at most maxSignatureLines lines, separator included;
// "" when the new part of the reply has no signature. It looks where
// StripReply looks (the first 64 KiB), and only at the lines before the
// first quoted line: a signature below the quote is not the reply's.
func StripSignature(text string) string {
	if strings.Contains(text, "\r") {
		text = strings.ReplaceAll(strings.ReplaceAll(text, "\r\n", "\n"), "\r", "\n")
	}
	lines := strings.Split(text, "\n")
	start, scanned := -1, 0
	for i, l := range lines {
		if scanned += len(l) + 1; scanned > maxStripScan || isQuoted(l) {
			return ""
		}
		if isSignatureStart(l) {
			start = i
			break
		}
	}
	if start < 0 {
		return ""
	}
	// The quote must not start above the separator (then the separator
	// belongs to the quoted message).
	for i := 0; i < start; i++ {
		if _, ok := cutAt(lines, i); ok {
			return ""
		}
	}
	end := start + 1
	for ; end < len(lines) && end <= start+maxSignatureLines; end++ {
		if isQuoted(lines[end]) {
			break
		}
		if c, ok := cutAt(lines, end); ok && !isSignatureStart(lines[end]) {
			end = max(c, start+1)
			break
		}
	}
	sig := lines[start:min(end, len(lines))]
	for len(sig) > 0 && strings.TrimSpace(sig[len(sig)-1]) == "" {
		sig = sig[:len(sig)-1]
	}
	for i := range sig {
		sig[i] = strings.TrimRight(sig[i], " \t")
	}
	return strings.Join(sig, "\n")
}

// htmlQuoteMarkers are substrings one of which an HTML body must hold for
// StripHTML to have anything to strip; without any it is returned as it is,
// without tokenizing.
var htmlQuoteMarkers = []string{"gmail_", "moz-cite-prefix", "moz-signature", "blockquote", "BLOCKQUOTE", "Blockquote",
	"divRplyFwdMsg", "appendonsend", "stopSpelling", "yahoo_quoted", "border-top", "BORDER-TOP"}

// quoteMarkers are htmlQuoteMarkers, each with the offset of its rarest
// byte in mail HTML (by rareBytes). Searched for first, with IndexByte, it
// finds a marker whose first letter is common ("moz-", "div…", "append…")
// several times faster than strings.Contains, which stops at every
// occurrence of that letter: a 4 MB HTML body holds none in 2.5 ms rather
// than 8.8 ms.
var quoteMarkers = func() []anchoredMarker {
	const rareBytes = "zqQjJxXZ_VKYWUFRSGMPp-" // rarest first
	out := make([]anchoredMarker, len(htmlQuoteMarkers))
	for i, m := range htmlQuoteMarkers {
		k, best := 0, len(rareBytes)
		for j := 0; j < len(m); j++ {
			if x := strings.IndexByte(rareBytes, m[j]); x >= 0 && x < best {
				best, k = x, j
			}
		}
		out[i] = anchoredMarker{m, k}
	}
	return out
}()

type anchoredMarker struct {
	s string
	k int // the offset of the byte searched for
}

// hasQuoteMarker reports whether src holds one of htmlQuoteMarkers.
func hasQuoteMarker(src string) bool {
	for _, m := range quoteMarkers {
		c := m.s[m.k]
		for i := m.k; i < len(src); i++ {
			j := strings.IndexByte(src[i:], c)
			if j < 0 {
				break
			}
			i += j
			if strings.HasPrefix(src[i-m.k:], m.s) {
				return true
			}
		}
	}
	return false
}

// voidElements have no end tag (HTML Living Standard §13.1.2).
var voidElements = map[atom.Atom]bool{atom.Area: true, atom.Base: true, atom.Br: true, atom.Col: true, atom.Embed: true,
	atom.Hr: true, atom.Img: true, atom.Input: true, atom.Link: true, atom.Meta: true, atom.Param: true,
	atom.Source: true, atom.Track: true, atom.Wbr: true}

// StripHTML returns an HTML body without what mail clients mark as the
// quoted message or the signature (the elements the text rendering leaves
// out, see quoteAction, and Outlook desktop's top-bordered header block):
// skipped elements are left out whole, and at a marker that starts the
// quoted message everything after it is left out and the elements still
// open are closed. The rest is kept byte for byte. It tokenizes the HTML
// once, without building a tree.
func StripHTML(src string) string {
	if !hasQuoteMarker(src) {
		return src
	}
	z := html.NewTokenizer(strings.NewReader(src))
	var b strings.Builder
	b.Grow(len(src))
	var openNames []string  // elements open in the output, closed at a cut
	skip, skipName := 0, "" // nesting depth inside a skipped element
	n := &html.Node{Type: html.ElementNode}
	for {
		tt := z.Next()
		switch tt {
		case html.ErrorToken:
			return b.String()
		case html.StartTagToken, html.SelfClosingTagToken:
			raw := z.Raw()
			// Most tags hold no marker: they are copied without reading
			// their attributes.
			marked := skip == 0 && containsAnyBytes(raw, htmlQuoteMarkerBytes)
			if skip == 0 && !marked {
				b.Write(raw)
			} else {
				raw = append([]byte(nil), raw...) // TagName and TagAttr may change it
			}
			name, more := z.TagName()
			if skip > 0 {
				if tt == html.StartTagToken && string(name) == skipName {
					skip++
				}
				continue
			}
			n.DataAtom, n.Attr = atom.Lookup(name), n.Attr[:0]
			if n.DataAtom != 0 {
				n.Data = n.DataAtom.String() // no allocation
			} else {
				n.Data = string(name)
			}
			void := tt == html.SelfClosingTagToken || voidElements[n.DataAtom]
			if !marked {
				if !void {
					openNames = append(openNames, n.Data)
				}
				continue
			}
			for more {
				var k, v []byte
				k, v, more = z.TagAttr()
				switch string(k) {
				case "class", "id", "style", "type", "data-smartmail": // what stripAction reads
					n.Attr = append(n.Attr, html.Attribute{Key: string(k), Val: string(v)})
				}
			}
			switch stripAction(n) {
			case 1:
				if !void {
					skip, skipName = 1, n.Data
				}
				continue
			case 2:
				for i := len(openNames) - 1; i >= 0; i-- {
					b.WriteString("</" + openNames[i] + ">")
				}
				return b.String()
			}
			b.Write(raw)
			if !void {
				openNames = append(openNames, n.Data)
			}
		case html.EndTagToken:
			name, _ := z.TagName()
			if skip > 0 {
				if string(name) == skipName {
					skip--
				}
				continue
			}
			b.Write(z.Raw())
			for i := len(openNames) - 1; i >= 0; i-- {
				if openNames[i] == string(name) {
					openNames = openNames[:i]
					break
				}
			}
		default:
			if skip == 0 {
				b.Write(z.Raw())
			}
		}
	}
}

// stripAction is quoteAction (0 keep, 1 skip the element, 2 cut from it
// on) with two more markers: Gmail's "-- " before the signature, and the
// header block Outlook desktop (Word HTML) puts above the quoted message,
// a div with a top border and no id or class to tell it by.
func stripAction(n *html.Node) int {
	if a := quoteAction(n); a != 0 {
		return a
	}
	if hasClass(n, "gmail_signature_prefix") {
		return 1
	}
	if n.DataAtom == atom.Div {
		st := strings.ToLower(strings.ReplaceAll(attr(n, "style"), " ", ""))
		if strings.Contains(st, "border-top:solid") && strings.Contains(st, "padding:3.0pt0") {
			return 2
		}
	}
	return 0
}

var htmlQuoteMarkerBytes = func() [][]byte {
	b := make([][]byte, len(htmlQuoteMarkers))
	for i, m := range htmlQuoteMarkers {
		b[i] = []byte(m)
	}
	return b
}()

func containsAnyBytes(s []byte, subs [][]byte) bool {
	for _, x := range subs {
		if bytes.Contains(s, x) {
			return true
		}
	}
	return false
}
