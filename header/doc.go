// Package header is the one reader of a message's header section for the
// whole pipeline. The spool's rewrite in ingest (our trace fields, the
// removal of forged Authentication-Results), DKIM and DMARC in ingest/auth,
// parse (the webhook's "headers" and "from") and the relay's loop scan all
// call Read, so every stage sees the same fields, split the same way; and
// the author of a message (RFC 5322 §3.6.2, the RFC 7489 §3.1 "RFC5322.From
// domain") is read once, by ReadAuthor, for DMARC and the webhook alike.
//
// # The rule
//
// The header section is the lines before the first line that is not part
// of a field (RFC 5322 §2.1, §2.2):
//
//   - a field starts with a line "name:" where the name is one or more
//     printable US-ASCII characters other than ":" (RFC 5322 §3.6.8 ftext),
//     optionally followed by spaces or tabs before the colon (the obsolete
//     syntax of §4.5);
//   - a line that starts with a space or tab and holds something else than
//     white space continues the field before it (folding, §2.2.3);
//   - an empty line ends the header and is not part of the body;
//   - any other line (no colon, a name with a space, a control or an 8-bit
//     byte, a continuation with no field before it, a line of white space
//     only) ends the header too, and is the first line of the body. This
//     is what Postfix does. The copy mailhook stores and delivers is
//     written with an empty line before such a line (see Header.Write), so
//     that no reader downstream can take a line of our body for a field.
//
// Lines end at LF; a CR before the LF belongs to the line end. (Ingest
// refuses a bare CR or LF in DATA, so on the wire every line ends in CRLF.)
// A header section larger than the limit given to Read is an error
// (ErrTooBig), never a truncated header: a From field could lie past the
// cut. Ingest refuses such a message (552 5.3.4).
package header
