package parse

import (
	"encoding/binary"
	"regexp"
	"strings"
	"unicode/utf8"
)

// Reply stripping. A reply is cut at the first line that starts the quoted
// message or a signature, and any remaining ">" quoted lines are dropped.
// The markers below are the ones the common clients write, in the languages
// they are most used in.

// attributionRules match an attribution line ("On … wrote:") as Gmail,
// Apple Mail, Thunderbird, Yahoo and Outlook write it; long ones are matched
// after joining up to three wrapped lines. Each expression is tried only on
// lines holding one of its words, which keeps the cost low on long text.
var attributionRules = []struct {
	words []string
	re    *regexp.Regexp
}{
	{[]string{"wrote"}, attribution(`.+\swrote`)},
	{[]string{"writes", "said"}, attribution(`on\s.+\s(?:writes|said)`)},
	// German, Dutch and Swedish put the verb before the name.
	{[]string{"schrieb"}, attribution(`(?:am\s.+\sschrieb(?:\s.*)?|.+\sschrieb)`)},
	{[]string{"schreef", "geschreven"}, attribution(`(?:op\s.+\s(?:schreef|geschreven)(?:\s.*)?|.+\s(?:schreef|geschreven))`)},
	{[]string{"skrev"}, attribution(`(?:(?:den|på)\s.+\sskrev(?:\s.*)?|.+\sskrev)`)},
	{[]string{"écrit"}, attribution(`.+\sa\s+écrit`)},
	{[]string{"escribió"}, attribution(`.+\sescribió`)},
	{[]string{"scritto"}, attribution(`.+\sha\s+scritto`)},
	{[]string{"escreveu"}, attribution(`.+\sescreveu`)},
	{[]string{"napisa"}, attribution(`.+\snapisał(?:a|\(a\))?`)},
	{[]string{"написал", "пишет"}, attribution(`.+\s(?:написала|написал\(а\)|написал|пишет)`)},
	{[]string{"書きました"}, attribution(`.+書きました`)},
	{[]string{"写道", "寫道", "来信", "來信"}, attribution(`.*(?:写道|寫道|來信|来信)`)},
}

// attribution compiles an attribution expression: optional leading dashes
// (Yahoo's "--- On …"), the body, and a final colon (ASCII or full width).
func attribution(body string) *regexp.Regexp {
	return regexp.MustCompile(`(?i)^(?:-+\s*)?(?:` + body + `)\s*[:：]\s*$`)
}

// isAttribution reports whether s (trimmed, ending in a colon) is an
// attribution line.
func isAttribution(s string) bool {
	lower := strings.ToLower(s)
	for _, rule := range attributionRules {
		for _, w := range rule.words {
			if strings.Contains(lower, w) {
				if rule.re.MatchString(s) {
					return true
				}
				break
			}
		}
	}
	return false
}

// separatorRE matches the lines that introduce a quoted or forwarded
// message in Outlook, Thunderbird, Yahoo and Apple Mail.
var separatorRE = newLeadRE("-abdipvн転转", `(?i)^\s*(?:`+
	`-{2,}\s*(?:original message|original-nachricht|ursprüngliche nachricht|message d'origine|message original|mensaje original|messaggio originale|mensagem original|oorspronkelijk bericht|origineel bericht|ursprungligt meddelande|originalmeddelande|wiadomość oryginalna|oryginalna wiadomość|исходное сообщение|元のメッセージ|原始邮件|原始郵件|原邮件|`+
	`forwarded message|weitergeleitete nachricht|message transféré|mensaje reenviado|messaggio inoltrato|mensagem encaminhada|doorgestuurd bericht|vidarebefordrat meddelande|przekazana wiadomość|wiadomość przekazana|пересылаемое сообщение|転送されたメッセージ|转发的邮件|轉寄的郵件)\s*-{2,}|`+
	`begin forwarded message:|anfang der weitergeleiteten (?:nachricht|e-mail):|début du message (?:réexpédié|transféré)\s*:|inicio del mensaje reenviado:|inizio messaggio inoltrato:|início da mensagem reencaminhada:|begin doorgestuurd bericht:|vidarebefordrat brev:|początek przekazywanej wiadomości:|начало переадресованного сообщения:|転送されたメッセージ:|转发的邮件：?`+
	`)\s*$`)

