// Package parse turns a raw RFC 5322 message into the Message that webhooks
// receive (the "message" object of DESIGN.md).
//
// # What it does
//
// Parse reads the message once, as a stream, with github.com/emersion/go-message
// doing the MIME work: header reading (textproto), multipart splitting,
// transfer decoding (quoted-printable, base64) and charset conversion (its
// charset package, which knows every charset golang.org/x/text does), and
// its mail package for addresses (RFC 5322 §3.4, RFC 2047 display names,
// groups), message ids and dates. On top of that this package:
//
//   - lists every top-level header field in order with decoded values;
//   - takes text and HTML bodies from multipart/alternative, mixed, related
//     and nested message/rfc822 parts (a forwarded message's bodies follow a
//     "---------- Forwarded message ----------" block and the .eml itself is
//     listed as an attachment), unwraps format=flowed (RFC 3676) and renders
//     text from HTML (golang.org/x/net/html) when there is no text part;
//   - describes every other part as an Attachment: file name (RFC 2183,
//     RFC 2231 in any charset, RFC 2047, or the Content-Type name), type,
//     size, SHA-256, disposition, Content-ID, its part number in the MIME
//     tree (Part, numbered as IMAP numbers body sections), and the content
//     as base64 when it is within Options.InlineLimit;
//   - computes stripped_text (StripReply), stripped_signature
//     (StripSignature) and stripped_html (StripHTML), the auto_submitted flag (RFC 3834,
//     Precedence, Exchange and vacation markers, reports) and the DSN
//     summary of a delivery report (RFC 3464).
//
// # Real-world mail
//
// Malformed mail never makes Parse fail; it returns what could be parsed and
// a Warnings entry per problem. It copes with: a missing or junk
// Content-Type, duplicate or unquoted parameters, a multipart without boundary or
// without closing boundary, a boundary that never appears (the body is shown
// as text), malformed part headers (the part is skipped), bad base64 or
// quoted-printable (decoded up to the error), unknown transfer encodings and
// charsets, bytes that do not fit the declared charset, raw 8-bit header
// values (read as UTF-8, else as the message's charset or Windows-1252),
// Windows-1252 labelled ISO-8859-1 (C1 controls are read as Windows-1252),
// RFC 2047 words that split a multibyte character, quoted encoded words in
// display names, broken addresses (kept as text), broken dates (a list of
// common shapes after RFC 5322 §3.3), and headers that lack the blank line.
//
// The top-level header is read by package header, the one reader the
// whole pipeline shares: a line that is not a field (a first line that
// starts with white space, an mbox "From " line, a line without a colon)
// ends the header and starts the body, as for DKIM, DMARC and the copy
// ingest stores. Message.From is the author as header.ReadAuthor reads it,
// the address DMARC judged; Headers lists the same fields DMARC saw.
//
// Every string in a Message is valid UTF-8. Text and HTML use "\n" line
// ends. Text attachments are converted to UTF-8 like bodies are;
// Attachment.Charset keeps the charset the part declared.
//
// # Limits
//
// Options bounds the work: MIME depth, number of parts, the size of each
// header block, the decoded bytes of the whole message and the inline size
// of an attachment; raw input is read at most to four times the decoded
// limit. Past a limit the message keeps what was parsed and says so in
// Warnings. Attachments stream through SHA-256 and, while within the inline
// limit, a base64 encoder: the decoded bytes are never held, and nothing of
// an attachment over the limit is kept. Text is rendered from at most 1 MiB
// of HTML, and StripReply looks for the start of the quote in the first
// 64 KiB of text, so hostile bodies cost bounded time. Parse does not start
// goroutines.
//
// # Opening a part
//
// OpenPart streams one attachment's content, found by its Part, out of the
// raw message. It runs the walk Parse runs, with the same limits, and tees
// the part's decoded bytes to its reader (from a goroutine, through a
// pipe), so what it returns is exactly what Parse sized and hashed, and
// whatever Parse listed it reaches.
//
// # Known gaps
//
// A part whose own header is malformed (a line without a colon) is skipped
// whole, because go-message's multipart reader drops it. Text without a
// declared charset that is not UTF-8 is read as Windows-1252; there is no
// charset detection.
package parse
