package parse

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"mime/quotedprintable"
	"strings"
	"testing"

	"golang.org/x/text/encoding"
	"golang.org/x/text/encoding/charmap"
	"golang.org/x/text/encoding/japanese"
	"golang.org/x/text/encoding/korean"
	"golang.org/x/text/encoding/simplifiedchinese"
	"golang.org/x/text/encoding/traditionalchinese"
)

// One sample per charset family, in text the charset can encode.
var charsetCases = []struct {
	name string
	enc  encoding.Encoding
	text string
}{
	{"iso-8859-1", charmap.ISO8859_1, "Grüße, ça coûte 5 £ à Ørsted"},
	{"iso-8859-2", charmap.ISO8859_2, "Zażółć gęślą jaźń, Příliš žluťoučký kůň"},
	{"iso-8859-5", charmap.ISO8859_5, "Съешь же ещё этих мягких булок"},
	{"iso-8859-7", charmap.ISO8859_7, "Ξεσκεπάζω την ψυχοφθόρα βδελυγμία"},
	{"iso-8859-9", charmap.ISO8859_9, "Pijamalı hasta yağız şoföre çabucak güvendi"},
	{"iso-8859-15", charmap.ISO8859_15, "Le cœur déçu mais l'âme plutôt naïve, 10 €"},
	{"windows-1250", charmap.Windows1250, "Příliš žluťoučký kůň úpěl ďábelské ódy „ok“"},
	{"windows-1251", charmap.Windows1251, "Широкая электрификация южных губерний — «да»"},
	{"windows-1252", charmap.Windows1252, "“Smart quotes” – and € and œ"},
	{"windows-1253", charmap.Windows1253, "Γαζέες και μυρτιές"},
	{"windows-1254", charmap.Windows1254, "Şişli'de ağır ıslak çöp"},
	{"windows-1256", charmap.Windows1256, "نص حكيم له سر قاطع"},
	{"koi8-r", charmap.KOI8R, "В чащах юга жил бы цитрус? Да, но фальшивый экземпляр!"},
	{"koi8-u", charmap.KOI8U, "Чуєш їх, доцю, га? Кумедна ж ти, прощайся без ґольфів!"},
	{"shift_jis", japanese.ShiftJIS, "いろはにほへと ちりぬるを 日本語のメール"},
	{"euc-jp", japanese.EUCJP, "色は匂へど散りぬるを"},
	{"iso-2022-jp", japanese.ISO2022JP, "お問い合わせありがとうございます"},
	{"gb18030", simplifiedchinese.GB18030, "我能吞下玻璃而不伤身体"},
	{"gbk", simplifiedchinese.GBK, "电子邮件网关"},
	{"gb2312", simplifiedchinese.HZGB2312, "你好"},
	{"big5", traditionalchinese.Big5, "我能吞下玻璃而不傷身體"},
	{"euc-kr", korean.EUCKR, "다람쥐 헌 쳇바퀴에 타고파"},
}