// fromLabelRE matches the first line of an Outlook-style header block
// ("From: …" followed by "Sent:", "To:", "Subject:" lines), bold or not.
var fromLabelRE = newLeadRE("*fvdoо差发寄發", `(?i)^\s*\*?(?:from|von|de|da|van|från|fra|od|от|差出人|发件人|寄件者|發件人)\s*\*?\s*[:：]\s*\*?\s*\S`)

// headerLabelRE matches the other lines of such a block.
var headerLabelRE = newLeadRE("*sdtcgbaeàoifpväkwкотд送宛件日发收主抄寄時", `(?i)^\s*\*?(?:sent|date|to|cc|subject|gesendet|datum|an|betreff|envoyé|date|à|a|objet|enviado|fecha|para|asunto|inviato|data|oggetto|assunto|verzonden|aan|onderwerp|skickat|till|ämne|kopia|wysłano|do|temat|отправлено|дата|кому|тема|копия|送信日時|宛先|件名|日付|发送时间|收件人|主题|日期|抄送|寄件日期|收件者|主旨|時間)\s*\*?\s*[:：]`)

// oneLineHeaderRE matches an Outlook header block flattened to one line.
var oneLineHeaderRE = regexp.MustCompile(`(?i)^\s*\*?from\s*:.+\s(?:sent|date)\s*:.+\ssubject\s*:`)

// sentFromRE matches the "Sent from my …" lines mobile clients append.
var sentFromRE = newLeadRE("sgveiwо发从寄", `(?i)^\s*(?:`+
	`sent from (?:my|mail for|outlook|yahoo mail|samsung|proton mail|the)\b.*|get outlook for \S+.*|sent with (?:proton ?mail|spark|airmail|blue ?mail|superhuman|newton)\b.*|`+
	`von meinem .+ gesendet|gesendet von (?:meinem|mobil).*|gesendet mit (?:der|dem|meinem) .+ app|`+
	`envoyé de mon .+|envoyé depuis (?:mon|l'application).*|`+
	`enviado desde mi .+|enviado desde (?:outlook|yahoo|correo|gmail)\b.*|`+
	`inviato da .+|`+
	`enviado do meu .+|enviado a partir do .+|`+
	`verzonden (?:vanaf|met) mijn .+|verstuurd vanaf mijn .+|`+
	`skickat från min .+|skickades från min .+|`+
	`wysłane z (?:mojego|mojej|aplikacji) .+|`+
	`отправлено с(?:о)? .+|отправлено из .+|`+
	`发自我的.+|从我的.+发送|寄自我的.+`+
	`)\s*$`)

// sentFromJapaneseRE is the one "Sent from" form that ends rather than
// starts with its words ("iPhoneから送信").
var sentFromJapaneseRE = regexp.MustCompile(`^\s*.+から送信\s*$`)

// isSentFrom reports whether the line is a "Sent from my …" line.
func isSentFrom(l string) bool {
	return sentFromRE.MatchString(l) || strings.Contains(l, "から送信") && sentFromJapaneseRE.MatchString(l)
}

var underscoreRE = regexp.MustCompile(`^\s*_{10,}\s*$`)

// unicodeSpaces maps the no-break and thin spaces clients put in
// attributions (French before a colon, Gmail before AM/PM) to a space, so
// the expressions' \s matches them.
var unicodeSpaces = strings.NewReplacer("\u00a0", " ", "\u202f", " ", "\u2009", " ", "\u2007", " ", "\u3000", " ")

// plainSpaces is unicodeSpaces.Replace(s), skipped for ASCII lines (most
// lines): the replacer costs more than the check.
func plainSpaces(s string) string {
	i := 0
	for ; i+8 <= len(s); i += 8 {
		if binary.LittleEndian.Uint64([]byte(s[i:i+8]))&0x8080808080808080 != 0 {
			return unicodeSpaces.Replace(s)
		}
	}
	for ; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return unicodeSpaces.Replace(s)
		}
	}
	return s
}

// maxStripScan is how much text StripReply searches for the start of the
// quoted part.
const maxStripScan = 64 << 10

// StripReply returns the new part of a reply: text cut at the first
// attribution line ("On … wrote:" and its translations), Outlook header
// block or "-----Original Message-----" separator, signature separator
// ("-- ", RFC 3676 §4.3) or "Sent from my …" line, with ">" quoted lines
// removed and surrounding blank lines trimmed.
func StripReply(text string) string {
	return stripReply(text, nil)
}

