package queuetest

// Tests of an embedded backend: one that keeps its store under a data
// directory, with raw messages as files in <dir>/queue/msg, and locks the
// directory against a second process.

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mailhook/mailhook/deliver"
	"github.com/mailhook/mailhook/inbound"
)

// OpenFunc opens an embedded backend's store under dir; inline says
// whether small raw messages are kept inside the store (else every raw
// message is a file).
type OpenFunc func(dir string, inline bool) (deliver.Backend, error)

func mustOpen(t *testing.T, open OpenFunc, dir string, inline bool) deliver.Backend {
	t.Helper()
	q, err := open(dir, inline)
	if err != nil {
		t.Fatalf("Open = %v", err)
	}
	return q
}

// Lock checks that a second Open of one data dir fails with errLocked while
// the first is open, and succeeds once it is closed.
func Lock(t *testing.T, open OpenFunc, errLocked error) {
	dir := t.TempDir()
	q := mustOpen(t, open, dir, false)
	q2, err := open(dir, false)
	if err == nil {
		q2.Close()
	}
	if !errors.Is(err, errLocked) {
		t.Fatalf("second Open of one data dir = %v, want %v", err, errLocked)
	}
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	mustOpen(t, open, dir, false).Close()
}

// Recover reopens a store left as a crash leaves it: a lease held, a raw
// file without a record, a record without its raw file.
func Recover(t *testing.T, open OpenFunc) {
	ctx := t.Context()
	dir := t.TempDir()
	q := mustOpen(t, open, dir, false)
	now := time.Now()
	if err := q.Commit(ctx, NewMail(t, "m1", "one"), []*deliver.Job{NewJob("j1", "m1", deliver.KindWebhook, now)}); err != nil {
		t.Fatal(err)
	}
	if err := q.Commit(ctx, NewMail(t, "m2", "two"), []*deliver.Job{NewJob("j2", "m2", deliver.KindWebhook, now.Add(time.Hour))}); err != nil {
		t.Fatal(err)
	}
	taken, err := q.Take(ctx, deliver.Kinds, 1, time.Hour)
	if err != nil || len(taken) != 1 {
		t.Fatalf("Take = %v, %v", taken, err)
	}
	q.Close()

	msgDir := filepath.Join(dir, "queue", "msg")
	ents, _ := os.ReadDir(msgDir)
	if len(ents) != 2 {
		t.Fatalf("msg dir holds %d files, want 2", len(ents))
	}
	// Lose m2's raw file; leave an orphan as a crash before the commit
	// point would.
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), "m2-") {
			os.Remove(filepath.Join(msgDir, e.Name()))
		}
	}
	orphan := filepath.Join(msgDir, "m3-0123456789ab.eml")
	if err := os.WriteFile(orphan, []byte("three"), 0o600); err != nil {
		t.Fatal(err)
	}

	q = mustOpen(t, open, dir, false)
	defer q.Close()
	if _, err := os.Stat(orphan); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("orphan raw file survived Open: %v", err)
	}
	j1, err := q.Get(ctx, "j1")
	if err != nil || j1.StateAt(time.Now()) != deliver.StateReady || j1.Attempts != 1 || len(j1.History) != 1 {
		t.Errorf("leased job after reopen = %+v, %v; want ready, attempts 1, the interrupted attempt recorded", j1, err)
	}
	j2, err := q.Get(ctx, "j2")
	if err != nil || j2.StateAt(time.Now()) != deliver.StateDead || j2.LastError == "" {
		t.Errorf("job whose raw file is missing = %+v, %v; want dead with an error", j2, err)
	}
	got, err := q.Take(ctx, deliver.Kinds, 5, time.Minute)
	if err != nil || len(got) != 1 || got[0].ID != "j1" || got[0].Attempts != 2 {
		t.Fatalf("Take after reopen = %+v, %v", got, err)
	}
	wantRaw(t, q, "m1", "one")
	if err := q.Ack(ctx, got[0]); err != nil {
		t.Fatal(err)
	}
	// The file goes with the last ack, or (a backend that does not wait
	// for an ack to be synced) after the sync that makes it durable.
	if n := MsgFilesLeft(dir, 10*time.Second); n != 0 {
		t.Errorf("msg dir after the last ack holds %d files, want 0", n)
	}
}

