package admin

// The history's large values (a message's raw copy held in the database,
// its parsed copy, the webhook bodies sent) are kept S2-compressed when
// that saves an eighth or more: the history writes every message about
// four times its size, and those bytes, copied into pages and written by
// every transaction, were a quarter of serve's CPU at 100 KB x 20.
// Compression runs in the recording goroutine (an SMTP session, a
// worker), not the committer's. Values written before, or not worth
// compressing, are kept as they are and read as they are.

import (
	"bytes"
	"fmt"

	"github.com/klauspost/compress/s2"
)

// packMagic starts a compressed value. No value kept as it is starts so:
// a parsed copy starts with a mark byte or JSON, a webhook body with
// JSON, and a raw message with a header line (a message that starts with
// a NUL and "mhz" would be the only one read wrong).
var packMagic = []byte("\x00mhz")

// packMin is the size below which a value is kept as it is.
const packMin = 512

// pack returns v as the history keeps it.
func pack(v []byte) []byte {
	if len(v) < packMin {
		return v
	}
	buf := make([]byte, len(packMagic)+s2.MaxEncodedLen(len(v)))
	copy(buf, packMagic)
	z := s2.Encode(buf[len(packMagic):], v)
	if len(z) > len(v)-len(v)/8 {
		return v
	}
	return buf[:len(packMagic)+len(z)]
}

// unpack returns the value pack was given. A value kept as it is comes
// back as it is (not a copy).
func unpack(v []byte) ([]byte, error) {
	if !bytes.HasPrefix(v, packMagic) {
		return v, nil
	}
	b, err := s2.Decode(nil, v[len(packMagic):])
	if err != nil {
		return nil, fmt.Errorf("decompress: %w", err)
	}
	return b, nil
}