// stripReply is StripReply; when work is not nil it adds to it the bytes of
// text looked at, which the tests compare across input sizes to show that
// the work grows linearly with the text.
func stripReply(text string, work *int) string {
	norm := normalizeNewlines(text)
	lines := strings.Split(norm, "\n")
	ls := replyLines{l: lines, work: work, colons: make([]uint8, len(lines))}
	cut := len(lines)
	scanned := 0
	for i := range lines {
		// The markers are looked for near the top only: the new part of a
		// reply is short, and the expressions cost time on hostile text.
		if scanned += len(lines[i]) + 1; scanned > maxStripScan {
			break
		}
		if isQuoted(ls.at(i)) {
			continue
		}
		if c, ok := ls.cutAt(i); ok {
			cut = c
			break
		}
	}
	if end, ok := keptAsIs(lines[:cut]); ok {
		// A start of the text: no copy (and the queues store it as its
		// length, deliver.StrippedPrefix).
		return norm[:end]
	}
	return joinKept(ls, cut)
}

// keptAsIs reports whether joinKept would give the lines back as they are
// (none quoted or ending in blanks, no blank line before the first
// non-blank one, no two blank lines in a row), and if so the length of
// the text they make without the blank lines that end it.
func keptAsIs(lines []string) (end int, ok bool) {
	off, blank := 0, 0
	for _, l := range lines {
		switch {
		case l == "":
			blank++
		case isQuoted(l) || l[len(l)-1] == ' ' || l[len(l)-1] == '\t':
			return 0, false
		default:
			if blank > 1 || blank > 0 && end == 0 {
				return 0, false
			}
			blank = 0
			end = off + len(l)
		}
		off += len(l) + 1
	}
	return end, true
}

// joinKept returns the lines before cut with ">" quoted lines removed,
// trailing blanks trimmed, blank lines before the first line and after the
// last removed, and runs of blank lines made one.
func joinKept(ls replyLines, cut int) string {
	lines := ls.l
	// What is kept is at most the lines before the cut: one allocation.
	size := 0
	for _, l := range lines[:cut] {
		size += len(l) + 1
	}
	var b strings.Builder
	b.Grow(size)
	blank := 0
	for i := range lines[:cut] {
		l := ls.at(i)
		if isQuoted(l) {
			continue
		}
		l = strings.TrimRight(l, " \t")
		if l == "" {
			blank++
			continue
		}
		if b.Len() > 0 {
			for range min(blank, 1) + 1 {
				b.WriteByte('\n')
			}
		}
		blank = 0
		b.WriteString(l)
	}
	return b.String()
}

// isQuoted reports whether l starts with ">" after spaces and tabs.
// (strings.TrimLeft builds its cutset's table on every call.)
func isQuoted(l string) bool {
	for i := 0; i < len(l); i++ {
		if l[i] != ' ' && l[i] != '\t' {
			return l[i] == '>'
		}
	}
	return false
}

// replyLines are the lines of a reply, read through at so that the work
// of looking at them can be counted.
type replyLines struct {
	l    []string
	work *int
	// colons, when not nil, remembers hasColon of each line (0 not yet
	// known, 1 no, 2 yes): cutAt asks it of a line and the two after.
	colons []uint8
}

// hasColonAt is hasColon(r.l[j]).
func (r replyLines) hasColonAt(j int) bool {
	if r.colons == nil {
		return hasColon(r.at(j))
	}
	if c := r.colons[j]; c != 0 {
		return c == 2
	}
	has := hasColon(r.at(j))
	r.colons[j] = 1
	if has {
		r.colons[j] = 2
	}
	return has
}

func (r replyLines) at(j int) string {
	if r.work != nil {
		*r.work += len(r.l[j]) + 1
	}
	return r.l[j]
}

// cutAt reports whether the quoted part or signature starts at line i, and
// the line to cut at (which may be an earlier separator line).
func cutAt(lines []string, i int) (int, bool) {
	return replyLines{l: lines}.cutAt(i)
}

