package mailbox

// The authenticated state (RFC 9051 §6.3): mailboxes listed, created,
// renamed, subscribed, their status, and APPEND.

import (
	"io"
	"slices"
	"sort"
	"strings"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"
)

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
