package mailbox

// The selected state (RFC 9051 §6.4): SELECT, the updates sent to the
// client (sync, IDLE), STORE, COPY, MOVE and EXPUNGE.

import (
	"errors"
	"slices"
	"sort"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"
)

// Select opens a folder (RFC 3501 §6.3.1-2).
func (s *imapSession) Select(name string, options *imap.SelectOptions) (*imap.SelectData, error) {
	s.unselect()
	f, msgs, err := s.store().Messages(s.ctx, s.user, name)
	if err != nil {
		return nil, imapError(err)
	}
	w, err := s.store().Watch(s.ctx, s.user, f.Name)
	if err != nil {
		return nil, imapError(err)
	}
	sel := &selected{
		name: f.Name, readOnly: options != nil && options.ReadOnly, uidValidity: f.UIDValidity,
		flags: make(map[uint32][]string, len(msgs)), uidNext: f.UIDNext, modSeq: f.ModSeq, watcher: w,
		uids: make([]uint32, len(msgs)), recent: map[uint32]bool{}, keywords: map[string]bool{},
	}
	firstRecent, err := s.firstRecent(sel, f)
	if err != nil {
		w.Close()
		return nil, imapError(err)
	}
	var firstUnseen uint32
	for i := range msgs {
		sel.uids[i] = msgs[i].UID
		sel.flags[msgs[i].UID] = msgs[i].Flags
		if firstUnseen == 0 && !msgs[i].HasFlag(FlagSeen) {
			firstUnseen = uint32(i + 1)
		}
		if msgs[i].UID >= firstRecent {
			sel.recent[msgs[i].UID] = true
		}
		addKeywords(sel.keywords, msgs[i].Flags)
	}
	s.sel = sel
	flags := sel.mailboxFlags()
	perm := append(slices.Clone(flags), imap.FlagWildcard)
	if sel.readOnly {
		perm = nil
	}
	return &imap.SelectData{
		Flags:             flags,
		PermanentFlags:    perm,
		NumMessages:       uint32(len(msgs)),
		NumRecent:         uint32(len(sel.recent)),
		FirstUnseenSeqNum: firstUnseen,
		UIDNext:           imap.UID(f.UIDNext),
		UIDValidity:       f.UIDValidity,
	}, nil
}

// firstRecent returns the first UID that is \Recent for the session
// among those below f.UIDNext: SELECT claims them (no other session will
// see them as recent), EXAMINE only looks (RFC 3501 §6.3.2: EXAMINE does
// not change the \Recent state).
func (s *imapSession) firstRecent(sel *selected, f Folder) (uint32, error) {
	if sel.readOnly || f.RecentUID >= f.UIDNext {
		return f.RecentUID, nil // nothing to claim: no write transaction
	}
	return s.store().ClaimRecent(s.ctx, s.user, f.Name, f.UIDNext)
}

// addKeywords adds the keywords (flags without a backslash) among flags
// to set and reports whether any was new.
func addKeywords(set map[string]bool, flags []string) bool {
	added := false
	for _, fl := range flags {
		if len(fl) > 0 && fl[0] != '\\' && !set[fl] {
			set[fl] = true
			added = true
		}
	}
	return added
}

// mailboxFlags is the FLAGS list: the system flags and every keyword in
// use (RFC 3501 §7.2.6).
func (sel *selected) mailboxFlags() []imap.Flag {
	flags := []imap.Flag{imap.FlagSeen, imap.FlagAnswered, imap.FlagFlagged, imap.FlagDeleted, imap.FlagDraft}
	kw := make([]string, 0, len(sel.keywords))
	for k := range sel.keywords {
		kw = append(kw, k)
	}
	sort.Strings(kw)
	for _, k := range kw {
		flags = append(flags, imap.Flag(k))
	}
	return flags
}

// msgFlags is what FETCH FLAGS says of uid: its stored flags, plus
// \Recent for IMAP4rev1 clients (IMAP4rev2 dropped it, RFC 9051 §E.1).
func (s *imapSession) msgFlags(uid uint32, flags []string) []imap.Flag {
	out := imapFlags(flags)
	if s.sel.recent[uid] && !s.conn.EnabledCaps().Has(imap.CapIMAP4rev2) {
		out = append(out, imap.Flag(`\Recent`))
	}
	return out
}