func TestCharsets(t *testing.T) {
	for _, tc := range charsetCases {
		t.Run(tc.name, func(t *testing.T) {
			if tc.name == "gb2312" {
				// HZ is its own label; GB2312 mail is decoded as GBK.
				tc.enc = simplifiedchinese.GBK
			}
			raw, err := tc.enc.NewEncoder().String(tc.text)
			if err != nil {
				t.Fatalf("encode: %v", err)
			}
			for _, cte := range []string{"8bit", "quoted-printable", "base64"} {
				if tc.name == "iso-2022-jp" && cte == "8bit" {
					cte = "7bit"
				}
				var body string
				switch cte {
				case "quoted-printable":
					var b bytes.Buffer
					w := quotedprintable.NewWriter(&b)
					w.Write([]byte(raw + "\r\n"))
					w.Close()
					body = b.String()
				case "base64":
					body = base64.StdEncoding.EncodeToString([]byte(raw+"\r\n")) + "\r\n"
				default:
					body = raw + "\r\n"
				}
				// One encoded word each, as RFC 2047 §5 requires for
				// multibyte charsets (no character split across words).
				subject := "=?" + tc.name + "?B?" + base64.StdEncoding.EncodeToString([]byte(raw)) + "?="
				name := "=?" + tc.name + "?Q?" + qEncode(raw) + "?="
				msg := "From: " + name + " <sender@example.com>\r\n" +
					"Subject: " + subject + "\r\n" +
					"Content-Type: multipart/mixed; boundary=b\r\n\r\n" +
					"--b\r\nContent-Type: text/plain; charset=\"" + strings.ToUpper(tc.name) + "\"\r\nContent-Transfer-Encoding: " + cte + "\r\n\r\n" + body +
					"--b\r\nContent-Type: text/html; charset=" + tc.name + "\r\nContent-Transfer-Encoding: " + cte + "\r\n\r\n" + body +
					"--b\r\nContent-Type: text/plain; charset=" + tc.name + "\r\nContent-Disposition: attachment; filename=note.txt\r\nContent-Transfer-Encoding: " + cte + "\r\n\r\n" + body +
					"--b--\r\n"
				m := parseString(t, msg)
				if strings.TrimSpace(m.Text) != tc.text {
					t.Errorf("%s: text = %q, want %q", cte, m.Text, tc.text)
				}
				if strings.TrimSpace(m.HTML) != tc.text {
					t.Errorf("%s: html = %q, want %q", cte, m.HTML, tc.text)
				}
				if m.Subject != tc.text {
					t.Errorf("%s: subject = %q, want %q", cte, m.Subject, tc.text)
				}
				if m.From == nil || m.From.Name != tc.text {
					t.Errorf("%s: from = %+v, want name %q", cte, m.From, tc.text)
				}
				if len(m.Attachments) != 1 {
					t.Fatalf("%s: attachments = %+v", cte, m.Attachments)
				}
				a := m.Attachments[0]
				content, _ := base64.StdEncoding.DecodeString(a.Content)
				if a.Charset != tc.name || strings.TrimSpace(string(content)) != tc.text {
					t.Errorf("%s: attachment charset %q content %q, want %q %q", cte, a.Charset, content, tc.name, tc.text)
				}
				if len(m.Warnings) != 0 {
					t.Errorf("%s: warnings = %q", cte, m.Warnings)
				}
			}
		})
	}
}

func TestSplitEncodedWords(t *testing.T) {
	// A Shift_JIS character split across two B words, and a GBK one
	// across two Q words: not allowed (RFC 2047 §5), but sent.
	sjis := mustEncode(japanese.ShiftJIS, "日本語の件名")
	gbk := mustEncode(simplifiedchinese.GBK, "你好")
	b64 := func(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }
	subject := "=?shift_jis?B?" + b64(sjis[:5]) + "?= =?shift_jis?B?" + b64(sjis[5:]) + "?="
	from := "=?gbk?Q?" + qEncode(gbk[:1]) + "?=\r\n =?gbk?Q?" + qEncode(gbk[1:]) + "?= <li@example.cn>"
	m := parseString(t, "Subject: "+subject+"\r\nFrom: "+from+"\r\n\r\nx")
	if m.Subject != "日本語の件名" {
		t.Errorf("subject = %q", m.Subject)
	}
	if m.From == nil || m.From.Name != "你好" {
		t.Errorf("from = %+v", m.From)
	}
	if got := m.Header("Subject"); got != "日本語の件名" {
		t.Errorf("headers subject = %q", got)
	}
	// Words in different charsets, or separated by text, stay apart.
	for in, want := range map[string]string{
		"=?utf-8?Q?a?= =?utf-8?Q?b?=":       "=?utf-8?Q?a?= =?utf-8?Q?b?=",
		"=?gbk?Q?a?= x =?gbk?Q?b?=":         "=?gbk?Q?a?= x =?gbk?Q?b?=",
		"=?gbk?Q?a?= =?big5?Q?b?=":          "=?gbk?Q?a?= =?big5?Q?b?=",
		"pre =?gbk?Q?a?=  =?GBK?q?b?= post": "pre =?gbk?Q?ab?= post",
	} {
		if got, _ := mergeWords(in); got != want {
			t.Errorf("mergeWords(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestWrongCharsets(t *testing.T) {
	latin1, _ := charmap.ISO8859_1.NewEncoder().String("Grüße aus Köln")
	for _, tc := range []struct {
		name, msg, want, warn string
	}{
		{"latin-1 declared utf-8", "Content-Type: text/plain; charset=utf-8\r\n\r\n" + latin1, "Grüße aus Köln", "invalid"},
		{"latin-1 undeclared", "Subject: x\r\n\r\n" + latin1, "Grüße aus Köln", "invalid"},
		{"utf-8 declared us-ascii", "Content-Type: text/plain; charset=us-ascii\r\n\r\nGrüße aus Köln", "Grüße aus Köln", ""},
		{"utf-8 with a stray byte", "Content-Type: text/plain; charset=utf-8\r\n\r\nGrüße aus Köln \xff", "Grüße aus Köln \uFFFD", "invalid"},
		{"unknown charset", "Content-Type: text/plain; charset=x-unknown-42\r\n\r\nplain ascii", "plain ascii", "unknown charset"},
		{"charset=charset=", "Content-Type: text/plain; charset=\"charset=iso-8859-1\"\r\n\r\n" + latin1, "Grüße aus Köln", ""},
		{"html meta charset", "Content-Type: text/html\r\n\r\n<meta charset=\"iso-8859-2\"><p>" + mustEncode(charmap.ISO8859_2, "Zażółć") + "</p>", "Zażółć", ""},
		{"windows-1252 labelled iso-8859-1", "Content-Type: text/plain; charset=iso-8859-1\r\n\r\n\x93quoted\x94 \x96 10 \x80", "“quoted” – 10 €", ""},
		{"8-bit header in body charset", "Subject: " + latin1 + "\r\nContent-Type: text/plain; charset=iso-8859-1\r\n\r\nx", "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := parseString(t, tc.msg)
			got := m.Text
			if tc.want == "" {
				got, tc.want = m.Subject, "Grüße aus Köln"
			}
			if !strings.Contains(got, tc.want) {
				t.Errorf("text = %q, want %q", got, tc.want)
			}
			if tc.warn != "" && !strings.Contains(strings.Join(m.Warnings, "\n"), tc.warn) {
				t.Errorf("warnings = %q, want %q", m.Warnings, tc.warn)
			}
		})
	}
}

// qEncode is RFC 2047 §4.2 Q encoding for use in a phrase (§5 (3)).
func qEncode(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == ' ':
			b.WriteByte('_')
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '!', c == '*', c == '+', c == '-', c == '/':
			b.WriteByte(c)
		default:
			b.WriteString(fmt.Sprintf("=%02X", c))
		}
	}
	return b.String()
}

