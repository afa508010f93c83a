package admin

// Per-minute counters for the dashboard's charts, and the queue depth
// sampler.

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"runtime/debug"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/mailhook/mailhook/deliver"
)

// seriesCell holds one minute's counters.
type seriesCell struct {
	Accepted  int `json:"a,omitempty"`
	Refused   int `json:"r,omitempty"`
	Delivered int `json:"d,omitempty"`
	Failed    int `json:"f,omitempty"`
	// Depth is the largest queue depth sampled in the minute; Samples
	// counts samples (0: no depth known).
	Depth   int `json:"q,omitempty"`
	Samples int `json:"n,omitempty"`
}

func minuteKey(t time.Time) []byte {
	var k [8]byte
	m := t.Unix() / 60
	if m < 0 {
		m = 0
	}
	binary.BigEndian.PutUint64(k[:], uint64(m))
	return k[:]
}

// SampleQueue records a queue depth sample (jobs waiting or in flight) for
// the depth chart.
func (a *Activity) SampleQueue(depth int) error {
	now := a.now()
	return a.db.c.add(&writeOp{what: "sample queue", fn: func(b *wbatch, _ *writeOp) error {
		b.series(now, func(c *seriesCell) {
			c.Depth = max(c.Depth, depth)
			c.Samples++
		})
		return nil
	}})
}

// Point is one step of a time series.
type Point struct {
	At        time.Time `json:"t"`
	Accepted  int       `json:"accepted"`
	Refused   int       `json:"refused"`
	Delivered int       `json:"delivered"`
	Failed    int       `json:"failed"`
	// QueueDepth is the largest depth sampled in the step; nil when there
	// was no sample.
	QueueDepth *int `json:"queue_depth"`
}

// Series returns counters from since to now in steps of step (rounded to
// whole minutes, at least one): messages accepted and refused, attempts
// delivered and failed, and the queue depth. Every step is present, empty
// ones with zeros. At most 10080 points are returned.
func (a *Activity) Series(since time.Time, step time.Duration) ([]Point, error) {
	step = max(step.Truncate(time.Minute), time.Minute)
	now := a.now()
	since = since.Truncate(time.Minute)
	if n := now.Sub(since) / step; n > 10080 {
		since = now.Add(-10080 * step).Truncate(time.Minute)
	}
	var pts []Point
	for t := since; !t.After(now); t = t.Add(step) {
		pts = append(pts, Point{At: t.UTC()})
	}
	err := a.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bSeries).Cursor()
		end := minuteKey(now)
		for k, v := c.Seek(minuteKey(since)); k != nil && len(k) == 8 && string(k) <= string(end); k, v = c.Next() {
			t := time.Unix(int64(binary.BigEndian.Uint64(k))*60, 0)
			i := int(t.Sub(since) / step)
			if i < 0 || i >= len(pts) {
				continue
			}
			var cell seriesCell
			if json.Unmarshal(v, &cell) != nil {
				continue
			}
			p := &pts[i]
			p.Accepted += cell.Accepted
			p.Refused += cell.Refused
			p.Delivered += cell.Delivered
			p.Failed += cell.Failed
			if cell.Samples > 0 {
				if p.QueueDepth == nil {
					p.QueueDepth = new(int)
				}
				*p.QueueDepth = max(*p.QueueDepth, cell.Depth)
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("admin: activity: series: %w", err)
	}
	return pts, nil
}

// SampleQueueEvery records the queue depth (ready, scheduled and leased
// jobs) with SampleQueue every interval until ctx is done; it returns ctx's
// error. Failures are logged and sampling goes on.
func (a *Activity) SampleQueueEvery(ctx context.Context, every time.Duration, stats func(context.Context) (deliver.Stats, error)) error {
	if every <= 0 {
		every = 15 * time.Second
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		func() {
			defer func() {
				if v := recover(); v != nil {
					a.log.Error("queue sampler panicked", "panic", v, "stack", string(debug.Stack()))
				}
			}()
			st, err := stats(ctx)
			if err == nil {
				err = a.SampleQueue(st.Ready + st.Scheduled + st.Leased)
			}
			if err != nil && ctx.Err() == nil {
				a.log.Warn("queue depth sample failed", "err", err)
			}
		}()
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}