func (s *imapSession) unselect() {
	if s.sel != nil {
		s.sel.watcher.Close()
		s.sel = nil
	}
}

func (s *imapSession) Unselect() error {
	s.unselect()
	return nil
}

// sync brings the session's view up to date with the store and writes
// the untagged EXPUNGE, EXISTS and FETCH FLAGS responses (RFC 3501 §7.4.1,
// §7.3.1, §7.4.2). Expunges are held back when not allowed (during FETCH,
// STORE, SEARCH: RFC 3501 §7.4.1).
func (s *imapSession) sync(w *imapserver.UpdateWriter, allowExpunge bool) error {
	sel := s.sel
	if sel == nil {
		return nil
	}
	if f, err := s.store().Folder(s.ctx, s.user, sel.name); errors.Is(err, ErrNoSuchFolder) {
		// Deleted or renamed by another session: keep the stale view
		// (commands on it answer NO) rather than drop the connection,
		// which is what an error from Poll does.
		return nil
	} else if err != nil {
		return imapError(err)
	} else if f.ModSeq == sel.modSeq && !(sel.pending && allowExpunge) {
		return nil
	}
	f, msgs, err := s.store().Messages(s.ctx, s.user, sel.name)
	if err != nil {
		return imapError(err)
	}
	cur := make(map[uint32]*Message, len(msgs))
	for i := range msgs {
		cur[msgs[i].UID] = &msgs[i]
	}
	sel.pending = false
	// New keywords are announced before any message shows them.
	newKW := false
	for i := range msgs {
		newKW = addKeywords(sel.keywords, msgs[i].Flags) || newKW
	}
	if newKW {
		if err := w.WriteMailboxFlags(sel.mailboxFlags()); err != nil {
			return err
		}
	}
	for i := len(sel.uids) - 1; i >= 0; i-- {
		uid := sel.uids[i]
		if cur[uid] != nil {
			continue
		}
		if !allowExpunge {
			sel.pending = true
			continue
		}
		if err := w.WriteExpunge(uint32(i + 1)); err != nil {
			return err
		}
		sel.uids = slices.Delete(sel.uids, i, i+1)
		delete(sel.flags, uid)
		delete(sel.recent, uid)
	}
	for i, uid := range sel.uids {
		m := cur[uid]
		if m == nil || slices.Equal(m.Flags, sel.flags[uid]) {
			continue
		}
		sel.flags[uid] = m.Flags
		if err := w.WriteMessageFlags(uint32(i+1), imap.UID(uid), s.msgFlags(uid, m.Flags)); err != nil {
			return err
		}
	}
	added := false
	for i := range msgs {
		if msgs[i].UID >= sel.uidNext {
			sel.uids = append(sel.uids, msgs[i].UID)
			sel.flags[msgs[i].UID] = msgs[i].Flags
			added = true
		}
	}
	if added {
		first, err := s.firstRecent(sel, f)
		if err != nil {
			return imapError(err)
		}
		for _, uid := range sel.uids {
			if uid >= max(first, sel.uidNext) {
				sel.recent[uid] = true
			}
		}
	}
	sel.uidNext = f.UIDNext
	sel.modSeq = f.ModSeq
	if added {
		if err := w.WriteNumMessages(uint32(len(sel.uids))); err != nil {
			return err
		}
		return w.WriteNumRecent(uint32(len(sel.recent)))
	}
	return nil
}

// Poll runs after each command. It takes mu because imapserver polls
// after an IDLE that ended with a dropped connection without waiting for
// the IDLE goroutine.
func (s *imapSession) Poll(w *imapserver.UpdateWriter, allowExpunge bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sync(w, allowExpunge)
}

