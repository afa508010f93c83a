package mailbox

import (
	"encoding/binary"
	"fmt"
	"strings"
	"time"
)

// Index layout (bbolt):
//
//	meta/   "uidvalidity" → last UIDVALIDITY handed out (u32)
//	blobs/  blob id (16 bytes) → reference count (u32)
//	dedup/  key → dedupRecord (JSON)
//	dedupt/ time (u64 unix nano) + key → nil, for pruning by age
//	users/  <user>/ "f"/ <folder name> → folderMeta (JSON)
//	                "m"/ <folder id u64>/ <uid u32> → message record
//	                "used" → bytes stored (i64)
var (
	bMeta   = []byte("meta")
	bBlobs  = []byte("blobs")
	bDedup  = []byte("dedup")
	bDedupT = []byte("dedupt")
	bUsers  = []byte("users")
	bF      = []byte("f")
	bM      = []byte("m")
	kUsed   = []byte("used")
	bSubs   = []byte("subs")
	kUIDV   = []byte("uidvalidity")
)

const blobIDLen = 16

type folderMeta struct {
	ID          uint64 `json:"id"`
	UIDValidity uint32 `json:"uidvalidity"`
	UIDNext     uint32 `json:"uidnext"`
	ModSeq      uint64 `json:"modseq"`
	Subscribed  bool   `json:"subscribed,omitempty"`
	SpecialUse  string `json:"special_use,omitempty"`
	Messages    uint32 `json:"messages"`
	Unseen      uint32 `json:"unseen"`
	Size        int64  `json:"size"`
	// RecentUID is the first UID no IMAP session has been told about
	// yet: the messages from it on are \Recent (RFC 3501 §2.3.2).
	RecentUID uint32 `json:"recent_uid,omitempty"`
}

type dedupRecord struct {
	User        string `json:"user"`
	FolderID    uint64 `json:"folder_id"`
	UIDValidity uint32 `json:"uidvalidity"`
	UID         uint32 `json:"uid"`
	At          int64  `json:"at"`
}

// normFolder validates a folder name and spells INBOX in upper case.
func normFolder(name string) (string, error) {
	if strings.EqualFold(name, Inbox) {
		return Inbox, nil
	}
	if name == "" || len(name) > 512 || strings.ContainsAny(name, "\x00\r\n*%") ||
		name[0] == Delimiter || name[len(name)-1] == Delimiter || strings.Contains(name, "//") {
		return "", fmt.Errorf("mailbox: folder %q: %w", name, ErrInvalidName)
	}
	if i := strings.IndexByte(name, Delimiter); i > 0 && strings.EqualFold(name[:i], Inbox) {
		name = Inbox + name[i:]
	}
	return name, nil
}

func checkUser(user string) error {
	if user == "" || len(user) > 255 || strings.ContainsAny(user, "\x00\r\n") {
		return fmt.Errorf("mailbox: user %q: %w", user, ErrInvalidName)
	}
	return nil
}

// message record: blob(16) size(8) date(8, unix nano) modseq(8) flags
// ("\n"-separated).
func encodeMsg(m *Message) []byte {
	b := make([]byte, 0, blobIDLen+24+16*len(m.Flags))
	b = append(b, m.blob[:]...)
	b = binary.BigEndian.AppendUint64(b, uint64(m.Size))
	b = binary.BigEndian.AppendUint64(b, uint64(m.Date.UnixNano()))
	b = binary.BigEndian.AppendUint64(b, m.ModSeq)
	b = append(b, strings.Join(m.Flags, "\n")...)
	return b
}

func decodeMsg(uid uint32, b []byte) (Message, error) {
	var m Message
	if len(b) < blobIDLen+24 {
		return m, fmt.Errorf("mailbox: corrupt message record uid %d", uid)
	}
	m.UID = uid
	copy(m.blob[:], b)
	b = b[blobIDLen:]
	m.Size = int64(binary.BigEndian.Uint64(b))
	m.Date = time.Unix(0, int64(binary.BigEndian.Uint64(b[8:])))
	m.ModSeq = binary.BigEndian.Uint64(b[16:])
	if f := b[24:]; len(f) > 0 {
		m.Flags = strings.Split(string(f), "\n")
	}
	return m, nil
}

func u32(v uint32) []byte { return binary.BigEndian.AppendUint32(nil, v) }

func u64(v uint64) []byte { return binary.BigEndian.AppendUint64(nil, v) }

func (f *folderMeta) export(name string) Folder {
	return Folder{
		Name: name, ID: f.ID, UIDValidity: f.UIDValidity, UIDNext: f.UIDNext, ModSeq: f.ModSeq,
		Subscribed: f.Subscribed, SpecialUse: f.SpecialUse, Messages: f.Messages, Unseen: f.Unseen, Size: f.Size,
		RecentUID: max(f.RecentUID, 1),
	}
}
