package deliver

// Helpers the queue backends share.

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"strings"
)

// NewToken returns a random lease token (32 hex digits).
func NewToken() string {
	var b [16]byte
	rand.Read(b[:]) // never fails (crypto/rand, Go 1.24+)
	return hex.EncodeToString(b[:])
}

// RawFileName names a message's raw file in an embedded store: the message
// ID when it is safe as a file name (else its hash), plus a random suffix
// so a duplicate commit of the same message never overwrites the committed
// file.
func RawFileName(msgID string) string {
	base := msgID
	safe := len(base) <= 100
	for _, r := range base {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.') {
			safe = false
			break
		}
	}
	if !safe || strings.HasPrefix(base, ".") {
		h := sha256.Sum256([]byte(msgID))
		base = "h" + hex.EncodeToString(h[:12])
	}
	return base + "-" + NewToken()[:12] + ".eml"
}
