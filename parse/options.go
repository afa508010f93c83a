package parse

// Default limits used when the corresponding Options field is zero.
const (
	DefaultMaxDepth        = 20
	DefaultMaxParts        = 500
	DefaultMaxHeaderBytes  = 1 << 20  // 1 MiB per header block
	DefaultMaxDecodedBytes = 64 << 20 // 64 MiB per message
	DefaultInlineLimit     = 5 << 20  // 5 MiB per attachment
)

// Options bounds the work Parse does on one message. A zero field takes its
// Default* value; a negative InlineLimit means attachments are never inlined.
type Options struct {
	// MaxDepth is the deepest MIME nesting (multipart and message/rfc822)
	// that is descended into; deeper entities are skipped with a warning.
	MaxDepth int
	// MaxParts is the number of MIME entities visited; past it the rest of
	// the message is skipped with a warning.
	MaxParts int
	// MaxHeaderBytes limits each header block (the message's and every
	// part's); the rest of an oversized block is skipped with a warning.
	MaxHeaderBytes int64
	// MaxDecodedBytes limits the total decoded size of all parts of the
	// message; past it parsing stops with a warning.
	MaxDecodedBytes int64
	// InlineLimit is the largest attachment whose content is returned as
	// base64 in Attachment.Content; larger ones carry only size and hash.
	InlineLimit int64
}

func (o Options) withDefaults() Options {
	if o.MaxDepth <= 0 {
		o.MaxDepth = DefaultMaxDepth
	}
	if o.MaxParts <= 0 {
		o.MaxParts = DefaultMaxParts
	}
	if o.MaxHeaderBytes <= 0 {
		o.MaxHeaderBytes = DefaultMaxHeaderBytes
	}
	if o.MaxDecodedBytes <= 0 {
		o.MaxDecodedBytes = DefaultMaxDecodedBytes
	}
	if o.InlineLimit == 0 {
		o.InlineLimit = DefaultInlineLimit
	}
	return o
}

// rawLimit is the most raw input Parse reads. Encodings expand at most about
// 3x (quoted-printable), so four times the decoded budget plus header room
// never cuts a message whose decoded size is within bounds, while keeping the
// time spent on an endless reader bounded.
func (o Options) rawLimit() int64 {
	const maxInt64 = 1<<63 - 1
	if o.MaxDecodedBytes > maxInt64/8 || o.MaxHeaderBytes > maxInt64/128 {
		return maxInt64
	}
	return 4*o.MaxDecodedBytes + 64*o.MaxHeaderBytes
}
