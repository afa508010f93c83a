package mailbox

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/argon2"
	"golang.org/x/crypto/bcrypt"

	"github.com/mailhook/mailhook/internal/testenv"
)

func openStore(t testing.TB, opts Options) *Store {
	t.Helper()
	s, err := Open(t.TempDir(), opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func verify(t testing.TB, s *Store) {
	t.Helper()
	if err := s.Verify(context.Background()); err != nil {
		t.Fatal(err)
	}
}

const sample = "From: Alice <alice@example.test>\nTo: support@example.test\nSubject: hello\nDate: Mon, 02 Jan 2006 15:04:05 +0000\n\nbody line\n"

func TestDeliverAndRead(t *testing.T) {
	ctx := context.Background()
	s := openStore(t, Options{})
	uid, err := s.Deliver(ctx, "support", "", strings.NewReader(sample), time.Time{}, "job-1")
	if err != nil || uid != 1 {
		t.Fatalf("Deliver = %d, %v, want 1, nil", uid, err)
	}
	f, msgs, err := s.Messages(ctx, "support", "inbox")
	if err != nil {
		t.Fatal(err)
	}
	want := strings.ReplaceAll(sample, "\n", "\r\n")
	if f.Name != Inbox || f.Messages != 1 || f.Unseen != 1 || f.UIDNext != 2 || len(msgs) != 1 || msgs[0].Size != int64(len(want)) {
		t.Fatalf("Messages = %+v %+v", f, msgs)
	}
	b, err := s.OpenMessage(msgs[0])
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(b)
	b.Close()
	if string(got) != want {
		t.Fatalf("body = %q, want %q", got, want)
	}
	// Same key: same UID, nothing appended.
	uid2, err := s.Deliver(ctx, "support", "", strings.NewReader("other"), time.Time{}, "job-1")
	if err != nil || uid2 != 1 {
		t.Fatalf("second Deliver = %d, %v, want 1, nil", uid2, err)
	}
	if f, _ := s.Folder(ctx, "support", Inbox); f.Messages != 1 {
		t.Fatalf("messages after dedup = %d, want 1", f.Messages)
	}
	verify(t, s)
}

func TestDeliverCreatesFolder(t *testing.T) {
	ctx := context.Background()
	s := openStore(t, Options{})
	if _, err := s.Deliver(ctx, "u", "Lists/go-nuts", strings.NewReader(sample), time.Time{}, "k1"); err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"Lists", "Lists/go-nuts"} {
		if f, err := s.Folder(ctx, "u", n); err != nil || !f.Subscribed {
			t.Errorf("Folder(%s) = %+v, %v", n, f, err)
		}
	}
	// IMAP APPEND does not create: the client gets TRYCREATE.
	if _, _, err := s.Append(ctx, "u", "Other", strings.NewReader(sample), time.Time{}, nil); !errors.Is(err, ErrNoSuchFolder) {
		t.Errorf("Append to missing = %v, want ErrNoSuchFolder", err)
	}
	if _, err := s.Deliver(ctx, "u", "a//b", strings.NewReader(sample), time.Time{}, "k2"); !IsPermanent(err) {
		t.Errorf("Deliver to invalid name = %v, want permanent", err)
	}
	verify(t, s)
}

func TestDefaultFolders(t *testing.T) {
	s := openStore(t, Options{})
	fs, err := s.Folders(context.Background(), "bob")
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, f := range fs {
		got[f.Name] = f.SpecialUse
		if !f.Subscribed {
			t.Errorf("%s not subscribed", f.Name)
		}
	}
	for _, d := range DefaultFolders {
		if u, ok := got[d.Name]; !ok || u != d.SpecialUse {
			t.Errorf("folder %s = %q,%v, want %q", d.Name, u, ok, d.SpecialUse)
		}
	}
}

func TestQuota(t *testing.T) {
	ctx := context.Background()
	s := openStore(t, Options{Quota: func(u string) int64 { return 200 }})
	if _, err := s.Deliver(ctx, "u", "", strings.NewReader(sample), time.Time{}, ""); err != nil {
		t.Fatal(err)
	}
	if err := s.CheckQuota(ctx, "u", 100); !errors.Is(err, ErrOverQuota) {
		t.Fatalf("CheckQuota = %v, want ErrOverQuota", err)
	}
	if err := s.CheckQuota(ctx, "u", 10); err != nil {
		t.Fatalf("CheckQuota(10) = %v", err)
	}
	_, err := s.Deliver(ctx, "u", "", strings.NewReader(sample), time.Time{}, "")
	if !errors.Is(err, ErrOverQuota) || !IsPermanent(err) {
		t.Fatalf("Deliver over quota = %v, want ErrOverQuota, permanent", err)
	}
	if _, err := s.Copy(ctx, "u", Inbox, []uint32{1}, "Trash"); !errors.Is(err, ErrOverQuota) {
		t.Fatalf("Copy over quota = %v, want ErrOverQuota", err)
	}
	if _, err := s.Move(ctx, "u", Inbox, []uint32{1}, "Trash"); err != nil {
		t.Fatalf("Move = %v (a move does not grow usage)", err)
	}
	verify(t, s)
}

func TestFlagsCopyMoveExpunge(t *testing.T) {
	ctx := context.Background()
	s := openStore(t, Options{})
	for i := 0; i < 3; i++ {
		if _, err := s.Deliver(ctx, "u", "", strings.NewReader(sample), time.Time{}, ""); err != nil {
			t.Fatal(err)
		}
	}
	w, err := s.Watch(ctx, "u", Inbox)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	ms, err := s.SetFlags(ctx, "u", Inbox, []uint32{1, 2, 9}, FlagsAdd, []string{`\seen`, "$Label1", `\Recent`})
	if err != nil || len(ms) != 2 || !slices.Equal(ms[0].Flags, []string{"$Label1", FlagSeen}) {
		t.Fatalf("SetFlags = %+v, %v", ms, err)
	}
	select {
	case <-w.C:
	default:
		t.Fatal("watcher not signalled after SetFlags")
	}
	if f, _ := s.Folder(ctx, "u", Inbox); f.Unseen != 1 {
		t.Fatalf("unseen = %d, want 1", f.Unseen)
	}
	res, err := s.Copy(ctx, "u", Inbox, []uint32{1, 3}, "Sent")
	if err != nil || !slices.Equal(res.Source, []uint32{1, 3}) || !slices.Equal(res.Dest, []uint32{1, 2}) {
		t.Fatalf("Copy = %+v, %v", res, err)
	}
	res, err = s.Move(ctx, "u", Inbox, []uint32{2}, "Trash")
	if err != nil || !slices.Equal(res.Dest, []uint32{1}) {
		t.Fatalf("Move = %+v, %v", res, err)
	}
	if _, err := s.SetFlags(ctx, "u", Inbox, []uint32{1, 3}, FlagsReplace, []string{FlagDeleted}); err != nil {
		t.Fatal(err)
	}
	gone, err := s.Expunge(ctx, "u", Inbox, []uint32{3})
	if err != nil || !slices.Equal(gone, []uint32{3}) {
		t.Fatalf("UID Expunge = %v, %v", gone, err)
	}
	gone, err = s.Expunge(ctx, "u", Inbox, nil)
	if err != nil || !slices.Equal(gone, []uint32{1}) {
		t.Fatalf("Expunge = %v, %v", gone, err)
	}
	// The bodies copied to Sent survive the expunge of their originals.
	_, sent, _ := s.Messages(ctx, "u", "Sent")
	for _, m := range sent {
		b, err := s.OpenMessage(m)
		if err != nil {
			t.Fatalf("open copied body: %v", err)
		}
		b.Close()
	}
	verify(t, s)
	n, _ := os.ReadDir(filepath.Join(s.Dir(), blobDir))
	if len(n) != 3 {
		t.Fatalf("body files = %d, want 3 (two in Sent, one in Trash)", len(n))
	}
}

func TestFolderOps(t *testing.T) {
	ctx := context.Background()
	s := openStore(t, Options{})
	if err := s.CreateFolder(ctx, "u", "Work/2026"); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateFolder(ctx, "u", "Work"); !errors.Is(err, ErrFolderExists) {
		t.Fatalf("CreateFolder existing = %v", err)
	}
	for _, bad := range []string{"", "/x", "x/", "a//b", "a*b", "a%"} {
		if err := s.CreateFolder(ctx, "u", bad); !errors.Is(err, ErrInvalidName) {
			t.Errorf("CreateFolder(%q) = %v, want ErrInvalidName", bad, err)
		}
	}
	f1, _ := s.Folder(ctx, "u", "Work/2026")
	if _, err := s.Deliver(ctx, "u", "Work/2026", strings.NewReader(sample), time.Time{}, ""); err != nil {
		t.Fatal(err)
	}
	if err := s.RenameFolder(ctx, "u", "Work", "Jobs"); err != nil {
		t.Fatal(err)
	}
	f2, err := s.Folder(ctx, "u", "Jobs/2026")
	if err != nil || f2.UIDValidity != f1.UIDValidity || f2.Messages != 1 {
		t.Fatalf("renamed child = %+v, %v", f2, err)
	}
	if err := s.DeleteFolder(ctx, "u", "Jobs"); !errors.Is(err, ErrInvalidName) {
		t.Fatalf("delete with children = %v", err)
	}
	if err := s.DeleteFolder(ctx, "u", "Jobs/2026"); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateFolder(ctx, "u", "Jobs/2026"); err != nil {
		t.Fatal(err)
	}
	if f3, _ := s.Folder(ctx, "u", "Jobs/2026"); f3.UIDValidity == f1.UIDValidity {
		t.Fatal("recreated folder kept its UIDVALIDITY")
	}
	if err := s.DeleteFolder(ctx, "u", "inbox"); err == nil {
		t.Fatal("deleted INBOX")
	}
	if f, _ := s.Folder(ctx, "u", "Jobs"); f.Subscribed {
		t.Fatal("CREATE subscribed")
	}
	if err := s.Subscribe(ctx, "u", "Jobs", true); err != nil {
		t.Fatal(err)
	}
	if f, _ := s.Folder(ctx, "u", "Jobs"); !f.Subscribed {
		t.Fatal("not subscribed")
	}
	// RENAME INBOX moves its messages and leaves it empty.
	s.Deliver(ctx, "u", "", strings.NewReader(sample), time.Time{}, "")
	if err := s.RenameFolder(ctx, "u", "INBOX", "Old"); err != nil {
		t.Fatal(err)
	}
	in, _ := s.Folder(ctx, "u", Inbox)
	old, _ := s.Folder(ctx, "u", "Old")
	if in.Messages != 0 || old.Messages != 1 {
		t.Fatalf("after RENAME INBOX: inbox %d, old %d", in.Messages, old.Messages)
	}
	verify(t, s)
}

func TestOrphanCleanup(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	s.Deliver(context.Background(), "u", "", strings.NewReader(sample), time.Time{}, "")
	s.Close()
	os.WriteFile(filepath.Join(dir, blobDir, "00112233445566778899aabbccddeeff"), []byte("x"), 0o600)
	os.WriteFile(filepath.Join(dir, tmpDir, "msg-1"), []byte("x"), 0o600)
	s, err = Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	verify(t, s)
	if e, _ := os.ReadDir(filepath.Join(dir, tmpDir)); len(e) != 0 {
		t.Fatalf("tmp not emptied: %v", e)
	}
}

func TestDedupExpires(t *testing.T) {
	now := time.Now()
	dir := t.TempDir()
	s, err := Open(dir, Options{Now: func() time.Time { return now }, DedupTTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	s.Deliver(context.Background(), "u", "", strings.NewReader(sample), time.Time{}, "k")
	s.Close()
	now = now.Add(2 * time.Hour)
	s, err = Open(dir, Options{Now: func() time.Time { return now }, DedupTTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	uid, err := s.Deliver(context.Background(), "u", "", strings.NewReader(sample), time.Time{}, "k")
	if err != nil || uid != 2 {
		t.Fatalf("Deliver after TTL = %d, %v, want 2", uid, err)
	}
}

func TestCopyCRLF(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"a\nb\n", "a\r\nb\r\n"},
		{"a\r\nb", "a\r\nb"},
		{"\n\n", "\r\n\r\n"},
		{"a\rb\n", "a\rb\r\n"},
		{strings.Repeat("x", 70000) + "\n", strings.Repeat("x", 70000) + "\r\n"},
		{strings.Repeat("x", 65535) + "\r\n", strings.Repeat("x", 65535) + "\r\n"},
	} {
		s := openStore(t, Options{})
		s.Deliver(context.Background(), "u", "", strings.NewReader(tc.in), time.Time{}, "")
		b, err := s.OpenBody(context.Background(), "u", Inbox, 1)
		if err != nil {
			t.Fatal(err)
		}
		got, _ := io.ReadAll(b)
		b.Close()
		if string(got) != tc.want {
			t.Errorf("stored %.20q…, want %.20q… (len %d vs %d)", got, tc.want, len(got), len(tc.want))
		}
	}
}

// TestHashPassword runs under CI's -race too (one cost-12 hash, ~4 s
// there, in parallel with the rest); only the verification of the new
// hash, as slow again, is left to runs without the race detector.
func TestHashPassword(t *testing.T) {
	t.Parallel()
	if _, err := HashPassword(strings.Repeat("x", 73)); err == nil {
		t.Error("HashPassword accepted a password longer than bcrypt's 72 bytes")
	}
	h, err := HashPassword("pw")
	if err != nil {
		t.Fatal(err)
	}
	if c, err := bcrypt.Cost([]byte(h)); c != 12 || err != nil {
		t.Errorf("HashPassword: cost %d, %v; want 12", c, err)
	}
	if !testenv.Race && CheckPassword(h, "pw") != nil {
		t.Error("HashPassword: the hash does not verify")
	}
}

func TestUsers(t *testing.T) {
	bh := mustHash(t, "pw-bcrypt")
	// argon2id PHC string for "pw-argon" (m=64 KiB, t=1, p=1), made with
	// golang.org/x/crypto/argon2.IDKey and a fixed salt.
	ah := argonHash("pw-argon", []byte("0123456789abcdef"), 64, 1, 1)
	u, err := NewUsers([]User{
		{Name: "support", PasswordHash: bh, Addresses: []string{"Support@Example.test"}, QuotaBytes: 1000},
		{Name: "ops", PasswordHash: ah, Addresses: []string{"ops@example.test"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, pw, want string
		ok             bool
	}{
		{"support", "pw-bcrypt", "support", true},
		{"support@example.test", "pw-bcrypt", "support", true},
		{"support", "wrong", "", false},
		{"ops", "pw-argon", "ops", true},
		{"ops", "pw-argon2", "", false},
		{"nobody", "x", "", false},
		{"support+x@example.test", "pw-bcrypt", "", false}, // one key per account
	} {
		got, err := u.Authenticate(tc.name, tc.pw)
		if (err == nil) != tc.ok || got != tc.want || (err != nil && !errors.Is(err, ErrAuthFailed)) {
			t.Errorf("Authenticate(%q, %q) = %q, %v", tc.name, tc.pw, got, err)
		}
	}
	for addr, want := range map[string]string{
		"support@example.test": "support", "support+tickets@EXAMPLE.test": "support", "<ops@example.test>": "ops",
		"other@example.test": "", "support": "",
	} {
		usr, ok := u.Lookup(addr)
		if ok != (want != "") || usr.Name != want {
			t.Errorf("Lookup(%q) = %q, %v, want %q", addr, usr.Name, ok, want)
		}
	}
	if got := u.Canonical("SUPPORT@example.test"); got != "support" {
		t.Errorf("Canonical = %q", got)
	}
	if got := u.Canonical("Nobody"); got != "nobody" {
		t.Errorf("Canonical unknown = %q", got)
	}
	if u.Quota("support") != 1000 || u.Quota("nobody") != 0 {
		t.Error("Quota")
	}
	if err := u.Replace([]User{{Name: "a", PasswordHash: "$argon2id$v=19$m=4194304,t=1,p=1$MDEyMzQ1Njc4OWFiY2RlZg$MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY"}}); err == nil {
		t.Error("Replace accepted an argon2id hash asking for 4 GiB")
	}
	if err := u.Replace([]User{{Name: "a", PasswordHash: "plain"}, {Name: "a", PasswordHash: bh}}); err == nil {
		t.Error("Replace accepted a plain password and a duplicate name")
	}
	if _, ok := u.Get("ops"); !ok {
		t.Error("a failed Replace changed the set")
	}
	if err := u.Replace([]User{{Name: "new", PasswordHash: bh}}); err != nil {
		t.Fatal(err)
	}
	if _, ok := u.Get("ops"); ok {
		t.Error("Replace kept an old user")
	}
}

func argonHash(pw string, salt []byte, mem, time uint32, threads uint8) string {
	key := argon2.IDKey([]byte(pw), salt, time, mem, threads, 32)
	return fmt.Sprintf("$argon2id$v=19$m=%d,t=%d,p=%d$%s$%s", mem, time, threads,
		base64.RawStdEncoding.EncodeToString(salt), base64.RawStdEncoding.EncodeToString(key))
}

// TestConcurrentDeliverDedup: workers racing on the same jobs (a queue
// redelivering after a lease expired) append each job once.
func TestConcurrentDeliverDedup(t *testing.T) {
	ctx := context.Background()
	s := openStore(t, Options{})
	const workers, jobs = 6, 15
	uids := make([][]uint32, workers)
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := 0; j < jobs; j++ {
				uid, err := s.Deliver(ctx, "u", "", strings.NewReader(sample), time.Time{}, fmt.Sprintf("job-%d", j))
				if err != nil {
					t.Error(err)
					return
				}
				uids[w] = append(uids[w], uid)
			}
		}()
	}
	wg.Wait()
	for w := 1; w < workers; w++ {
		if !slices.Equal(uids[w], uids[0]) {
			t.Fatalf("worker %d got UIDs %v, worker 0 %v", w, uids[w], uids[0])
		}
	}
	if f, _ := s.Folder(ctx, "u", Inbox); f.Messages != jobs {
		t.Fatalf("%d messages, want %d", f.Messages, jobs)
	}
	verify(t, s)
}

func TestWatchFollowsRename(t *testing.T) {
	ctx := context.Background()
	s := openStore(t, Options{})
	s.CreateFolder(ctx, "u", "A")
	w, err := s.Watch(ctx, "u", "A")
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if err := s.RenameFolder(ctx, "u", "A", "B"); err != nil {
		t.Fatal(err)
	}
	<-w.C // the rename itself
	if _, err := s.Deliver(ctx, "u", "B", strings.NewReader(sample), time.Time{}, ""); err != nil {
		t.Fatal(err)
	}
	select {
	case <-w.C:
	default:
		t.Fatal("no signal for a delivery to the renamed folder")
	}
}
