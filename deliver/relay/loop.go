package relay

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"strings"
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

// ScanHeader reads the header section of the message in r (up to the
// empty line, at most 1 MiB; whatever lies beyond is ignored) and returns
// its HeaderFacts. It accepts LF as well as CRLF line ends and tolerates
// malformed lines.
func ScanHeader(r io.Reader) (HeaderFacts, error) {
	var hf HeaderFacts
	br := bufio.NewReader(io.LimitReader(r, maxHeaderScan))
	var name, value strings.Builder
	flush := func() {
		if name.Len() > 0 {
			hf.add(name.String(), value.String())
		}
		name.Reset()
		value.Reset()
	}
	for {
		line, err := br.ReadString('\n')
		trimmed := strings.TrimRight(line, "\r\n")
		if trimmed == "" {
			break // end of header (RFC 5322 §2.1), or of input
		}
		switch {
		case trimmed[0] == ' ' || trimmed[0] == '\t':
			// Continuation of a folded field (RFC 5322 §2.2.3).
			if name.Len() > 0 && value.Len() < 4096 {
				value.WriteString(trimmed)
			}
		default:
			flush()
			if i := strings.IndexByte(trimmed, ':'); i > 0 {
				name.WriteString(strings.TrimRight(trimmed[:i], " \t"))
				value.WriteString(trimmed[i+1:])
			}
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return hf, fmt.Errorf("relay: read header: %w", err)
		}
	}
	flush()
	return hf, nil
}

// HeaderFactsOf returns the HeaderFacts of already parsed header fields, as
// parse.Message.Headers holds them ([name, value] pairs).
func HeaderFactsOf(headers [][2]string) HeaderFacts {
	var hf HeaderFacts
	for _, h := range headers {
		hf.add(h[0], h[1])
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
