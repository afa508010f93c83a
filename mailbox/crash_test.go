package mailbox

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

const crashEnv = "MAILHOOK_MAILBOX_CRASH_DIR"

// TestMain runs the test binary as the child process of TestCrashSafety
// when crashEnv is set, and as the tests otherwise.
func TestMain(m *testing.M) {
	if dir := os.Getenv(crashEnv); dir != "" {
		crashChild(dir)
		return
	}
	os.Exit(m.Run())
}

// crashChild is the process TestCrashSafety kills: it delivers jobs in a
// loop (with a move and an expunge now and then, to exercise the
// body-removal path) and prints "ack KEY UID" after each Deliver returns.
// TestMain runs it when crashEnv is set.
func crashChild(dir string) {
	start, _ := strconv.Atoi(os.Getenv(crashEnv + "_START"))
	s, err := Open(dir, Options{})
	if err != nil {
		fmt.Println("error", err)
		os.Exit(1)
	}
	ctx := context.Background()
	for n := start; ; n++ {
		key := fmt.Sprintf("job-%d", n)
		uid, err := s.Deliver(ctx, "u", "", strings.NewReader(jobMsg(key)), time.Time{}, key)
		if err != nil {
			fmt.Println("error", err)
			os.Exit(1)
		}
		fmt.Printf("ack %s %d\n", key, uid)
		if n%3 == 0 {
			s.Move(ctx, "u", Inbox, []uint32{uid}, "Trash")
		}
		if n%5 == 0 {
			_, msgs, _ := s.Messages(ctx, "u", "Trash")
			if len(msgs) > 0 {
				s.SetFlags(ctx, "u", "Trash", []uint32{msgs[0].UID}, FlagsAdd, []string{FlagDeleted})
				s.Expunge(ctx, "u", "Trash", nil)
			}
		}
	}
}

func jobMsg(key string) string {
	return "X-Job: " + key + "\r\nSubject: crash test\r\n\r\n" + strings.Repeat("payload ", 64) + "\r\n"
}

// TestCrashSafety kills a delivering process with SIGKILL at random
// moments, reopens the store and checks that it is consistent, that every
// acknowledged job is still known by its dedup key, and that redelivering
// keeps each job appended at most once.
func TestCrashSafety(t *testing.T) {
	dir := t.TempDir()
	acked := map[string]uint32{}
	next := 0
	for round := 0; round < 4; round++ {
		cmd := exec.Command(os.Args[0])
		cmd.Env = append(os.Environ(), crashEnv+"="+dir, crashEnv+"_START="+strconv.Itoa(next))
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		br := bufio.NewReader(out)
		killAfter := 5 + rand.IntN(30)
		for i := 0; i < killAfter; i++ {
			line, err := br.ReadString('\n')
			if err != nil {
				t.Fatalf("round %d: child output: %v", round, err)
			}
			f := strings.Fields(line)
			if len(f) != 3 || f[0] != "ack" {
				t.Fatalf("round %d: child said %q", round, line)
			}
			uid, _ := strconv.Atoi(f[2])
			acked[f[1]] = uint32(uid)
			n, _ := strconv.Atoi(strings.TrimPrefix(f[1], "job-"))
			next = n + 1
		}
		// Let it run into the middle of the next delivery, then kill -9.
		time.Sleep(time.Duration(rand.IntN(3000)) * time.Microsecond)
		cmd.Process.Kill()
		io.Copy(io.Discard, br)
		cmd.Wait()

		s, err := Open(dir, Options{})
		if err != nil {
			t.Fatalf("round %d: reopen: %v", round, err)
		}
		if err := s.Verify(context.Background()); err != nil {
			s.Close()
			t.Fatalf("round %d: %v", round, err)
		}
		ctx := context.Background()
		before, _ := s.Folder(ctx, "u", Inbox)
		// The queue retries every job it has no ack for, and some it has.
		for key, uid := range acked {
			got, err := s.Deliver(ctx, "u", "", strings.NewReader(jobMsg(key)), time.Time{}, key)
			if err != nil || got != uid {
				s.Close()
				t.Fatalf("round %d: redeliver %s = %d, %v, want %d", round, key, got, err, uid)
			}
		}
		after, _ := s.Folder(ctx, "u", Inbox)
		if after.Messages != before.Messages {
			s.Close()
			t.Fatalf("round %d: redelivering acked jobs appended %d messages", round, after.Messages-before.Messages)
		}
		// No job is stored twice.
		seen := map[string]bool{}
		for _, folder := range []string{Inbox, "Trash"} {
			_, msgs, _ := s.Messages(ctx, "u", folder)
			for _, m := range msgs {
				b, err := s.OpenMessage(m)
				if err != nil {
					s.Close()
					t.Fatalf("round %d: open %s uid %d: %v", round, folder, m.UID, err)
				}
				line, _ := bufio.NewReader(b).ReadString('\n')
				b.Close()
				if seen[line] {
					s.Close()
					t.Fatalf("round %d: %q stored twice", round, strings.TrimSpace(line))
				}
				seen[line] = true
			}
		}
		s.Close()
		t.Logf("round %d: %d jobs acked so far, killed after %d", round, len(acked), killAfter)
	}
}
