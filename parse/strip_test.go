package parse

import (
	"math/rand/v2"
	"strings"
	"testing"
	"unsafe"
)

// Replies as the clients write them, each with the new part we expect.
var stripCases = []struct {
	name, in, want string
}{
	{"gmail en", `Thanks, that fixed it.

On Mon, Jan 8, 2024 at 10:15 AM Support Team <support@example.com> wrote:
> Please try restarting the router.
>
> Best,
> Support`, "Thanks, that fixed it."},
	{"gmail en wrapped attribution", `Sounds good, see you then.

On Tue, Feb 13, 2024 at 3:02 PM Jonathan Alexander Worthington-Smythe <
jonathan.worthington-smythe@longcompanyname.example.org> wrote:

> Can we meet on Thursday?`, "Sounds good, see you then."},
	{"gmail de", `Hallo,

vielen Dank für die schnelle Antwort.

Am Mo., 8. Jan. 2024 um 10:15 Uhr schrieb Support <support@example.com>:
> Bitte starten Sie den Router neu.`, "Hallo,\n\nvielen Dank für die schnelle Antwort."},
	{"gmail fr", `Bonjour,

C'est réglé, merci !

Le lun. 8 janv. 2024 à 10:15, Support <support@example.com> a écrit :
> Veuillez redémarrer le routeur.`, "Bonjour,\n\nC'est réglé, merci !"},
	{"gmail es", `Perfecto, gracias.

El lun, 8 ene 2024 a las 10:15, Soporte (<support@example.com>) escribió:
> Reinicie el router, por favor.`, "Perfecto, gracias."},
	{"gmail it", `Grazie mille, ora funziona.

Il giorno lun 8 gen 2024 alle ore 10:15 Supporto <support@example.com> ha
scritto:
> Riavvii il router.`, "Grazie mille, ora funziona."},
	{"gmail pt", `Obrigado, resolvido.

Em seg., 8 de jan. de 2024 às 10:15, Suporte <support@example.com>
escreveu:
> Reinicie o roteador.`, "Obrigado, resolvido."},
	{"gmail nl", `Bedankt, het werkt weer.

Op ma 8 jan 2024 om 10:15 schreef Support <support@example.com>:
> Start de router opnieuw op.`, "Bedankt, het werkt weer."},
	{"gmail sv", `Tack, nu fungerar det.

Den mån 8 jan. 2024 kl 10:15 skrev Support <support@example.com>:
> Starta om routern.`, "Tack, nu fungerar det."},
	{"gmail pl", `Dziękuję, działa.

W dniu pon., 8 sty 2024 o 10:15 Support <support@example.com> napisał(a):
> Proszę zrestartować router.`, "Dziękuję, działa."},
	{"gmail ru", `Спасибо, всё заработало.

пн, 8 янв. 2024 г. в 10:15, Support <support@example.com>:
> Перезагрузите роутер.`, "Спасибо, всё заработало."},
	{"thunderbird ru", `Спасибо!

08.01.2024 10:15, Иван Петров пишет:
> Перезагрузите роутер.`, "Спасибо!"},
	{"mail.ru", `Понял, спасибо.

Понедельник, 8 января 2024, 10:15 +03:00 от Support <support@example.com>:
> Перезагрузите роутер.`, "Понял, спасибо."},
	{"gmail ja", `ありがとうございます。解決しました。

2024年1月8日(月) 10:15 Support <support@example.com>:
> ルーターを再起動してください。`, "ありがとうございます。解決しました。"},
	{"japanese client", `了解しました。

山田太郎 さんは書きました:
> 明日の会議は10時からです。`, "了解しました。"},
	{"gmail zh", `谢谢，问题解决了。

Support <support@example.com> 于2024年1月8日周一 10:15写道：
> 请重启路由器。`, "谢谢，问题解决了。"},
	{"foxmail zh", `收到，谢谢。

在 2024年1月8日，上午10:15，张三 <zhangsan@example.cn> 写道：
> 明天开会。`, "收到，谢谢。"},
	{"outlook desktop en", `Hi,

Please see the attached invoice.

Regards,
Anna

From: Support Team <support@example.com>
Sent: Monday, January 8, 2024 10:15 AM
To: Anna Smith <anna@example.org>
Subject: RE: Invoice #4411

Could you resend the invoice?`, "Hi,\n\nPlease see the attached invoice.\n\nRegards,\nAnna"},
	{"outlook web underscores", `Done, thanks.

________________________________
From: Support Team <support@example.com>
Sent: Monday, January 8, 2024 10:15
To: Anna Smith
Subject: Ticket 4411

Is it done?`, "Done, thanks."},
	{"outlook de", `Danke, erledigt.

Von: Support <support@example.com>
Gesendet: Montag, 8. Januar 2024 10:15
An: Anna Schmidt <anna@example.de>
Betreff: AW: Ticket 4411

Ist es erledigt?`, "Danke, erledigt."},
	{"outlook fr", `Merci, c'est fait.

De : Support <support@example.com>
Envoyé : lundi 8 janvier 2024 10:15
À : Anne Martin <anne@example.fr>
Objet : RE: Ticket 4411`, "Merci, c'est fait."},
	{"outlook es", `Hecho.

De: Soporte <support@example.com>
Enviado: lunes, 8 de enero de 2024 10:15
Para: Ana García <ana@example.es>
Asunto: RE: Ticket 4411`, "Hecho."},
	{"outlook bold from gmail html", `Confirmed.

*From:* Support <support@example.com>
*Sent:* Monday, January 8, 2024 10:15 AM
*To:* Anna <anna@example.org>
*Subject:* Ticket`, "Confirmed."},
	{"outlook original message", `I agree with the proposal.

-----Original Message-----
From: Bob [mailto:bob@example.com]
Sent: Friday, January 5, 2024 4:00 PM
To: Alice
Subject: Proposal

Here is the proposal.`, "I agree with the proposal."},
	{"outlook original message de", `Einverstanden.

-----Ursprüngliche Nachricht-----
Von: Bob <bob@example.com>
Gesendet: Freitag, 5. Januar 2024 16:00`, "Einverstanden."},
	{"outlook one line header", `Ok.

From: Bob <bob@example.com> Sent: Friday, January 5, 2024 4:00 PM To: Alice Subject: Plan`, "Ok."},
	{"apple mail en", `Perfect, thanks!

Sent from my iPhone

> On Jan 8, 2024, at 10:15, Support <support@example.com> wrote:
>
> Please restart the router.`, "Perfect, thanks!"},
	{"apple mail unquoted attribution", `Will do.

On 8 Jan 2024, at 10:15, Support <support@example.com> wrote:

> Please restart the router.`, "Will do."},
	{"apple mail de", `Passt.

Von meinem iPhone gesendet

> Am 08.01.2024 um 10:15 schrieb Support <support@example.com>:
>
> Bitte neu starten.`, "Passt."},
	{"apple mail forward", `FYI, see below.

Begin forwarded message:

From: Carol <carol@example.com>
Subject: Outage`, "FYI, see below."},
	{"yahoo", `Thank you.

On Monday, January 8, 2024, 10:15:00 AM GMT+1, Support Team <support@example.com> wrote:

Please restart the router.`, "Thank you."},
	{"yahoo old separator", `Yes please.

----- Original Message -----
From: Support <support@example.com>
To: me@example.com`, "Yes please."},
	{"thunderbird en", `That works for me.

On 08/01/2024 10:15, Support Team wrote:
> Does Tuesday work?`, "That works for me."},
	{"thunderbird short attribution", `Agreed.

Support Team wrote:
> Shall we ship it?`, "Agreed."},
	{"thunderbird de", `Klingt gut.

Am 08.01.24 um 10:15 schrieb Support Team:
> Passt Dienstag?`, "Klingt gut."},
	{"thunderbird forward", `See below.

-------- Forwarded Message --------
Subject: Outage
Date: Mon, 8 Jan 2024 10:15:00 +0100`, "See below."},
	{"signature dash dash space", `The logs are attached.

-- 
Anna Smith
Example Corp`, "The logs are attached."},
	{"signature and quote", `Fixed in 1.2.3.

--
Bob

On Mon, Jan 8, 2024 at 10:15 AM Anna <anna@example.org> wrote:
> Any news?`, "Fixed in 1.2.3."},
	{"interleaved", `> Is the server up?
Yes, since 9:00.

> And the database?
Also up.`, "Yes, since 9:00.\n\nAlso up."},
	{"sent from outlook mobile", `On my way.

Get Outlook for Android`, "On my way."},
	{"sent from samsung", `Ok

Sent from my Samsung Galaxy smartphone.`, "Ok"},
	{"french iphone", `D'accord.

Envoyé de mon iPhone`, "D'accord."},
	{"spanish iphone", `Vale.

Enviado desde mi iPhone`, "Vale."},
	{"italian outlook", `Va bene.

Da: Supporto <support@example.com>
Inviato: lunedì 8 gennaio 2024 10:15
A: Anna
Oggetto: R: Ticket`, "Va bene."},
	{"dutch outlook", `Prima.

Van: Support <support@example.com>
Verzonden: maandag 8 januari 2024 10:15
Aan: Anna
Onderwerp: RE: Ticket`, "Prima."},
	{"swedish outlook", `Bra.

Från: Support <support@example.com>
Skickat: den 8 januari 2024 10:15
Till: Anna
Ämne: SV: Ticket`, "Bra."},
	{"polish outlook", `Dobrze.

Od: Support <support@example.com>
Wysłano: poniedziałek, 8 stycznia 2024 10:15
Do: Anna
Temat: RE: Ticket`, "Dobrze."},
	{"russian outlook", `Хорошо.

От: Support <support@example.com>
Отправлено: 8 января 2024 г. 10:15
Кому: Анна
Тема: RE: Ticket`, "Хорошо."},
	{"japanese outlook", `承知しました。

差出人: Support <support@example.com>
送信日時: 2024年1月8日 10:15
宛先: 山田
件名: RE: Ticket`, "承知しました。"},
	{"chinese outlook", `好的。

发件人: Support <support@example.com>
发送时间: 2024年1月8日 10:15
收件人: 张三
主题: 回复: Ticket`, "好的。"},
	{"portuguese iphone", `Combinado.

Enviado do meu iPhone`, "Combinado."},
	{"apple mail nl", `Top, bedankt.

Op 8 jan. 2024 om 10:15 heeft Support <support@example.com> het volgende geschreven:

> Start de router opnieuw op.`, "Top, bedankt."},
	{"apple mail fr", `Parfait.

Le 8 janv. 2024 à 10:15, Support <support@example.com> a écrit :

> Redémarrez le routeur.`, "Parfait."},
	{"apple mail ja", `了解です。

2024/01/08 10:15、Support <support@example.com>のメール:

> ルーターを再起動してください。`, "了解です。"},
	{"apple mail pl", `Dzięki.

Wiadomość napisana przez Support <support@example.com> w dniu 08.01.2024, o godz. 10:15:

> Proszę zrestartować router.`, "Dzięki."},
	{"outlook mac", `Works now.

From: Support <support@example.com>
Date: Monday, 8 January 2024 at 10:15
To: Anna <anna@example.org>
Subject: Re: Ticket`, "Works now."},
	{"gmail fr no-break spaces", "Merci.\n\nLe lun. 8 janv. 2024 à 10:15, Support <support@example.com> a\u00a0écrit\u00a0:\n> Bonjour", "Merci."},
	{"sent via in a sentence", "Sent via courier, it should arrive Monday.\nThanks", "Sent via courier, it should arrive Monday.\nThanks"},
	{"sent with proton", "Ok\n\nSent with Proton Mail secure email.", "Ok"},
	{"no quote at all", "Just a new message.\nWith two lines.", "Just a new message.\nWith two lines."},
	{"from in body is not a header block", "From: the team, with thanks.\nSee you.", "From: the team, with thanks.\nSee you."},
	{"crlf", "Yes.\r\n\r\nOn Mon, Jan 8, 2024 at 10:15 AM X <x@example.com> wrote:\r\n> q\r\n", "Yes."},
}

