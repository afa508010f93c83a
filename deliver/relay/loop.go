package relay

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/mailhook/mailhook/header"
)

// LoopHeader is the header field the relay prepends to every message it
// forwards, with the Options.LoopMarker as value. Seeing it again on a
// message means the message went round and came back.
const LoopHeader = "X-Loop"

// DefaultMaxReceived is the Received: count above which a message is taken
// for a loop when Options.MaxReceived is zero. RFC 5321 §6.3 asks for a
// hop limit and suggests it be large; 30 hops is far beyond real paths.
const DefaultMaxReceived = 30

// maxHeaderScan bounds how much of a message header ScanHeader reads.
const maxHeaderScan = 1 << 20

// ErrLoop means a message would loop: it already carries our loop marker,
// or it has been relayed too many times.
var ErrLoop = errors.New("relay: mail loop detected")

// HeaderFacts are what the loop guards need from a message header.
type HeaderFacts struct {
	// Received is the number of Received: fields.
	Received int
	// Loops are the values of the X-Loop fields, unfolded and trimmed.
	Loops []string
	// AutoSubmitted is true when an Auto-Submitted field has a value other
	// than "no" (RFC 3834 §5).
	AutoSubmitted bool
}

// ScanHeader reads the header section of the message in r with package
// header, the reader every stage shares (at most 1 MiB; past that the
// fields read so far count), and returns its HeaderFacts.
func ScanHeader(r io.Reader) (HeaderFacts, error) {
	h, err := header.Read(bufio.NewReader(r), maxHeaderScan)
	if err != nil && !errors.Is(err, header.ErrTooBig) {
		return HeaderFacts{}, fmt.Errorf("relay: read header: %w", err)
	}
	return FactsOf(h.Fields), nil
}

// FactsOf returns the HeaderFacts of header fields as package header read
// them; ingest uses it to refuse a looping message in the SMTP dialogue.
func FactsOf(fields []header.Field) HeaderFacts {
	var hf HeaderFacts
	for _, f := range fields {
		hf.add(f.Name, f.Value)
	}
	return hf
}

func (hf *HeaderFacts) add(name, value string) {
	switch {
	case strings.EqualFold(name, "Received"):
		hf.Received++
	case strings.EqualFold(name, LoopHeader):
		if len(hf.Loops) < 100 {
			hf.Loops = append(hf.Loops, strings.TrimSpace(value))
		}
	case strings.EqualFold(name, "Auto-Submitted"):
		v := strings.TrimSpace(value)
		if i := strings.IndexAny(v, ";( \t"); i >= 0 {
			v = v[:i]
		}
		if v != "" && !strings.EqualFold(v, "no") {
			hf.AutoSubmitted = true
		}
	}
}

// CheckLoop returns an error wrapping ErrLoop when a message with these
// facts must not be forwarded: it carries an X-Loop field equal to marker
// (compared without regard to case), or more than maxReceived Received:
// fields (zero means DefaultMaxReceived). The router and ingest call it to
// refuse such a message during the SMTP dialogue; the relay calls it again
// before every forward.
func CheckLoop(hf HeaderFacts, marker string, maxReceived int) error {
	if maxReceived <= 0 {
		maxReceived = DefaultMaxReceived
	}
	if marker != "" {
		for _, v := range hf.Loops {
			if strings.EqualFold(v, marker) {
				return fmt.Errorf("%w: the message already carries %s: %s (it was forwarded here before)", ErrLoop, LoopHeader, marker)
			}
		}
	}
	if hf.Received > maxReceived {
		return fmt.Errorf("%w: %d Received fields, more than %d hops (RFC 5321 §6.3)", ErrLoop, hf.Received, maxReceived)
	}
	return nil
}
