package admin

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mailhook/mailhook/deliver"
	"github.com/mailhook/mailhook/internal/testenv"
)

func newTestWriter(t *testing.T, o WriterOptions) (*Writer, *testenv.Buffer) {
	t.Helper()
	var logs testenv.Buffer
	o.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	w := NewWriter(o)
	t.Cleanup(func() { w.Close(context.Background()) })
	return w, &logs
}

// TestWriterRecords: records given in any order all reach the activity
// store by Close, an attempt before its message's acceptance included.
func TestWriterRecords(t *testing.T) {
	a := openActivity(t, nil)
	w, logs := newTestWriter(t, WriterOptions{Workers: 4, Buffer: 100})
	mail, jobs := accept(t, nil, nil, mailOpts{id: "m1"})
	job := *jobs[0]
	// The attempt first: the store makes a stub the acceptance fills in.
	if !w.Go(func() {
		if err := a.RecordAttempt(&job, deliver.Attempt{At: time.Now(), Status: 200}, deliver.SettleDelivered); err != nil {
			t.Error(err)
		}
	}) {
		t.Fatal("Go(attempt) dropped a record")
	}
	if err := w.Close(context.Background()); err != nil {
		t.Fatalf("Close = %v", err)
	}
	w2, _ := newTestWriter(t, WriterOptions{Workers: 4, Buffer: 100})
	var applied atomic.Int64
	w2.Go(func() {
		if err := a.RecordAccepted(mail, nil, jobs); err != nil {
			t.Error(err)
		}
	})
	for range 50 {
		w2.Go(func() { applied.Add(1) })
	}
	if err := w2.Close(context.Background()); err != nil {
		t.Fatalf("Close = %v", err)
	}
	if applied.Load() != 50 || w.Dropped()+w2.Dropped() != 0 {
		t.Errorf("applied %d of 50, dropped %d", applied.Load(), w.Dropped()+w2.Dropped())
	}
	d, err := a.Message("m1")
	if err != nil || d.Status != StatusDelivered || len(d.Jobs) != 1 || len(d.Jobs[0].Attempts) != 1 || d.Subject == "" {
		t.Errorf("Message(m1) = %+v, %v; want the acceptance and its delivered attempt", d, err)
	}
	if logs.String() != "" {
		t.Errorf("logged %q", logs)
	}
}

// TestWriterDrops: a writer a whole buffer behind drops the record, counts
// and logs it, and applies the others.
func TestWriterDrops(t *testing.T) {
	w, logs := newTestWriter(t, WriterOptions{Workers: 1, Buffer: 1})
	started, block := make(chan struct{}), make(chan struct{})
	var applied atomic.Int64
	w.Go(func() { close(started); <-block; applied.Add(1) })
	<-started // the one goroutine is busy
	if !w.Go(func() { applied.Add(1) }) {
		t.Fatal("Go with room in the buffer dropped the record")
	}
	if w.Go(func() { applied.Add(1) }) {
		t.Fatal("Go past the buffer = true, want dropped")
	}
	if w.Dropped() != 1 || !strings.Contains(logs.String(), "dropped=1") {
		t.Errorf("Dropped() = %d, log %q; want 1, logged", w.Dropped(), logs)
	}
	if got := counter(t, NewMetrics(MetricsOptions{Writer: w}), "mailhook_activity_records_dropped_total"); got != 1 {
		t.Errorf("mailhook_activity_records_dropped_total = %v, want 1", got)
	}
	close(block)
	if err := w.Close(context.Background()); err != nil {
		t.Fatalf("Close = %v", err)
	}
	if applied.Load() != 2 {
		t.Errorf("applied %d records, want 2", applied.Load())
	}
	if w.Go(func() {}) {
		t.Error("Go after Close = true")
	}
	if w.Dropped() != 2 || !strings.Contains(logs.String(), "dropped=2") {
		t.Errorf("after Close: Dropped() = %d, log %q; want 2, logged", w.Dropped(), logs)
	}
	if err := w.Close(context.Background()); err != nil {
		t.Errorf("second Close = %v", err)
	}
}

// TestWriterPanic: a record that panics is logged with its stack and
// counted, and the writer goes on.
func TestWriterPanic(t *testing.T) {
	w, logs := newTestWriter(t, WriterOptions{Workers: 1})
	var after atomic.Bool
	w.Go(func() { panic("boom in a record") })
	w.Go(func() { after.Store(true) })
	if err := w.Close(context.Background()); err != nil {
		t.Fatalf("Close = %v", err)
	}
	if w.Panics() != 1 || !after.Load() {
		t.Errorf("Panics() = %d, next record applied %v; want 1, true", w.Panics(), after.Load())
	}
	if got := counter(t, NewMetrics(MetricsOptions{Writer: w}), "mailhook_activity_records_panicked_total"); got != 1 {
		t.Errorf("mailhook_activity_records_panicked_total = %v, want 1", got)
	}
	if l := logs.String(); !strings.Contains(l, "boom in a record") || !strings.Contains(l, "writer_test.go") {
		t.Errorf("panic log %q lacks the panic or its stack", l)
	}
}

// TestWriterCloseBounded: Close returns when its context ends, with the
// context's error, while a record is stuck.
func TestWriterCloseBounded(t *testing.T) {
	w, _ := newTestWriter(t, WriterOptions{Workers: 1})
	started, block := make(chan struct{}), make(chan struct{})
	defer close(block)
	w.Go(func() { close(started); <-block })
	<-started
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := w.Close(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("Close with a stuck record = %v, want context.Canceled", err)
	}
}

// counter returns the value of the counter name in m's registry.
func counter(t *testing.T, m *Metrics, name string) float64 {
	t.Helper()
	mfs, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			return mf.GetMetric()[0].GetCounter().GetValue()
		}
	}
	t.Fatalf("no metric %s", name)
	return 0
}
