package mailbox

import (
	"bufio"
	"mime"
	"reflect"
	"strconv"
	"unsafe"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"
)

// Where imapserver lacks a way to write what we must answer, we write
// through its own writers, reached by the unexported fields below. Each
// is checked by name and type at start; if a new imapserver changes one,
// the caller falls back to imapserver's public API (losing only what that
// API cannot say) and TestIMAPServerLayout fails.
var (
	// UpdateWriter is a *Conn and a flag: updateWriter sets the Conn.
	updateWriterConn, updateWriterOK = field(reflect.TypeOf(imapserver.UpdateWriter{}), "conn", reflect.TypeOf((*imapserver.Conn)(nil)))
	// Conn.bw is the buffered writer every response goes through;
	// FetchResponseWriter.hasItem says the next item needs a separator.
	connBW, connBWOK        = field(reflect.TypeOf(imapserver.Conn{}), "bw", reflect.TypeOf((*bufio.Writer)(nil)))
	fetchHasItem, hasItemOK = field(reflect.TypeOf(imapserver.FetchResponseWriter{}), "hasItem", reflect.TypeOf(false))
)

// imapserverLayoutOK reports whether every field above is as we expect.
func imapserverLayoutOK() bool {
	return updateWriterOK && updateWriterConn.Offset == 0 && connBWOK && hasItemOK
}

// field finds a direct field of t by name and checks its type.
func field(t reflect.Type, name string, typ reflect.Type) (reflect.StructField, bool) {
	f, ok := t.FieldByName(name)
	return f, ok && len(f.Index) == 1 && f.Type == typ
}

// updateWriter returns an UpdateWriter for c outside Poll and Idle.
//
// imapserver hands one to Poll and Idle only, but STORE must announce a
// new keyword in FLAGS before the FETCH responses that show it (RFC 3501
// §7.2.6), and Store gets a FetchWriter. UpdateWriter is a conn and a
// flag; an UpdateWriter with expunges not allowed writes through c's
// encoder, which takes c's lock, as Poll's would. If a new imapserver
// changes the struct, the returned writer is nil and the caller falls
// back to announcing after the command.
func updateWriter(c *imapserver.Conn) *imapserver.UpdateWriter {
	if !updateWriterOK || updateWriterConn.Offset != 0 {
		return nil
	}
	w := new(imapserver.UpdateWriter)
	*(**imapserver.Conn)(unsafe.Pointer(w)) = c
	return w
}

// fetchItem returns the writer under w for a FETCH item written by hand,
// after the separator w would have written (and marks that an item was
// written, as w's own methods do), or nil if imapserver's layout changed.
//
// It is safe inside Session.Fetch: w holds c's encoder lock from
// CreateMessage to Close, and its encoder writes straight into c.bw (it
// buffers nothing of its own), so what we write lands in order.
func fetchItem(c *imapserver.Conn, w *imapserver.FetchResponseWriter) *bufio.Writer {
	if !connBWOK || !hasItemOK {
		return nil
	}
	bw := *(**bufio.Writer)(unsafe.Add(unsafe.Pointer(c), connBW.Offset))
	hasItem := (*bool)(unsafe.Add(unsafe.Pointer(w), fetchHasItem.Offset))
	if *hasItem {
		bw.WriteByte(' ')
	}
	*hasItem = true
	return bw
}

// writeEnvelopeItem writes the ENVELOPE item of a FETCH response.
// imapserver's WriteEnvelope writes every address's source route as NIL:
// imap.Address has no field for it. We write the item ourselves, as
// imapserver would but with the route (RFC 3501 §7.4.2 addr-adl), and
// fall back to WriteEnvelope if we cannot reach its writer.
func writeEnvelopeItem(c *imapserver.Conn, w *imapserver.FetchResponseWriter, e *envelope) {
	bw := fetchItem(c, w)
	if bw == nil {
		w.WriteEnvelope(e.withoutRoutes())
		return
	}
	enabled := c.EnabledCaps()
	s := imapStrings{bw, enabled.Has(imap.CapIMAP4rev2) || enabled.Has(imap.CapUTF8Accept)}
	bw.WriteString("ENVELOPE (")
	if e.Date.IsZero() {
		s.nstring("")
	} else {
		s.nstring(e.Date.Format(envelopeDateLayout))
	}
	bw.WriteByte(' ')
	s.nstring(mime.QEncoding.Encode("utf-8", e.Subject))
	for _, l := range e.addrs {
		bw.WriteByte(' ')
		if len(l) == 0 {
			s.nstring("")
			continue
		}
		bw.WriteByte('(')
		for i, a := range l {
			if i > 0 {
				bw.WriteByte(' ')
			}
			bw.WriteByte('(')
			s.nstring(mime.QEncoding.Encode("utf-8", a.Name))
			bw.WriteByte(' ')
			s.nstring(a.Route)
			bw.WriteByte(' ')
			s.nstring(a.Mailbox)
			bw.WriteByte(' ')
			s.nstring(a.Host)
			bw.WriteByte(')')
		}
		bw.WriteByte(')')
	}
	bw.WriteByte(' ')
	inReplyTo := ""
	for i, id := range e.InReplyTo {
		if i > 0 {
			inReplyTo += " "
		}
		inReplyTo += "<" + id + ">"
	}
	s.nstring(inReplyTo)
	bw.WriteByte(' ')
	if e.MessageID != "" {
		s.nstring("<" + e.MessageID + ">")
	} else {
		s.nstring("")
	}
	bw.WriteByte(')')
}

// envelopeDateLayout is the RFC 5322 §3.3 date-time imapserver writes.
const envelopeDateLayout = "Mon, 02 Jan 2006 15:04:05 -0700"

// imapStrings writes IMAP strings (RFC 3501 §4.3, §4.5) as imapserver's
// encoder does: NIL for "", quoted when it can be, a literal otherwise.
type imapStrings struct {
	w *bufio.Writer
	// utf8: the client enabled IMAP4rev2 or UTF8=ACCEPT, so quoted
	// strings may hold UTF-8 (RFC 9051 §4.3, RFC 6855 §3).
	utf8 bool
}

func (s imapStrings) nstring(v string) {
	switch {
	case v == "":
		s.w.WriteString("NIL")
	case s.quotable(v):
		s.w.WriteByte('"')
		for i := 0; i < len(v); i++ {
			if v[i] == '"' || v[i] == '\\' {
				s.w.WriteByte('\\')
			}
			s.w.WriteByte(v[i])
		}
		s.w.WriteByte('"')
	default:
		s.w.WriteString("{" + strconv.Itoa(len(v)) + "}\r\n")
		s.w.WriteString(v)
	}
}

func (s imapStrings) quotable(v string) bool {
	if len(v) > 4096 {
		return false
	}
	for i := 0; i < len(v); i++ {
		switch c := v[i]; {
		case c == 0 || c == '\r' || c == '\n':
			return false
		case c > 0x7f && !s.utf8:
			return false
		}
	}
	return true
}
