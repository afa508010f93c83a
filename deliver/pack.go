package deliver

// Large stored values (raw messages, mail records, the history's copies
// and webhook bodies) are kept S2-compressed when that saves an eighth or
// more: the Redis queue holds every queued message in memory and writes
// it to its append-only file, and the activity history wrote every
// message about four times its size into bbolt (a quarter of serve's CPU
// at 100 KB x 20). Values written before, or not worth compressing, are
// kept as they are and read as they are.

import (
	"bytes"
	"fmt"

	"github.com/klauspost/compress/s2"
)

// packMagic starts a compressed value. No value kept as it is starts so:
// a stored message (EncodeMail, EncodeMessage) starts with a mark byte or
// JSON, a webhook body with JSON, and a raw message with a header line (a
// message that starts with a NUL and "mhz" would be the only one read
// wrong).
var packMagic = []byte("\x00mhz")

// packMin is the size below which a value is kept as it is.
const packMin = 512

// Pack returns v as it is stored: compressed behind packMagic, or as it
// is. v is not changed; the result may be v.
func Pack(v []byte) []byte {
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

// Unpack returns the value Pack was given. A value kept as it is comes
// back as it is (not a copy).
func Unpack(v []byte) ([]byte, error) {
	if !bytes.HasPrefix(v, packMagic) {
		return v, nil
	}
	b, err := s2.Decode(nil, v[len(packMagic):])
	if err != nil {
		return nil, fmt.Errorf("decompress: %w", err)
	}
	return b, nil
}
