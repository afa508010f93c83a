package webhook

import (
	"bytes"
	"cmp"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"time"

	"github.com/mailhook/mailhook/deliver"
	"github.com/mailhook/mailhook/inbound"
	"github.com/mailhook/mailhook/parse"
	"github.com/mailhook/mailhook/replyaddr"
)

// EventType is the type of the one event mailhook sends.
const EventType = "message.received"

// Event is the JSON body of a webhook delivery; its field names are the
// contract in DESIGN.md ("Webhooks"). Fields may be added, never renamed.
// Raw, when present, is always the last field: the sender relies on it to
// stream the raw message into the body after the rest.
type Event struct {
	Type string `json:"type"`
	// ID is the stable message id (inbound.Mail.StableID: envelope + content
	// hash), the same for the same message retried by the sending MTA. It
	// is the queue's commit key (deliver.CommitKey), so such a retry within
	// queue.dedup_window is not delivered again; past it, receivers can
	// drop the duplicate by this id or by its unchanged webhook-id.
	ID string `json:"id"`
	// MsgID is the id of this acceptance: the one in the SMTP reply
	// ("250 2.0.0 Ok: queued as ID"), the log, the API and the dashboard.
	MsgID string `json:"msg_id"`
	// ReceivedAt is when mailhook accepted the message, RFC 3339 in UTC.
	ReceivedAt string           `json:"received_at"`
	Route      string           `json:"route"`
	Envelope   inbound.Envelope `json:"envelope"`
	Auth       *inbound.Auth    `json:"auth"`
	Message    *parse.Message   `json:"message"`
	// Reply is the verdict on a signed reply address among the
	// recipients; absent when none is one (replyaddr).
	Reply *replyaddr.Result `json:"reply,omitempty"`
	// Spam is rspamd's verdict, absent when rspamd is not configured.
	Spam *inbound.Spam `json:"spam,omitempty"`
	// Raw is the base64 of the whole message as received, only for
	// endpoints with raw: true.
	Raw string `json:"raw,omitempty"`
}

// newEvent returns the event of one job, without Raw. Absent lists become
// empty JSON arrays rather than null, so receivers can iterate them without
// a check; mail itself is left untouched (it is read-only past its stage).
func newEvent(job *deliver.Job, mail *inbound.Mail) *Event {
	ev := &Event{
		Type:       EventType,
		ID:         cmp.Or(mail.StableID, mail.ID),
		ReceivedAt: mail.ReceivedAt.UTC().Format(time.RFC3339),
		Route:      job.Route,
		Envelope:   mail.Envelope,
	}
	ev.Envelope.RcptTo = nonNil(ev.Envelope.RcptTo)
	a := inbound.Auth{}
	if mail.Auth != nil {
		a = *mail.Auth
	}
	a.DKIM = nonNil(a.DKIM)
	ev.Auth = &a
	m := parse.Message{}
	if mail.Message != nil {
		m = *mail.Message
	}
	m.References = nonNil(m.References)
	m.To = nonNil(m.To)
	m.Cc = nonNil(m.Cc)
	m.ReplyTo = nonNil(m.ReplyTo)
	m.Headers = nonNil(m.Headers)
	m.Attachments = nonNil(m.Attachments)
	ev.Message = &m
	addParity(ev, job, mail)
	if mail.Spam != nil {
		sp := *mail.Spam
		sp.Symbols = nonNil(sp.Symbols)
		ev.Spam = &sp
	}
	return ev
}

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

// payload is the body of one delivery as three pieces: the JSON up to the
// raw message's base64 (or the whole JSON when the endpoint does not want
// the raw message), the raw message streamed through a base64 encoder, and
// the closing bytes. It reads the raw message once per open, never holding
// it in memory.
type payload struct {
	head []byte
	raw  deliver.RawOpener // nil when the body is head alone
	tail []byte
}

// rawTail closes the "raw" string and the event object.
var rawTail = []byte(`"}`)

// rawOpen is what marshalHead puts in place of the event's closing brace
// to open the "raw" string.
const rawOpen = `,"raw":"`

// event returns the event as BuildEvent(job, mail, nil) would: the body
// without the raw message, for the activity history.
func (p *payload) event() []byte {
	if p.raw == nil {
		return p.head
	}
	ev := make([]byte, 0, len(p.head)-len(rawOpen)+1)
	ev = append(ev, p.head[:len(p.head)-len(rawOpen)]...)
	return append(ev, '}')
}