func (r replyLines) cutAt(i int) (int, bool) {
	lines := r.l
	raw := r.at(i)
	t := strings.TrimSpace(plainSpaces(raw))
	if t == "" {
		return 0, false
	}
	// RFC 3676 §4.3 signature separator, also with its space lost.
	if raw == "-- " || t == "--" || t == "—" {
		return i, true
	}
	// Cheap checks first: the expressions are large and most lines are
	// plain text.
	short := len(t) < 120
	colon := r.hasColonAt(i) // t has the colons of raw
	// Every separator has a colon or dashes, but one Chinese form.
	separator := colon || strings.Contains(t, "--") || strings.Contains(t, "转发的邮件")
	if short && separator && separatorRE.MatchString(t) || len(t) < 60 && isSentFrom(t) {
		return i, true
	}
	if colon && len(t) < 1000 && (t[0] == 'F' || t[0] == 'f' || t[0] == '*') && oneLineHeaderRE.MatchString(t) {
		return i, true
	}
	if colon && len(t) < 500 && fromLabelRE.MatchString(t) && r.headerBlockFollows(i) {
		// Outlook puts a rule of underscores above the block.
		for j := i - 1; j >= 0 && j >= i-3; j-- {
			l := r.at(j)
			if underscoreRE.MatchString(l) {
				return j, true
			}
			if strings.TrimSpace(l) != "" {
				break
			}
		}
		return i, true
	}
	if t[0] == '_' && underscoreRE.MatchString(t) {
		for j := i + 1; j < len(lines) && j <= i+3; j++ {
			if fromLabelRE.MatchString(r.at(j)) {
				return i, true
			}
		}
	}
	// What follows needs a line ending in a colon among this one and the
	// two after it: most text has none.
	if !colon && !r.colonWithin(i+1, i+2) {
		return 0, false
	}
	// Attribution lines, possibly wrapped over up to three lines. Lines
	// are joined only when the last one ends in a colon: most do not.
	parts := [3]string{strings.TrimLeft(t, "*_ ")}
	n := len(parts[0])
	for k := 0; k < 3 && i+k < len(lines); k++ {
		if k > 0 {
			l := r.at(i + k)
			next := strings.TrimSpace(plainSpaces(l))
			if next == "" || isQuoted(l) {
				break
			}
			parts[k] = next
			n += 1 + len(next)
		}
		if n > 600 {
			break
		}
		last := k
		for last > 0 && strings.TrimRight(parts[last], "*_ ") == "" {
			last--
		}
		if endsInColon(strings.TrimRight(parts[last], "*_ ")) && isAttribution(strings.TrimRight(strings.Join(parts[:k+1], " "), "*_ ")) {
			return i, true
		}
	}
	// A line ending in a colon that names a date or an address, right
	// before a quoted block, is an attribution in any language (Gmail in
	// Russian or Japanese writes only the date and the sender).
	cand := [2]string{t}
	n = len(t)
	for k := 0; k < 2 && i+k < len(lines); k++ {
		if k > 0 {
			l := r.at(i + k)
			next := strings.TrimSpace(l)
			if next == "" || isQuoted(l) {
				break
			}
			cand[k] = next
			n += 1 + len(next)
		}
		if !endsInColon(cand[k]) || n > 400 || !(namesDateOrAddress(cand[0]) || namesDateOrAddress(cand[1])) {
			continue
		}
		for j := i + k + 1; j < len(lines) && j <= i+k+2; j++ {
			l := r.at(j)
			if isQuoted(l) {
				return i, true
			}
			if strings.TrimSpace(l) != "" {
				break
			}
		}
	}
	return 0, false
}

// colonWithin reports whether a line from i to j (those that exist) holds
// a colon.
func (r replyLines) colonWithin(i, j int) bool {
	for ; i <= j && i < len(r.l); i++ {
		if r.hasColonAt(i) {
			return true
		}
	}
	return false
}

// hasColon reports whether s holds an ASCII or a full-width colon.
// (strings.ContainsAny with a non-ASCII set walks s rune by rune.)
func hasColon(s string) bool {
	return strings.IndexByte(s, ':') >= 0 || strings.Contains(s, "：")
}

func endsInColon(s string) bool {
	return strings.HasSuffix(s, ":") || strings.HasSuffix(s, "：")
}

func namesDateOrAddress(s string) bool {
	return strings.Contains(s, "@") || strings.ContainsAny(s, "0123456789")
}

// headerBlockFollows reports whether at least two header labels follow
// line i within the next six lines.
func (r replyLines) headerBlockFollows(i int) bool {
	lines := r.l
	n := 0
	for j := i + 1; j < len(lines) && j <= i+6; j++ {
		if l := r.at(j); len(l) < 500 && hasColon(l) && headerLabelRE.MatchString(l) {
			n++
			if n >= 2 {
				return true
			}
		}
	}
	return false
}
