package parse

import (
	"bytes"
	"fmt"
	"io"
	"strings"
	"testing"
)

// benchText is a 2 KB plain-text reply with the usual header.
func benchText() []byte {
	var b strings.Builder
	b.WriteString("Return-Path: <anna@example.org>\r\nReceived: from mx.example.org (mx.example.org [192.0.2.1])\r\n\tby mx.example.test with ESMTPS id 4ABC\r\n\tfor <support@example.test>; Mon, 8 Jan 2024 10:15:00 +0100\r\n" +
		"DKIM-Signature: v=1; a=rsa-sha256; d=example.org; s=s1; h=from:to:subject:date; bh=47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=; b=dGVzdA==\r\n" +
		"From: Anna Smith <anna@example.org>\r\nTo: Support <support@example.test>\r\nSubject: Re: Ticket 4411: router keeps dropping\r\n" +
		"Date: Mon, 8 Jan 2024 10:15:00 +0100\r\nMessage-ID: <CAF=abc123@mail.example.org>\r\nIn-Reply-To: <ticket-4411@example.test>\r\n" +
		"References: <ticket-4411@example.test>\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=\"UTF-8\"\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n")
	b.WriteString("Hi,\r\n\r\nthanks for the quick answer. I restarted the router as you suggested and =\r\nit has been stable since this morning.\r\n\r\n")
	for b.Len() < 1700 {
		b.WriteString("> Please restart the router and tell us whether the problem persists.\r\n")
	}
	b.WriteString("\r\nOn Mon, Jan 8, 2024 at 9:00 AM Support <support@example.test> wrote:\r\n> Hello Anna,\r\n")
	for b.Len() < 2048 {
		b.WriteString("> text\r\n")
	}
	return []byte(b.String())
}

// benchHTML is a 100 KB HTML-only newsletter-shaped message.
func benchHTML() []byte { return benchHTMLOf(100 << 10) }

// benchHTMLOf is a newsletter-shaped HTML-only message of about size bytes.
func benchHTMLOf(size int) []byte {
	var b strings.Builder
	b.WriteString("From: News <news@example.com>\r\nTo: support@example.test\r\nSubject: Our January news\r\nDate: Mon, 8 Jan 2024 10:15:00 +0100\r\n" +
		"Message-ID: <news-1@example.com>\r\nMIME-Version: 1.0\r\nContent-Type: text/html; charset=utf-8\r\n\r\n" +
		"<!DOCTYPE html><html><head><style>td{padding:4px}</style></head><body><table>")
	for i := 0; b.Len() < size; i++ {
		fmt.Fprintf(&b, "<tr><td><h2>Story %d</h2><p>Lorem ipsum dolor sit amet, <b>consectetur</b> adipiscing elit, sed do eiusmod tempor "+
			"incididunt ut labore et dolore magna aliqua &amp; more.</p><a href=\"https://example.com/s/%d\">Read more</a></td></tr>\r\n", i, i)
	}
	b.WriteString("</table></body></html>\r\n")
	return []byte(b.String())
}

func benchParse(b *testing.B, raw []byte) { benchParseOpts(b, raw, Options{}) }

func benchParseOpts(b *testing.B, raw []byte, opts Options) {
	b.SetBytes(int64(len(raw)))
	b.ReportAllocs()
	r := bytes.NewReader(raw)
	for b.Loop() {
		r.Reset(raw)
		if _, err := Parse(r, opts); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkParse2KText(b *testing.B)   { benchParse(b, benchText()) }
func BenchmarkParse100KHTML(b *testing.B) { benchParse(b, benchHTML()) }
func BenchmarkParse10MBAttachment(b *testing.B) {
	raw, _ := attachmentMessage(10 << 20)
	benchParse(b, raw)
}

// BenchmarkParse10MBAttachmentNoInline is the same message with inlining
// off: the attachment only streams through SHA-256.
func BenchmarkParse10MBAttachmentNoInline(b *testing.B) {
	raw, _ := attachmentMessage(10 << 20)
	benchParseOpts(b, raw, Options{InlineLimit: -1})
}

// BenchmarkReadRaw reads the 10 MB attachment message once, for the ratio:
// Parse versus io.Copy of the same bytes to io.Discard.
func BenchmarkReadRaw(b *testing.B) {
	raw, _ := attachmentMessage(10 << 20)
	b.SetBytes(int64(len(raw)))
	b.ReportAllocs()
	r := bytes.NewReader(raw)
	for b.Loop() {
		r.Reset(raw)
		// Hide WriterTo so the copy goes through a buffer, as reading a
		// connection would.
		if _, err := io.Copy(io.Discard, struct{ io.Reader }{r}); err != nil {
			b.Fatal(err)
		}
	}
}

// bench4MText is a 4 MB plain-text message: a reply over a long log-like
// body of prose lines, quoted-printable as mail clients send long text.
func bench4MText() []byte {
	var b strings.Builder
	b.WriteString("From: Anna Smith <anna@example.org>\r\nTo: Support <support@example.test>\r\nSubject: Re: the full log\r\n" +
		"Date: Mon, 8 Jan 2024 10:15:00 +0100\r\nMessage-ID: <big-1@mail.example.org>\r\nMIME-Version: 1.0\r\n" +
		"Content-Type: text/plain; charset=\"UTF-8\"\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n" +
		"Hi,\r\n\r\nhere is the whole log, as you asked: it runs from Monday to Friday.\r\n\r\n")
	for i := 0; b.Len() < 4<<20; i++ {
		fmt.Fprintf(&b, "2024-01-%02d 10:%02d:%02d router[%d]: link state changed, peer 192.0.2.%d: retry %d =E2=80=94 ok\r\n", i%28+1, i%60, i%60, 1000+i%97, i%250, i%7)
		if i%40 == 0 {
			b.WriteString("\r\nThe next block is where it dropped again; note the time stamps, which line up with the =\r\nbackup job on the NAS.\r\n\r\n")
		}
	}
	b.WriteString("\r\nOn Mon, Jan 8, 2024 at 9:00 AM Support <support@example.test> wrote:\r\n> Please send the log.\r\n")
	return []byte(b.String())
}

func BenchmarkParse4MText(b *testing.B) { benchParse(b, bench4MText()) }
func BenchmarkParse4MHTML(b *testing.B) { benchParse(b, benchHTMLOf(4<<20)) }

// BenchmarkStripReply100K strips a 100 KB body of plain lines with nothing
// to cut (the body Postfix's smtp-source sends): every line of the scanned
// prefix is looked at.
func BenchmarkStripReply100K(b *testing.B) {
	var sb strings.Builder
	for i := 0; sb.Len() < 100<<10; i++ {
		fmt.Fprintf(&sb, "%d%s\n", i%10, strings.Repeat("X", 78))
	}
	text := sb.String()
	b.SetBytes(int64(len(text)))
	b.ReportAllocs()
	for b.Loop() {
		StripReply(text)
	}
}

// BenchmarkParseDateComment: a Date field with a comment after the zone,
// as Postfix writes it.
func BenchmarkParseDateComment(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if parseDate("Sat, 5 Dec 2026 18:59:49 +0000 (UTC)") == "" {
			b.Fatal("date not read")
		}
	}
}
