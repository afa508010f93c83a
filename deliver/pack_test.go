package deliver

import (
	"bytes"
	"crypto/rand"
	"strings"
	"testing"
)

// TestPack: what does not compress, or is small, is kept as it is; a
// damaged compressed value is an error, not garbage.
func TestPack(t *testing.T) {
	noise := make([]byte, 4096)
	rand.Read(noise)
	for _, v := range [][]byte{[]byte("short"), noise} {
		if p := Pack(v); !bytes.Equal(p, v) {
			t.Errorf("Pack(%d bytes) = %d bytes, want it as it is", len(v), len(p))
		}
	}
	text := []byte(strings.Repeat("compress me, ", 100))
	p := Pack(text)
	if u, err := Unpack(p); err != nil || !bytes.Equal(u, text) {
		t.Fatalf("Unpack(Pack(text)) = %q, %v", u, err)
	}
	if _, err := Unpack(append(bytes.Clone(p[:len(p)-4]), 0xff)); err == nil {
		t.Error("unpack of a damaged value = nil error")
	}
}