// Idle waits for changes (RFC 2177): the store's watcher signals each
// commit, so a delivery reaches an idling client at once.
func (s *imapSession) Idle(w *imapserver.UpdateWriter, stop <-chan struct{}) error {
	s.mu.Lock()
	sel := s.sel
	s.mu.Unlock()
	if sel == nil {
		select {
		case <-stop:
		case <-s.ctx.Done():
		}
		return nil
	}
	sync := func() error {
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.sel != sel {
			return nil // closed meanwhile
		}
		return s.sync(w, true)
	}
	if err := sync(); err != nil {
		return err
	}
	for {
		select {
		case <-stop:
			return nil
		case <-s.ctx.Done():
			return nil
		case <-sel.watcher.C:
			if err := sync(); err != nil {
				return err
			}
		}
	}
}

// errBadSeq answers a sequence number past the last message, "*" in an
// empty folder included (RFC 9051 §9, seq-number), as dovecot does.
var errBadSeq = &imap.Error{Type: imap.StatusResponseTypeBad, Text: "Invalid message sequence number"}

// resolve maps a sequence or UID set onto the view: the sequence numbers
// and UIDs it names, in sequence order. UIDs that do not exist are
// ignored (RFC 3501 §6.4.8); sequence numbers past the end are an error.
func (s *imapSession) resolve(numSet imap.NumSet) (seqs, uids []uint32, err error) {
	sel := s.sel
	if imap.IsSearchRes(numSet) {
		numSet = sel.searchRes
	}
	switch set := numSet.(type) {
	case imap.SeqSet:
		set = slices.Clone(set)
		n := uint32(len(sel.uids))
		for i := range set {
			staticRange(&set[i].Start, &set[i].Stop, n)
			if set[i].Start == 0 || set[i].Stop > n {
				return nil, nil, errBadSeq
			}
		}
		for i, uid := range sel.uids {
			if set.Contains(uint32(i + 1)) {
				seqs = append(seqs, uint32(i+1))
				uids = append(uids, uid)
			}
		}
	case imap.UIDSet:
		set = slices.Clone(set)
		var maxUID uint32
		if len(sel.uids) > 0 {
			maxUID = sel.uids[len(sel.uids)-1]
		}
		for i := range set {
			staticRange((*uint32)(&set[i].Start), (*uint32)(&set[i].Stop), maxUID)
		}
		for i, uid := range sel.uids {
			if set.Contains(imap.UID(uid)) {
				seqs = append(seqs, uint32(i+1))
				uids = append(uids, uid)
			}
		}
	}
	return seqs, uids, nil
}

// staticRange replaces "*" (0) by max (RFC 3501 §9 seq-range: "*" is the
// largest number in use; a range may be given in either order).
func staticRange(start, stop *uint32, max uint32) {
	if *start == 0 {
		*start = max
	}
	if *stop == 0 {
		*stop = max
	}
	if *start > *stop {
		*start, *stop = *stop, *start
	}
}

func (s *imapSession) seqOf(uid uint32) int {
	i, ok := slices.BinarySearch(s.sel.uids, uid)
	if !ok {
		return -1
	}
	return i
}

// Store changes flags (RFC 3501 §6.4.6).
func (s *imapSession) Store(w *imapserver.FetchWriter, numSet imap.NumSet, flags *imap.StoreFlags, options *imap.StoreOptions) error {
	if s.sel.readOnly {
		return &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeCannot, Text: "Mailbox is read-only"}
	}
	_, uids, err := s.resolve(numSet)
	if err != nil {
		return err
	}
	op := FlagsReplace
	switch flags.Op {
	case imap.StoreFlagsAdd:
		op = FlagsAdd
	case imap.StoreFlagsDel:
		op = FlagsRemove
	}
	msgs, err := s.store().SetFlags(s.ctx, s.user, s.sel.name, uids, op, flagStrings(flags.Flags))
	if err != nil {
		return imapError(err)
	}
	if uw := updateWriter(s.conn); uw != nil {
		// RFC 3501 §7.2.6: FLAGS before the FETCH that shows a new
		// keyword, ours or one another session set (otherwise the Poll
		// after the command announces it).
		newKW := addKeywords(s.sel.keywords, flagStrings(flags.Flags))
		for _, m := range msgs {
			newKW = addKeywords(s.sel.keywords, m.Flags) || newKW
		}
		if newKW {
			if err := uw.WriteMailboxFlags(s.sel.mailboxFlags()); err != nil {
				return err
			}
		}
	}
	for _, m := range msgs {
		i := s.seqOf(m.UID)
		if i < 0 {
			continue
		}
		s.sel.flags[m.UID] = m.Flags
		if flags.Silent {
			continue
		}
		rw := w.CreateMessage(uint32(i + 1))
		rw.WriteUID(imap.UID(m.UID))
		rw.WriteFlags(s.msgFlags(m.UID, m.Flags))
		if err := rw.Close(); err != nil {
			return err
		}
	}
	return nil
}

