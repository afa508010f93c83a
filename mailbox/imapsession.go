package mailbox

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net/netip"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"
	"github.com/emersion/go-message/textproto"
)

// imapSession is one IMAP connection. imapserver calls its methods one at
// a time (IDLE included: the reader only waits for DONE meanwhile).
type imapSession struct {
	srv    *IMAPServer
	conn   *imapserver.Conn
	ctx    context.Context
	cancel context.CancelFunc
	ip     netip.Addr
	log    *slog.Logger

	user    string
	release func()

	// mu guards sel between the IDLE goroutine and Poll and Close:
	// imapserver may go on while an IDLE goroutine is still running.
	mu  sync.Mutex
	sel *selected
}

// selected is the session's view of its selected folder: the sequence
// numbers it has announced (RFC 3501 §2.3.1.2) and the flags it has sent.
// It follows the store by diffing on each poll, so changes made by other
// sessions, by deliveries and by POP3 reach it in order.
type selected struct {
	name        string
	readOnly    bool
	uidValidity uint32
	uids        []uint32 // uids[i] has sequence number i+1
	flags       map[uint32][]string
	uidNext     uint32 // first UID not yet announced
	modSeq      uint64 // folder ModSeq at the last complete sync
	pending     bool   // expunges seen but not yet announced
	watcher     *Watcher
	searchRes   imap.UIDSet
	// recent holds the UIDs that are \Recent in this session (RFC 3501
	// §2.3.2): claimed from the store on SELECT and as they arrive, or
	// only peeked at by EXAMINE.
	recent map[uint32]bool
	// keywords are the keywords announced in FLAGS (RFC 3501 §7.2.6);
	// a new one is announced before a message shows it.
	keywords map[string]bool
}

var (
	_ imapserver.SessionIMAP4rev2   = (*imapSession)(nil)
	_ imapserver.SessionAppendLimit = (*imapSession)(nil)
)

func (s *imapSession) Close() error {
	s.mu.Lock()
	s.unselect()
	s.mu.Unlock()
	if s.release != nil {
		s.release()
		s.release = nil
	}
	s.cancel()
	s.srv.mu.Lock()
	delete(s.srv.sessions, s)
	s.srv.mu.Unlock()
	s.log.Debug("imap: closed")
	return nil
}

// Login checks a password (RFC 3501 §6.2.3; AUTHENTICATE PLAIN ends here
// too). Throttled attempts are refused before the password is looked at;
// the hash is computed in the limiter's Turn, so that a client from a
// clean address is not queued behind an attacker's hashes.
func (s *imapSession) Login(username, password string) error {
	lim := s.srv.limiter
	key := s.srv.opts.Users.Canonical(username)
	throttled := func(err error) error {
		s.log.Warn("imap: login throttled", "user", username, "err", err)
		return &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeUnavailable, Text: "Too many failed logins, try again later"}
	}
	if err := lim.Check(s.ip, key); err != nil {
		return throttled(err)
	}
	done, err := lim.Turn(s.ctx, s.ip)
	if err != nil {
		return throttled(err)
	}
	// Failures counted while this attempt waited may have locked it out.
	if err := lim.Check(s.ip, key); err != nil {
		done()
		return throttled(err)
	}
	name, err := s.srv.opts.Users.Authenticate(username, password)
	done()
	if err != nil {
		d := lim.Failed(s.ip, key)
		if f := s.srv.opts.OnFailedLogin; f != nil {
			f()
		}
		s.log.Info("imap: login failed", "user", username, "delay", d)
		if d > 0 {
			t := time.NewTimer(d)
			select {
			case <-t.C:
			case <-s.ctx.Done():
				t.Stop()
			}
		}
		return imapserver.ErrAuthFailed
	}
	lim.Succeeded(s.ip, key)
	release, err := lim.Acquire(name)
	if err != nil {
		s.log.Warn("imap: too many sessions", "user", name)
		return &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeLimit, Text: "Too many connections for this user"}
	}
	if err := s.srv.opts.Store.EnsureUser(s.ctx, name); err != nil {
		release()
		return imapError(err)
	}
	s.user, s.release = name, release
	s.log = s.log.With("user", name)
	s.log.Info("imap: login")
	return nil
}