// marshalHead encodes ev without Raw; with raw set it leaves the object
// open after `"raw":"` for the base64 to follow. HTML is not escaped
// (messages are full of <, > and &; \u003c would only swell the body).
func marshalHead(ev *Event, raw bool) ([]byte, error) {
	// The bodies go in with placeholders (see jsontext.go); ev.Message is
	// the event's own copy (newEvent).
	var bodies [4]string
	var holders [4]string
	fields := [4]*string{}
	n, extra := 0, 0
	if m := ev.Message; m != nil {
		for i, f := range [4]*string{&m.Text, &m.HTML, &m.StrippedText, &m.StrippedHTML} {
			if len(*f) < bigText {
				continue
			}
			bodies[i], fields[i] = *f, f
			*f, holders[i] = placeholder(i)
			n++
			extra += len(bodies[i]) + len(bodies[i])/8 + 2
		}
		defer func() {
			for i, f := range fields {
				if f != nil {
					*f = bodies[i]
				}
			}
		}()
	}
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(ev); err != nil {
		return nil, fmt.Errorf("webhook: encode event: %w", err)
	}
	head := bytes.TrimRight(b.Bytes(), "\n")
	if n > 0 {
		var err error
		if head, err = fillBodies(head, bodies, holders, extra+len(rawOpen)); err != nil {
			return nil, err
		}
	}
	if !raw {
		return head, nil
	}
	// Raw is empty, so omitted, and is the last field: replace the final
	// '}' by the opening of "raw". Base64 (RFC 4648 section 4) uses no
	// character JSON needs escaped, so the bytes that follow are a valid
	// JSON string as they are.
	if len(head) == 0 || head[len(head)-1] != '}' {
		return nil, errors.New("webhook: encode event: not an object")
	}
	head = append(head[:len(head)-1], rawOpen...)
	return head, nil
}

// fillBodies returns head with each placeholder of holders replaced by its
// body, JSON-encoded, in one allocation of the size expected (plus room).
// A body the same as one before it (the stripped text of a message with
// nothing to strip) is copied from that one's encoding.
func fillBodies(head []byte, bodies, holders [4]string, room int) ([]byte, error) {
	type spot struct{ at, i int }
	var spots []spot
	for i, h := range holders {
		if h == "" {
			continue
		}
		at := bytes.Index(head, []byte(h))
		if at < 0 || bytes.Index(head[at+len(h):], []byte(h)) >= 0 {
			return nil, errors.New("webhook: encode event: body placeholder not found once")
		}
		spots = append(spots, spot{at, i})
	}
	slices.SortFunc(spots, func(a, b spot) int { return a.at - b.at })
	out := make([]byte, 0, len(head)+room)
	var done [4][2]int // where each body's encoding went in out
	prev := 0
	for _, sp := range spots {
		out = append(out, head[prev:sp.at]...)
		start := len(out)
		copied := false
		for j, d := range done {
			if d[1] > 0 && bodies[j] == bodies[sp.i] {
				out = append(out, out[d[0]:d[1]]...)
				copied = true
				break
			}
		}
		if !copied {
			out = appendJSONString(out, bodies[sp.i])
		}
		done[sp.i] = [2]int{start, len(out)}
		prev = sp.at + len(holders[sp.i])
	}
	return append(out, head[prev:]...), nil
}

// open returns a reader of the whole body.
func (p *payload) open() (io.ReadCloser, error) {
	if p.raw == nil {
		return io.NopCloser(bytes.NewReader(p.head)), nil
	}
	rc, err := p.raw()
	if err != nil {
		return nil, fmt.Errorf("webhook: open raw message: %w", err)
	}
	return &bodyReader{
		r: io.MultiReader(bytes.NewReader(p.head), newB64Reader(rc), bytes.NewReader(p.tail)),
		c: rc,
	}, nil
}

type bodyReader struct {
	r io.Reader
	c io.Closer
}

func (b *bodyReader) Read(p []byte) (int, error) { return b.r.Read(p) }
func (b *bodyReader) Close() error               { return b.c.Close() }

// b64Reader reads src encoded as standard base64 (RFC 4648 section 4),
// padded only at the very end.
type b64Reader struct {
	src     io.Reader
	in      [12 << 10]byte // a multiple of 3: no padding inside the stream
	out     [16 << 10]byte
	pending []byte
	err     error
}

func newB64Reader(src io.Reader) *b64Reader { return &b64Reader{src: src} }

func (r *b64Reader) Read(p []byte) (int, error) {
	for len(r.pending) == 0 {
		if r.err != nil {
			return 0, r.err
		}
		n, err := io.ReadFull(r.src, r.in[:])
		if n > 0 {
			base64.StdEncoding.Encode(r.out[:], r.in[:n])
			r.pending = r.out[:base64.StdEncoding.EncodedLen(n)]
		}
		switch {
		case err == io.EOF || err == io.ErrUnexpectedEOF:
			r.err = io.EOF
		case err != nil:
			r.err = err
		}
	}
	n := copy(p, r.pending)
	r.pending = r.pending[n:]
	return n, nil
}

// BuildEvent returns the exact JSON body a webhook delivery of job carries,
// with the base64 of raw in "raw" when raw is not nil (pass nil for an
// endpoint without raw: true). `mailhook route test` prints it.
func BuildEvent(job *deliver.Job, mail *inbound.Mail, raw io.Reader) ([]byte, error) {
	head, err := marshalHead(newEvent(job, mail), raw != nil)
	if err != nil {
		return nil, err
	}
	if raw == nil {
		return head, nil
	}
	b := bytes.NewBuffer(head)
	if _, err := io.Copy(b, newB64Reader(raw)); err != nil {
		return nil, fmt.Errorf("webhook: read raw message: %w", err)
	}
	b.Write(rawTail)
	return b.Bytes(), nil
}