func TestStripReply(t *testing.T) {
	if len(stripCases) < 30 {
		t.Fatalf("only %d cases", len(stripCases))
	}
	for _, tc := range stripCases {
		t.Run(tc.name, func(t *testing.T) {
			if got := StripReply(tc.in); got != tc.want {
				t.Errorf("StripReply(%q) = %q, want %q", tc.in, got, tc.want)
			}
		})
	}
}

func TestStripReplyLongText(t *testing.T) {
	// Past the scanned prefix no marker is looked for; quotes still go.
	line := strings.Repeat("new text ", 25) + "\n"
	long := strings.Repeat(line, maxStripScan/len(line)+10)
	in := long + "> quoted\nOn Mon, Jan 8, 2024 at 10:15 AM X <x@example.com> wrote:\nmore\n"
	got := StripReply(in)
	if strings.Contains(got, "> quoted") || !strings.HasSuffix(got, "more") {
		t.Errorf("StripReply(long) ends with %q", got[len(got)-80:])
	}
	// Hostile lines (ending in a colon, with an attribution verb) stay
	// cheap because only the prefix is scanned.
	hostile := strings.Repeat("On some day a@b.c 12 said nothing special here at all:\n", 2000)
	if got := StripReply(hostile); len(got) > len(hostile) {
		t.Errorf("StripReply(hostile) grew")
	}
}

