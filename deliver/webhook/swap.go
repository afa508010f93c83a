package webhook

import (
	"context"
	"sync"

	"github.com/mailhook/mailhook/deliver"
	"github.com/mailhook/mailhook/inbound"
)

// SwapSender is the webhook handler whose Sender a reload replaces at
// once (the endpoints changed): each attempt runs on the sender in use
// when it starts, and finishes on it; a replaced sender's idle
// connections are closed when the last attempt that started on it is
// over, so neither an attempt in flight is cut nor connections to the old
// endpoints are kept. It is safe for concurrent use.
type SwapSender struct {
	mu  sync.Mutex
	cur *heldSender
}

// heldSender is a sender and the attempts running on it.
type heldSender struct {
	s        *Sender
	inFlight int
	replaced bool // close s once inFlight is 0
}

var _ deliver.Handler = (*SwapSender)(nil)

// NewSwapSender returns a SwapSender using s.
func NewSwapSender(s *Sender) *SwapSender {
	return &SwapSender{cur: &heldSender{s: s}}
}

// Handle implements deliver.Handler on the sender in use.
func (w *SwapSender) Handle(ctx context.Context, job *deliver.Job, mail *inbound.Mail, raw deliver.RawOpener) deliver.Outcome {
	w.mu.Lock()
	h := w.cur
	h.inFlight++
	w.mu.Unlock()
	defer func() {
		w.mu.Lock()
		h.inFlight--
		done := h.replaced && h.inFlight == 0
		w.mu.Unlock()
		if done {
			h.s.Close()
		}
	}()
	return h.s.Handle(ctx, job, mail, raw)
}

// Current returns the sender in use, for SyncStep.Sender. Its attempts
// are not counted: a sync step that got a sender just before Swap
// replaced it finishes its attempts on it (Close leaves a Sender usable),
// and their connections are closed by the sender's idle timeout.
func (w *SwapSender) Current() *Sender {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.cur.s
}

// Swap puts n in use for the attempts that start from now on. The sender
// it replaces has its idle connections closed now if no attempt runs on
// it, else when the last one is over.
func (w *SwapSender) Swap(n *Sender) {
	w.mu.Lock()
	old := w.cur
	w.cur = &heldSender{s: n}
	old.replaced = true
	idle := old.inFlight == 0
	w.mu.Unlock()
	if idle {
		old.s.Close()
	}
}

// Close closes the idle connections of the sender in use (at shutdown).
func (w *SwapSender) Close() {
	w.Current().Close()
}
