package deliver

import (
	"bytes"
	"crypto/rand"
	mrand "math/rand/v2"
	"strings"
	"testing"

	"github.com/mailhook/mailhook/internal/testenv"
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

// TestPackKeepsNoScratch: what Pack and AppendPack return is the caller's
// own (the scratch they compress into is reused by the next call), and
// AppendPack stores what Pack does.
func TestPackKeepsNoScratch(t *testing.T) {
	a := []byte(strings.Repeat("first value, ", 400))
	b := []byte(strings.Repeat("second one! ", 400))
	pa := Pack(a)
	if bytes.Equal(pa, a) {
		t.Fatal("text was not compressed")
	}
	keep := bytes.Clone(pa)
	pb := Pack(b)
	ab := AppendPack([]byte("pre"), b)
	if !bytes.Equal(pa, keep) {
		t.Fatal("a later Pack changed an earlier result")
	}
	if !bytes.Equal(ab, append([]byte("pre"), pb...)) {
		t.Fatalf("AppendPack = %d bytes, want pre + Pack's %d", len(ab), len(pb))
	}
	for _, v := range [][]byte{pa, pb, ab[3:]} {
		if u, err := Unpack(v); err != nil || !(bytes.Equal(u, a) || bytes.Equal(u, b)) {
			t.Fatalf("Unpack = %d bytes, %v", len(u), err)
		}
	}
	small := []byte("short")
	if got := AppendPack([]byte("x"), small); string(got) != "xshort" {
		t.Errorf("AppendPack of a small value = %q", got)
	}
	// Under the race detector sync.Pool drops a share of what is put back,
	// so the scratch is sometimes made anew.
	if !testenv.Race && testing.AllocsPerRun(10, func() { Pack(a) }) > 1 {
		t.Error("Pack allocates more than the stored value")
	}
}

// BenchmarkPack100K: packing a 100 KB text body, as the history does.
func BenchmarkPack100K(b *testing.B) {
	words := strings.Fields("the a of to and in is it you that he was for on are with as his they be at one have this from or had by hot word but what some we can out other were all there when up use your how said an each she which do their time if will way about many then them write would like so these her long make thing see him two has look more day could go come did number sound no most people my over know water than call first who may down side been now find")
	rnd := mrand.New(mrand.NewPCG(1, 2))
	var v []byte
	for len(v) < 100<<10 {
		v = append(v, words[rnd.IntN(len(words))]...)
		v = append(v, ' ')
		if rnd.IntN(12) == 0 {
			v = append(v, ".\r\n"...)
		}
	}
	b.SetBytes(int64(len(v)))
	b.ReportAllocs()
	for b.Loop() {
		Pack(v)
	}
}