// TestStripReplyLinear counts the bytes reply stripping looks at (not the
// time it takes) on shapes of text that make a careless scan go back over
// what it has seen: the work per byte of text must stay within a constant,
// and eight times the text must cost at most about eight times the work,
// both inside the scanned prefix and past it.
func TestStripReplyLinear(t *testing.T) {
	shapes := map[string]string{
		"prose":         "This is an ordinary line of a reply, with nothing in it that looks like a marker.\n",
		"attribution":   "On some day a@b.c 12 said nothing special here at all:\n",
		"wrapped":       "On Mon, Jan 8, 2024 at 10:15 AM a very long name\nthat wraps <x@example.com> and more\n",
		"colon digits":  "Meeting at 10:30 with 12 people:\n\n",
		"header labels": "From: someone\nTo: nobody, and a very long text that is not a header block\n",
		"from lines":    "From: someone who is not a header block\nplain words, nothing else\n",
		"underscores":   "______________________________\nnot a from line\n",
		"long lines":    strings.Repeat("word: 1 ", 1500) + "\n",
		"quoted":        "> quoted text, which is skipped but still read\n",
		"blank":         "\n\n\n \n",
		"nbsp":          "Le 8 janv. 2024\u00a0à\u00a010:15, X\u202fa\u00a0écrit\u00a0\n",
	}
	work := func(text string) int {
		n := 0
		stripReply(text, &n)
		return n
	}
	for name, unit := range shapes {
		t.Run(name, func(t *testing.T) {
			// Small sizes stay inside maxStripScan, where markers are
			// looked for; large ones go past it.
			for _, size := range []int{4 << 10, 256 << 10} {
				small := strings.Repeat(unit, size/len(unit)+1)
				large := strings.Repeat(unit, 8*(size/len(unit)+1))
				ws, wl := work(small), work(large)
				if ws > 16*len(small) || wl > 16*len(large) {
					t.Errorf("work %d for %d bytes, %d for %d: more than 16 per byte", ws, len(small), wl, len(large))
				}
				if wl > 10*ws {
					t.Errorf("work %d for %d bytes but %d for %d (8x): not linear", ws, len(small), wl, len(large))
				}
			}
		})
	}
}

