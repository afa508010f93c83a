package boltq_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mailhook/mailhook/deliver"
	"github.com/mailhook/mailhook/deliver/boltq"
	"github.com/mailhook/mailhook/inbound"
)

func rawOf(id string) string { return "Subject: " + id + "\r\n\r\n" + strings.Repeat(id, 50) + "\r\n" }

// TestMain runs the test binary as the child process of TestKill9 when
// BOLTQ_CRASH_DIR is set, and as the tests otherwise.
func TestMain(m *testing.M) {
	if dir := os.Getenv("BOLTQ_CRASH_DIR"); dir != "" {
		crashChild(dir)
		return
	}
	os.Exit(m.Run())
}

// crashChild is the child of TestKill9: it commits messages and takes and
// acks jobs until killed, printing "C msgid" after each commit and "T
// jobid" before each ack.
func crashChild(dir string) {
	round := os.Getenv("BOLTQ_CRASH_ROUND")
	inline := int64(-1)
	if os.Getenv("BOLTQ_CRASH_INLINE") != "" {
		inline = 0
	}
	q, err := boltq.Open(dir, boltq.Options{InlineMax: inline})
	if err != nil {
		fmt.Println("E", err)
		os.Exit(1)
	}
	ctx := context.Background()
	in := filepath.Join(dir, "incoming")
	os.MkdirAll(in, 0o700)
	done := make(chan struct{})
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
				select {
				case <-done:
					return
				case <-time.After(time.Millisecond):
				}
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

// TestKill9 kills a process committing and acking at arbitrary points and
// checks, after each kill, that every committed job not being acked is
// there with its raw message, and no file is left over.
func TestKill9(t *testing.T) {
	if testing.Short() {
		t.Skip("short")
	}
	t.Run("files", func(t *testing.T) { kill9(t, false) })
	t.Run("inline", func(t *testing.T) { kill9(t, true) })
}

func kill9(t *testing.T, inline bool) {
	dir := t.TempDir()
	committed := map[string]bool{}
	taken := map[string]bool{}
	for round := range 4 {
		cmd := exec.Command(os.Args[0])
		cmd.Env = append(os.Environ(), "BOLTQ_CRASH_DIR="+dir, fmt.Sprint("BOLTQ_CRASH_ROUND=", round))
		if inline {
			cmd.Env = append(cmd.Env, "BOLTQ_CRASH_INLINE=1")
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

		q, err := boltq.Open(dir, boltq.Options{InlineMax: map[bool]int64{true: 0, false: -1}[inline]})
		if err != nil {
			t.Fatalf("round %d: Open after kill -9 = %v", round, err)
		}
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
		q.Close()
	}
	if len(committed) < 200 {
		t.Errorf("only %d commits over the rounds", len(committed))
	}
}