func (s *imapSession) AppendLimit() uint32 {
	return uint32(min(s.srv.opts.Store.opts.MaxMessageSize, int64(^uint32(0))))
}

func (s *imapSession) store() *Store { return s.srv.opts.Store }

// --- authenticated state ---

func (s *imapSession) Namespace() (*imap.NamespaceData, error) {
	// RFC 2342: one personal namespace, no prefix.
	return &imap.NamespaceData{Personal: []imap.NamespaceDescriptor{{Prefix: "", Delim: Delimiter}}}, nil
}

func (s *imapSession) Create(name string, options *imap.CreateOptions) error {
	// RFC 3501 §6.3.3: a trailing separator only declares that the
	// client means to create children; a server that needs no such
	// declaration ignores it.
	if len(name) > 1 {
		name = strings.TrimSuffix(name, string(Delimiter))
	}
	return imapError(s.store().CreateFolder(s.ctx, s.user, name))
}

func (s *imapSession) Delete(name string) error {
	return imapError(s.store().DeleteFolder(s.ctx, s.user, name))
}

func (s *imapSession) Rename(from, to string, options *imap.RenameOptions) error {
	return imapError(s.store().RenameFolder(s.ctx, s.user, from, to))
}

func (s *imapSession) Subscribe(name string) error {
	return imapError(s.store().Subscribe(s.ctx, s.user, name, true))
}

func (s *imapSession) Unsubscribe(name string) error {
	return imapError(s.store().Subscribe(s.ctx, s.user, name, false))
}

// List answers LIST and LSUB (RFC 3501 §6.3.8-9, RFC 5258, RFC 6154).
// Subscriptions outlive their folders (RFC 3501 §6.3.4): LIST
// (SUBSCRIBED) shows those \NonExistent, and RECURSIVEMATCH shows the
// parents of subscribed names that do not match themselves with CHILDINFO
// (RFC 5258 §3.5), which imapserver turns into LSUB's \Noselect.
func (s *imapSession) List(w *imapserver.ListWriter, ref string, patterns []string, options *imap.ListOptions) error {
	if len(patterns) == 0 {
		// LIST "" "": the hierarchy delimiter and root.
		return w.WriteList(&imap.ListData{Attrs: []imap.MailboxAttr{imap.MailboxAttrNoSelect}, Delim: Delimiter})
	}
	folders, err := s.store().Folders(s.ctx, s.user)
	if err != nil {
		return imapError(err)
	}
	orphans, err := s.store().Subscriptions(s.ctx, s.user)
	if err != nil {
		return imapError(err)
	}
	type entry struct {
		f          *Folder // nil: no such folder
		subscribed bool
	}
	names := map[string]*entry{}
	for i := range folders {
		names[folders[i].Name] = &entry{f: &folders[i], subscribed: folders[i].Subscribed}
	}
	for _, n := range orphans {
		if names[n] == nil {
			names[n] = &entry{subscribed: true}
		}
	}
	matches := func(n string) bool {
		return slices.ContainsFunc(patterns, func(p string) bool {
			return imapserver.MatchList(n, Delimiter, ref, p)
		})
	}
	// childInfo: names with a subscribed descendant that does not match
	// itself (RFC 5258 §3.5), parents that do not exist included.
	childInfo := map[string]bool{}
	if options.SelectSubscribed && options.SelectRecursiveMatch {
		for n, e := range names {
			if !e.subscribed || matches(n) {
				continue
			}
			for i := strings.LastIndexByte(n, Delimiter); i > 0; i = strings.LastIndexByte(n[:i], Delimiter) {
				p := n[:i]
				childInfo[p] = true
				if names[p] == nil {
					names[p] = &entry{}
				}
			}
		}
	}
	hasChildren := func(n string) bool {
		prefix := n + string(Delimiter)
		return slices.ContainsFunc(folders, func(f Folder) bool { return strings.HasPrefix(f.Name, prefix) })
	}
	sorted := make([]string, 0, len(names))
	for n := range names {
		sorted = append(sorted, n)
	}
	sort.Strings(sorted)
	for _, n := range sorted {
		e := names[n]
		if !matches(n) {
			continue
		}
		ci := childInfo[n] && !e.subscribed
		switch {
		case options.SelectSubscribed && !e.subscribed && !ci:
			continue
		case !options.SelectSubscribed && e.f == nil:
			continue // a subscription alone is not a mailbox
		case options.SelectSpecialUse && (e.f == nil || e.f.SpecialUse == ""):
			continue
		}
		d := &imap.ListData{Mailbox: n, Delim: Delimiter}
		if e.f == nil {
			d.Attrs = append(d.Attrs, imap.MailboxAttrNonExistent)
		}
		if hasChildren(n) {
			d.Attrs = append(d.Attrs, imap.MailboxAttrHasChildren)
		} else if e.f != nil {
			d.Attrs = append(d.Attrs, imap.MailboxAttrHasNoChildren)
		}
		if e.subscribed && (options.ReturnSubscribed || options.SelectSubscribed) {
			d.Attrs = append(d.Attrs, imap.MailboxAttrSubscribed)
		}
		if ci {
			d.ChildInfo = &imap.ListDataChildInfo{Subscribed: true}
		}
		if e.f != nil && e.f.SpecialUse != "" {
			// RFC 6154 §2: returned with plain LIST too, which is what
			// clients that never ask for RETURN (SPECIAL-USE) rely on.
			d.Attrs = append(d.Attrs, imap.MailboxAttr(e.f.SpecialUse))
		}
		if options.ReturnStatus != nil && e.f != nil {
			d.Status = s.statusData(*e.f, options.ReturnStatus)
		}
		if err := w.WriteList(d); err != nil {
			return err
		}
	}
	return nil
}

