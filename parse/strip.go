package parse

import (
	"regexp"
	"strings"
)

// Reply stripping. A reply is cut at the first line that starts the quoted
// message or a signature, and any remaining ">" quoted lines are dropped.
// The markers below are the ones the common clients write, in the languages
// they are most used in.

// attributionRE matches an attribution line ("On … wrote:") as Gmail,
// Apple Mail, Thunderbird, Yahoo and Outlook write it; long ones are matched
// after joining up to three wrapped lines.
var attributionRE = regexp.MustCompile(`(?i)^(?:-+\s*)?(?:` +
	// English, and the verb-last languages whose sentence starts with
	// the date: German, Dutch, Swedish ("Am … schrieb X:").
	`on\s.{1,300}\s(?:wrote|writes|said)|` +
	`am\s.{1,300}\sschrieb(?:\s.{0,300})?|` +
	`op\s.{1,300}\sschreef(?:\s.{0,300})?|` +
	`(?:den|på)\s.{1,300}\sskrev(?:\s.{0,300})?|` +
	`le\s.{1,300}\sa\s+écrit|` +
	`el\s.{1,300}\sescribió|` +
	`(?:il|in data)\s.{1,300}\sha\s+scritto|` +
	`(?:em|no dia|a)\s.{1,300}\sescreveu|` +
	`(?:w dniu|dnia)\s.{1,300}\snapisał(?:a|\(a\))?|` +
	`.{1,300}\s(?:написал|написала|написал\(а\)|пишет)|` +
	`.{1,300}(?:さんは書きました|さんが書きました|は書きました|が書きました|書きました)|` +
	`.{0,300}(?:写道|寫道|來信|来信)|` +
	// Verb last, any language, when the opening word differs.
	`.{1,300}\s(?:wrote|schrieb|a\s+écrit|escribió|ha\s+scritto|escreveu|schreef|skrev|napisał|napisała|napisał\(a\))` +
	`)\s*[:：]\s*$`)

// separatorRE matches the lines that introduce a quoted or forwarded
// message in Outlook, Thunderbird, Yahoo and Apple Mail.
var separatorRE = regexp.MustCompile(`(?i)^\s*(?:` +
	`-{2,}\s*(?:original message|original-nachricht|ursprüngliche nachricht|message d'origine|message original|mensaje original|messaggio originale|mensagem original|oorspronkelijk bericht|origineel bericht|ursprungligt meddelande|originalmeddelande|wiadomość oryginalna|oryginalna wiadomość|исходное сообщение|元のメッセージ|原始邮件|原始郵件|原邮件|` +
	`forwarded message|weitergeleitete nachricht|message transféré|mensaje reenviado|messaggio inoltrato|mensagem encaminhada|doorgestuurd bericht|vidarebefordrat meddelande|przekazana wiadomość|wiadomość przekazana|пересылаемое сообщение|転送されたメッセージ|转发的邮件|轉寄的郵件)\s*-{2,}|` +
	`begin forwarded message:|anfang der weitergeleiteten (?:nachricht|e-mail):|début du message (?:réexpédié|transféré)\s*:|inicio del mensaje reenviado:|inizio messaggio inoltrato:|início da mensagem reencaminhada:|begin doorgestuurd bericht:|vidarebefordrat brev:|początek przekazywanej wiadomości:|начало переадресованного сообщения:|転送されたメッセージ:|转发的邮件：?` +
	`)\s*$`)

// fromLabelRE matches the first line of an Outlook-style header block
// ("From: …" followed by "Sent:", "To:", "Subject:" lines), bold or not.
var fromLabelRE = regexp.MustCompile(`(?i)^\s*\*?(?:from|von|de|da|van|från|fra|od|от|差出人|发件人|寄件者|發件人)\s*\*?\s*[:：]\s*\*?\s*\S`)

// headerLabelRE matches the other lines of such a block.
var headerLabelRE = regexp.MustCompile(`(?i)^\s*\*?(?:sent|date|to|cc|subject|gesendet|datum|an|betreff|envoyé|date|à|a|objet|enviado|fecha|para|asunto|inviato|data|oggetto|assunto|verzonden|aan|onderwerp|skickat|till|ämne|kopia|wysłano|do|temat|отправлено|дата|кому|тема|копия|送信日時|宛先|件名|日付|发送时间|收件人|主题|日期|抄送|寄件日期|收件者|主旨|時間)\s*\*?\s*[:：]`)

// oneLineHeaderRE matches an Outlook header block flattened to one line.
var oneLineHeaderRE = regexp.MustCompile(`(?i)^\s*\*?from\s*:.{1,300}\s(?:sent|date)\s*:.{1,300}\ssubject\s*:`)

