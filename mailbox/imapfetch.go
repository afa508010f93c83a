package mailbox

// FETCH: the items of each message, as imapserver and our own ENVELOPE
// writer send them.

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"strings"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"
	"github.com/emersion/go-message/textproto"
)

// Fetch answers FETCH (RFC 3501 §6.4.5): flags, dates, sizes and envelope
// from the index; BODYSTRUCTURE and sections from the body file.
func (s *imapSession) Fetch(w *imapserver.FetchWriter, numSet imap.NumSet, options *imap.FetchOptions) error {
	seqs, uids, err := s.resolve(numSet)
	if err != nil || len(uids) == 0 {
		return err
	}
	msgs, err := s.store().Get(s.ctx, s.user, s.sel.name, uids)
	if err != nil {
		return imapError(err)
	}
	// Reading a body without PEEK sets \Seen (RFC 3501 §6.4.5 BODY[]).
	markSeen := false
	for _, bs := range options.BodySection {
		if !bs.Peek {
			markSeen = true
		}
	}
	for _, bs := range options.BinarySection {
		if !bs.Peek { // BINARY.PEEK does not (RFC 3516 §4.2)
			markSeen = true
		}
	}
	seen := map[uint32]bool{}
	if markSeen && !s.sel.readOnly {
		var unseen []uint32
		for i := range msgs {
			if !msgs[i].HasFlag(FlagSeen) {
				unseen = append(unseen, msgs[i].UID)
			}
		}
		if len(unseen) > 0 {
			changed, err := s.store().SetFlags(s.ctx, s.user, s.sel.name, unseen, FlagsAdd, []string{FlagSeen})
			if err != nil {
				return imapError(err)
			}
			byUID := map[uint32][]string{}
			for _, m := range changed {
				byUID[m.UID] = m.Flags
			}
			for i := range msgs {
				if f, ok := byUID[msgs[i].UID]; ok {
					msgs[i].Flags = f
					s.sel.flags[msgs[i].UID] = f
					seen[msgs[i].UID] = true
				}
			}
		}
	}
	// Another session may have set a keyword this one has not announced
	// yet: FLAGS first (RFC 3501 §7.2.6).
	if uw := updateWriter(s.conn); uw != nil {
		newKW := false
		for i := range msgs {
			if options.Flags || seen[msgs[i].UID] {
				newKW = addKeywords(s.sel.keywords, msgs[i].Flags) || newKW
			}
		}
		if newKW {
			if err := uw.WriteMailboxFlags(s.sel.mailboxFlags()); err != nil {
				return err
			}
		}
	}
	seqByUID := make(map[uint32]uint32, len(uids))
	for i, uid := range uids {
		seqByUID[uid] = seqs[i]
	}
	for i := range msgs {
		m := &msgs[i]
		rw := w.CreateMessage(seqByUID[m.UID])
		if err := s.fetchOne(rw, m, options, seen[m.UID]); err != nil {
			// imapserver holds the connection's writer until the message's
			// writer is closed: without this, its NO for the failed FETCH
			// (a client gone mid-literal) waits for good, and so does
			// the server's Close.
			rw.Close()
			return err
		}
	}
	return nil
}

func (s *imapSession) fetchOne(w *imapserver.FetchResponseWriter, m *Message, o *imap.FetchOptions, seenNow bool) error {
	if o.UID { // imapserver sets it for UID FETCH (RFC 3501 §6.4.8)
		w.WriteUID(imap.UID(m.UID))
	}
	if o.Flags || seenNow {
		w.WriteFlags(s.msgFlags(m.UID, m.Flags))
	}
	if o.InternalDate {
		w.WriteInternalDate(m.Date)
	}
	if o.RFC822Size {
		w.WriteRFC822Size(m.Size)
	}
	needBody := o.Envelope || o.BodyStructure != nil || len(o.BodySection) > 0 || len(o.BinarySection) > 0 || len(o.BinarySectionSize) > 0
	if !needBody {
		return w.Close()
	}
	body, err := s.store().OpenMessage(*m)
	if err != nil {
		if errors.Is(err, ErrNoSuchMessage) {
			// Expunged by another session since we listed it: RFC 3501
			// §7.4.1 lets us answer with what we have.
			return w.Close()
		}
		return err
	}
	defer body.Close()
	rewind := func() { body.Seek(0, io.SeekStart) }
	if o.Envelope {
		rewind()
		h, err := textproto.ReadHeader(bufio.NewReader(body))
		env := &envelope{}
		if err == nil {
			env = readEnvelope(h)
		}
		writeEnvelopeItem(s.conn, w, env)
	}
	if o.BodyStructure != nil {
		rewind()
		w.WriteBodyStructure(defaultCharset(imapserver.ExtractBodyStructure(bufio.NewReader(body))))
	}
	for _, bs := range o.BodySection {
		if bs.Specifier == imap.PartSpecifierNone && len(bs.Part) == 0 {
			// BODY[] and BODY[]<o.n>: stream straight from the file.
			off, n := int64(0), m.Size
			if bs.Partial != nil {
				off = min(bs.Partial.Offset, m.Size)
				n = min(bs.Partial.Size, m.Size-off)
			}
			if err := writeSection(w.WriteBodySection(bs, n), io.NewSectionReader(body, off, n)); err != nil {
				return err
			}
			continue
		}
		rewind()
		buf := imapserver.ExtractBodySection(bufio.NewReader(body), bs)
		if err := writeSection(w.WriteBodySection(bs, int64(len(buf))), bytes.NewReader(buf)); err != nil {
			return err
		}
	}
	for _, bs := range o.BinarySection {
		rewind()
		buf := imapserver.ExtractBinarySection(bufio.NewReader(body), bs)
		if err := writeSection(w.WriteBinarySection(bs, int64(len(buf))), bytes.NewReader(buf)); err != nil {
			return err
		}
	}
	for _, bss := range o.BinarySectionSize {
		rewind()
		w.WriteBinarySectionSize(bss, imapserver.ExtractBinarySectionSize(bufio.NewReader(body), bss))
	}
	return w.Close()
}

// writeSection copies r into a FETCH section literal and closes it.
func writeSection(wc io.WriteCloser, r io.Reader) error {
	_, err := io.Copy(wc, r)
	if cerr := wc.Close(); err == nil {
		err = cerr
	}
	return err
}

// defaultCharset adds charset=us-ascii to text/plain parts that name no
// charset: RFC 2045 §5.2's default, which dovecot reports too.
func defaultCharset(bs imap.BodyStructure) imap.BodyStructure {
	switch b := bs.(type) {
	case *imap.BodyStructureSinglePart:
		if strings.EqualFold(b.Type, "text") && strings.EqualFold(b.Subtype, "plain") && b.Params["charset"] == "" {
			if b.Params == nil {
				b.Params = map[string]string{}
			}
			b.Params["charset"] = "us-ascii"
		}
	case *imap.BodyStructureMultiPart:
		for _, c := range b.Children {
			defaultCharset(c)
		}
	}
	return bs
}

func imapFlags(f []string) []imap.Flag {
	out := make([]imap.Flag, len(f))
	for i := range f {
		out[i] = imap.Flag(f[i])
	}
	return out
}

func flagStrings(f []imap.Flag) []string {
	out := make([]string, len(f))
	for i := range f {
		out[i] = string(f[i])
	}
	return out
}