// MsgFilesLeft waits up to within for an embedded store under dir to hold
// no message file, and returns how many it still holds (0 at once when
// within is 0 and there are none).
func MsgFilesLeft(dir string, within time.Duration) int {
	deadline := time.Now().Add(within)
	for {
		ents, _ := os.ReadDir(filepath.Join(dir, "queue", "msg"))
		if len(ents) == 0 || !time.Now().Before(deadline) {
			return len(ents)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func rawOf(id string) string { return "Subject: " + id + "\r\n\r\n" + strings.Repeat(id, 50) + "\r\n" }

// The environment that makes a test binary the child of Kill9.
const (
	crashDirEnv    = "QUEUETEST_CRASH_DIR"
	crashRoundEnv  = "QUEUETEST_CRASH_ROUND"
	crashInlineEnv = "QUEUETEST_CRASH_INLINE"
)

// CrashChild runs the test binary as the child process of Kill9 when it
// was started as one, and reports whether it was (it never returns then).
// Call it first in TestMain.
func CrashChild(open OpenFunc) {
	dir := os.Getenv(crashDirEnv)
	if dir == "" {
		return
	}
	crashChild(open, dir)
	os.Exit(0)
}

// crashChild commits messages and takes and acks jobs until killed,
// printing "C msgid" after each commit and "T jobid" before each ack.
func crashChild(open OpenFunc, dir string) {
	round := os.Getenv(crashRoundEnv)
	q, err := open(dir, os.Getenv(crashInlineEnv) != "")
	if err != nil {
		fmt.Println("E", err)
		os.Exit(1)
	}
	ctx := context.Background()
	in := filepath.Join(dir, "incoming")
	os.MkdirAll(in, 0o700)
	go func() { // a worker acking half of the jobs
		for {
			jobs, err := q.Take(ctx, deliver.Kinds, 5, time.Hour)
			if err != nil {
				fmt.Println("E", err)
				os.Exit(1)
			}
			for _, j := range jobs {
				if j.Kind == deliver.KindWebhook {
					fmt.Println("T", j.ID)
					if err := q.Ack(ctx, j); err != nil {
						fmt.Println("E", err)
						os.Exit(1)
					}
				}
			}
			if len(jobs) == 0 {
				time.Sleep(time.Millisecond)
			}
		}
	}()
	for i := 0; ; i++ {
		id := fmt.Sprintf("r%s-m%d", round, i)
		p := filepath.Join(in, id)
		if err := os.WriteFile(p, []byte(rawOf(id)), 0o600); err != nil {
			fmt.Println("E", err)
			os.Exit(1)
		}
		m := &inbound.Mail{ID: id, RawPath: p}
		jobs := []*deliver.Job{
			{ID: id + "-w", Kind: deliver.KindWebhook, Target: "t"},
			{ID: id + "-r", Kind: deliver.KindRelay, Target: "example.org"},
		}
		if err := q.Commit(ctx, m, jobs); err != nil {
			fmt.Println("E", err)
			os.Exit(1)
		}
		fmt.Println("C", id)
	}
}

// Kill9 kills a process committing and acking at arbitrary points and
// checks, after each kill, that every committed job not being acked is
// there with its raw message, and no file is left over. The test binary's
// TestMain must call CrashChild with the same open.
func Kill9(t *testing.T, open OpenFunc) {
	if testing.Short() {
		t.Skip("short")
	}
	t.Run("files", func(t *testing.T) { kill9(t, open, false) })
	t.Run("inline", func(t *testing.T) { kill9(t, open, true) })
}

func kill9(t *testing.T, open OpenFunc, inline bool) {
	dir := t.TempDir()
	committed := map[string]bool{}
	taken := map[string]bool{}
	for round := range 4 {
		cmd := exec.Command(os.Args[0])
		cmd.Env = append(os.Environ(), crashDirEnv+"="+dir, fmt.Sprint(crashRoundEnv, "=", round))
		if inline {
			cmd.Env = append(cmd.Env, crashInlineEnv+"=1")
		}
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(out)
		n := 0
		killAt := 50 + 37*round
		killed := false
		// Lines written before the kill are still read after it: a job the
		// child announced ("T") may have been acked just before it died.
		for sc.Scan() {
			f := strings.Fields(sc.Text())
			if len(f) != 2 {
				continue
			}
			switch f[0] {
			case "C":
				committed[f[1]] = true
				n++
			case "T":
				taken[f[1]] = true
			case "E":
				t.Fatalf("helper: %s", sc.Text())
			}
			if n >= killAt && !killed {
				cmd.Process.Kill()
				killed = true
			}
		}
		cmd.Wait()

		q, err := open(dir, inline)
		if err != nil {
			t.Fatalf("round %d: Open after kill -9 = %v", round, err)
		}
		checkAfterKill(t, q, dir, round, inline, committed, taken)
		q.Close()
	}
	if len(committed) < 200 {
		t.Errorf("only %d commits over the rounds", len(committed))
	}
}

func checkAfterKill(t *testing.T, q deliver.Backend, dir string, round int, inline bool, committed, taken map[string]bool) {
	ctx := t.Context()
	for id := range committed {
		for _, jid := range []string{id + "-w", id + "-r"} {
			if taken[jid] {
				continue
			}
			j, err := q.Get(ctx, jid)
			if err != nil {
				t.Errorf("round %d: committed job %s: %v", round, jid, err)
				continue
			}
			if !j.DeadAt.IsZero() {
				t.Errorf("round %d: committed job %s dead: %s", round, jid, j.LastError)
			}
		}
		if taken[id+"-w"] && taken[id+"-r"] {
			continue
		}
		rc, err := q.OpenRaw(ctx, id)
		if err != nil {
			t.Errorf("round %d: raw of %s: %v", round, id, err)
			continue
		}
		b, _ := io.ReadAll(rc)
		rc.Close()
		if string(b) != rawOf(id) {
			t.Errorf("round %d: raw of %s corrupted", round, id)
		}
	}
	// Every file in the store belongs to a message with jobs left.
	ents, _ := os.ReadDir(filepath.Join(dir, "queue", "msg"))
	jobs, err := q.List(ctx, deliver.ListOptions{Limit: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	msgs := map[string]bool{}
	for _, j := range jobs {
		msgs[j.MsgID] = true
	}
	if inline && len(ents) != 0 {
		t.Errorf("round %d: %d raw files in a store that keeps messages inline", round, len(ents))
	}
	if !inline && len(ents) != len(msgs) {
		t.Errorf("round %d: %d raw files for %d messages with jobs", round, len(ents), len(msgs))
	}
}