// sentFromRE matches the "Sent from my …" lines mobile clients append.
var sentFromRE = regexp.MustCompile(`(?i)^\s*(?:` +
	`sent from (?:my|mail for|outlook|yahoo mail|samsung|proton mail|the)\b.*|get outlook for \S+.*|sent with .{1,40}|sent via .{1,40}|` +
	`von meinem .{1,60} gesendet|gesendet von (?:meinem|mobil).*|gesendet mit .{1,40}|` +
	`envoyé de mon .{1,60}|envoyé depuis (?:mon|l'application).*|` +
	`enviado desde mi .{1,60}|enviado desde .{1,40}|` +
	`inviato da .{1,60}|` +
	`enviado do meu .{1,60}|enviado a partir do .{1,60}|` +
	`verzonden (?:vanaf|met) mijn .{1,60}|verstuurd vanaf mijn .{1,60}|` +
	`skickat från min .{1,60}|skickades från min .{1,60}|` +
	`wysłane z (?:mojego|mojej|aplikacji) .{1,60}|` +
	`отправлено с(?:о)? .{1,60}|отправлено из .{1,60}|` +
	`.{1,40}から送信|` +
	`发自我的.{1,40}|从我的.{1,40}发送|寄自我的.{1,40}` +
	`)\s*$`)

var underscoreRE = regexp.MustCompile(`^\s*_{10,}\s*$`)

// StripReply returns the new part of a reply: text cut at the first
// attribution line ("On … wrote:" and its translations), Outlook header
// block or "-----Original Message-----" separator, signature separator
// ("-- ", RFC 3676 §4.3) or "Sent from my …" line, with ">" quoted lines
// removed and surrounding blank lines trimmed.
func StripReply(text string) string {
	lines := strings.Split(normalizeNewlines(text), "\n")
	cut := len(lines)
	for i := range lines {
		if isQuoted(lines[i]) {
			continue
		}
		if c, ok := cutAt(lines, i); ok {
			cut = c
			break
		}
	}
	var b strings.Builder
	blank := 0
	for _, l := range lines[:cut] {
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

func isQuoted(l string) bool {
	return strings.HasPrefix(strings.TrimLeft(l, " \t"), ">")
}

// cutAt reports whether the quoted part or signature starts at line i, and
// the line to cut at (which may be an earlier separator line).
func cutAt(lines []string, i int) (int, bool) {
	raw := lines[i]
	t := strings.TrimSpace(raw)
	if t == "" {
		return 0, false
	}
	// RFC 3676 §4.3 signature separator, also with its space lost.
	if raw == "-- " || t == "--" || t == "—" {
		return i, true
	}
	if separatorRE.MatchString(t) || sentFromRE.MatchString(t) || oneLineHeaderRE.MatchString(t) {
		return i, true
	}
	if fromLabelRE.MatchString(t) && headerBlockFollows(lines, i) {
		// Outlook puts a rule of underscores above the block.
		for j := i - 1; j >= 0 && j >= i-3; j-- {
			if underscoreRE.MatchString(lines[j]) {
				return j, true
			}
			if strings.TrimSpace(lines[j]) != "" {
				break
			}
		}
		return i, true
	}
	if underscoreRE.MatchString(t) {
		for j := i + 1; j < len(lines) && j <= i+3; j++ {
			if fromLabelRE.MatchString(lines[j]) {
				return i, true
			}
		}
	}
	// Attribution lines, possibly wrapped over up to three lines.
	joined := strings.TrimLeft(t, "*_ ")
	for k := 0; k < 3 && i+k < len(lines); k++ {
		if k > 0 {
			next := strings.TrimSpace(lines[i+k])
			if next == "" || isQuoted(lines[i+k]) {
				break
			}
			joined += " " + next
		}
		if len(joined) > 600 {
			break
		}
		if attributionRE.MatchString(strings.TrimRight(joined, "*_ ")) {
			return i, true
		}
	}
	// A line ending in a colon that names a date or an address, right
	// before a quoted block, is an attribution in any language (Gmail in
	// Russian or Japanese writes only the date and the sender).
	cand := t
	for k := 0; k < 2 && i+k < len(lines); k++ {
		if k > 0 {
			next := strings.TrimSpace(lines[i+k])
			if next == "" || isQuoted(lines[i+k]) {
				break
			}
			cand += " " + next
		}
		if !(strings.HasSuffix(cand, ":") || strings.HasSuffix(cand, "：")) || len(cand) > 400 ||
			!(strings.Contains(cand, "@") || strings.ContainsAny(cand, "0123456789")) {
			continue
		}
		for j := i + k + 1; j < len(lines) && j <= i+k+2; j++ {
			if isQuoted(lines[j]) {
				return i, true
			}
			if strings.TrimSpace(lines[j]) != "" {
				break
			}
		}
	}
	return 0, false
}

// headerBlockFollows reports whether at least two header labels follow
// line i within the next six lines.
func headerBlockFollows(lines []string, i int) bool {
	n := 0
	for j := i + 1; j < len(lines) && j <= i+6; j++ {
		if headerLabelRE.MatchString(lines[j]) {
			n++
			if n >= 2 {
				return true
			}
		}
	}
	return false
}