func (s *imapSession) statusData(f Folder, o *imap.StatusOptions) *imap.StatusData {
	d := &imap.StatusData{Mailbox: f.Name}
	if o.NumMessages {
		n := f.Messages
		d.NumMessages = &n
	}
	if o.UIDNext {
		d.UIDNext = imap.UID(f.UIDNext)
	}
	if o.UIDValidity {
		d.UIDValidity = f.UIDValidity
	}
	if o.NumUnseen {
		n := f.Unseen
		d.NumUnseen = &n
	}
	if o.NumRecent {
		var n uint32
		if f.RecentUID < f.UIDNext {
			if _, msgs, err := s.store().Messages(s.ctx, s.user, f.Name); err == nil {
				for i := range msgs {
					if msgs[i].UID >= f.RecentUID {
						n++
					}
				}
			}
		}
		d.NumRecent = &n
	}
	if o.Size {
		n := f.Size
		d.Size = &n
	}
	if o.NumDeleted {
		var n uint32
		if _, msgs, err := s.store().Messages(s.ctx, s.user, f.Name); err == nil {
			for i := range msgs {
				if msgs[i].HasFlag(FlagDeleted) {
					n++
				}
			}
		}
		d.NumDeleted = &n
	}
	if o.AppendLimit {
		n := s.AppendLimit()
		d.AppendLimit = &n
	}
	return d
}

// Status answers STATUS (RFC 3501 §6.3.10, RFC 8438 SIZE).
func (s *imapSession) Status(name string, options *imap.StatusOptions) (*imap.StatusData, error) {
	f, err := s.store().Folder(s.ctx, s.user, name)
	if err != nil {
		return nil, imapError(err)
	}
	return s.statusData(f, options), nil
}

// Append stores a message (RFC 3501 §6.3.11) and answers APPENDUID
// (RFC 4315).
func (s *imapSession) Append(name string, r imap.LiteralReader, options *imap.AppendOptions) (*imap.AppendData, error) {
	uidv, uid, err := s.store().Append(s.ctx, s.user, name, r, options.Time, flagStrings(options.Flags))
	if err != nil {
		io.Copy(io.Discard, r)
		return nil, tryCreate(err)
	}
	return &imap.AppendData{UID: imap.UID(uid), UIDValidity: uidv}, nil
}

// --- selected state ---

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
