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
	"slices"
	"sync"

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
	z, scratch := compress(v)
	defer release(scratch)
	if z == nil {
		return v
	}
	out := make([]byte, 0, len(packMagic)+len(z))
	return append(append(out, packMagic...), z...)
}

// AppendPack appends v as Pack stores it to dst, growing dst at most once.
func AppendPack(dst, v []byte) []byte {
	if len(v) >= packMin {
		z, scratch := compress(v)
		defer release(scratch)
		if z != nil {
			dst = slices.Grow(dst, len(packMagic)+len(z))
			return append(append(dst, packMagic...), z...)
		}
	}
	return append(slices.Grow(dst, len(v)), v...)
}

// compress returns v compressed, or nil when that saves less than an
// eighth. The result lives in scratch (when not nil) until it is
// released, so that only the compressed size is allocated for what is
// kept: a buffer of s2.MaxEncodedLen per value stored was a third of the
// bytes serve allocated at 100 KB (and the zeroing of each, 3% of its
// CPU).
func compress(v []byte) (z []byte, scratch *[]byte) {
	need := s2.MaxEncodedLen(len(v))
	if need < 0 || need > packScratchMax {
		z = s2.Encode(nil, v) // rare: kept out of the pool
	} else {
		scratch = packScratch.Get().(*[]byte)
		if cap(*scratch) < need {
			*scratch = make([]byte, need)
		}
		z = s2.Encode((*scratch)[:need], v)
	}
	if len(z) > len(v)-len(v)/8 {
		return nil, scratch
	}
	return z, scratch
}

// release returns a scratch buffer of compress to the pool.
func release(scratch *[]byte) {
	if scratch != nil {
		packScratch.Put(scratch)
	}
}

// packScratchMax bounds the scratch buffers kept for reuse.
const packScratchMax = 1 << 20

var packScratch = sync.Pool{New: func() any { return new([]byte) }}

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