// TestStripReplyKeptAsIs: whatever the lines, the text returned without a
// copy (keptAsIs) is what joining the kept lines gives, and a text that
// needs no change comes back as a start of itself, not a copy.
func TestStripReplyKeptAsIs(t *testing.T) {
	pieces := []string{"", "", "Hello,", "the printer is on fire.", "> quoted", "  > indented quote", "trailing  ", "tab\t", "   ", "x"}
	r := rand.New(rand.NewPCG(1, 2))
	fast := 0
	for range 20000 {
		lines := make([]string, 1+r.IntN(7))
		for i := range lines {
			lines[i] = pieces[r.IntN(len(pieces))]
		}
		ls := replyLines{l: lines}
		want := joinKept(ls, len(lines))
		if end, ok := keptAsIs(lines); ok {
			fast++
			if got := strings.Join(lines, "\n")[:end]; got != want {
				t.Fatalf("lines %q: kept as is %q, joined %q", lines, got, want)
			}
		}
	}
	if fast < 1000 {
		t.Errorf("only %d of 20000 texts were kept as they are", fast)
	}
	text := "Hello,\n\nthe printer is on fire.\n\nBob\n\n"
	got := StripReply(text)
	if got != "Hello,\n\nthe printer is on fire.\n\nBob" || unsafe.StringData(got) != unsafe.StringData(text) {
		t.Errorf("StripReply(%q) = %q, a copy or not the text", text, got)
	}
}