func mustEncode(e encoding.Encoding, s string) string {
	out, err := e.NewEncoder().String(s)
	if err != nil {
		panic(err)
	}
	return out
}

// TestNormalizeNewlinesBytes: the in-place rewrite agrees with the string
// one.
func TestNormalizeNewlinesBytes(t *testing.T) {
	for _, s := range []string{"", "a", "\r", "\n", "\r\n", "\r\r\n", "\n\r", "a\r\nb\rc\n", "\r\n\r\n\r", "é\r\nü\r"} {
		if got, want := string(normalizeNewlinesBytes([]byte(s))), normalizeNewlines(s); got != want {
			t.Errorf("normalizeNewlinesBytes(%q) = %q, want %q", s, got, want)
		}
	}
}

// TestHTMLUTF16LineEnds: line ends of an undeclared UTF-16 HTML body are
// read after decoding (its CR is two bytes), and become "\n".
func TestHTMLUTF16LineEnds(t *testing.T) {
	src := "<html><body><pre>one\r\ntwo\rthree</pre></body></html>"
	var u16 bytes.Buffer
	u16.WriteString("\xff\xfe") // UTF-16LE BOM
	for _, r := range src {
		u16.WriteByte(byte(r))
		u16.WriteByte(0)
	}
	raw := "Content-Type: text/html\r\nContent-Transfer-Encoding: base64\r\n\r\n" +
		base64.StdEncoding.EncodeToString(u16.Bytes()) + "\r\n"
	m := parseString(t, raw)
	// (The decoder keeps the BOM as U+FEFF; only the line ends are checked.)
	if want := "<pre>one\ntwo\nthree</pre>"; !strings.Contains(m.HTML, want) || strings.Contains(m.HTML, "\r") {
		t.Errorf("HTML = %q, want it to hold %q and no CR", m.HTML, want)
	}
	if want := "one\ntwo\nthree"; !strings.HasSuffix(m.Text, want) || strings.Contains(m.Text, "\r") {
		t.Errorf("Text = %q, want it to end in %q and hold no CR", m.Text, want)
	}
}