// Copy copies messages (RFC 3501 §6.4.7) and answers COPYUID (RFC 4315).
func (s *imapSession) Copy(numSet imap.NumSet, dest string) (*imap.CopyData, error) {
	_, uids, err := s.resolve(numSet)
	if err != nil {
		return nil, err
	}
	res, err := s.store().Copy(s.ctx, s.user, s.sel.name, uids, dest)
	if err != nil {
		return nil, tryCreate(err)
	}
	return copyData(res), nil
}

// copyData builds the COPYUID response code (RFC 4315 §3), or nil when
// nothing was copied: an empty set cannot be written.
func copyData(res CopyResult) *imap.CopyData {
	if len(res.Source) == 0 {
		return nil
	}
	d := &imap.CopyData{UIDValidity: res.UIDValidity}
	for i := range res.Source {
		d.SourceUIDs.AddNum(imap.UID(res.Source[i]))
		d.DestUIDs.AddNum(imap.UID(res.Dest[i]))
	}
	return d
}

// Move moves messages (RFC 6851 §3.3: COPYUID first, then the EXPUNGEs).
func (s *imapSession) Move(w *imapserver.MoveWriter, numSet imap.NumSet, dest string) error {
	if s.sel.readOnly {
		return &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeCannot, Text: "Mailbox is read-only"}
	}
	_, uids, err := s.resolve(numSet)
	if err != nil {
		return err
	}
	res, err := s.store().Move(s.ctx, s.user, s.sel.name, uids, dest)
	if err != nil {
		return tryCreate(err)
	}
	if len(res.Source) == 0 {
		return nil // nothing moved: no COPYUID, no EXPUNGE
	}
	if err := w.WriteCopyData(copyData(res)); err != nil {
		return err
	}
	return s.expungeView(res.Source, w.WriteExpunge)
}

// expungeView drops uids from the view, announcing each with its
// sequence number at that moment, highest first.
func (s *imapSession) expungeView(uids []uint32, write func(uint32) error) error {
	uids = slices.Clone(uids)
	sort.Slice(uids, func(i, j int) bool { return uids[i] > uids[j] })
	for _, uid := range uids {
		i := s.seqOf(uid)
		if i < 0 {
			continue
		}
		s.sel.uids = slices.Delete(s.sel.uids, i, i+1)
		delete(s.sel.flags, uid)
		delete(s.sel.recent, uid)
		if write != nil {
			if err := write(uint32(i + 1)); err != nil {
				return err
			}
		}
	}
	return nil
}

// Expunge removes \Deleted messages (RFC 3501 §6.4.3; UID EXPUNGE, RFC
// 4315 §2.1). CLOSE calls it with a writer that does not write.
func (s *imapSession) Expunge(w *imapserver.ExpungeWriter, uids *imap.UIDSet) error {
	if s.sel.readOnly {
		return nil // RFC 3501 §6.4.2: CLOSE on EXAMINE expunges nothing
	}
	var list []uint32
	if uids != nil {
		_, list, _ = s.resolve(*uids) // a UID set: never an error
		if len(list) == 0 {
			return nil
		}
	}
	gone, err := s.store().Expunge(s.ctx, s.user, s.sel.name, list)
	if err != nil {
		return imapError(err)
	}
	write := func(seq uint32) error { return w.WriteExpunge(seq) }
	return s.expungeView(gone, write)
}
