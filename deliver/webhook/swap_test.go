package webhook

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/mailhook/mailhook/deliver"
)

// connServer is a receiver on loopback that reports each connection it
// sees closed, and runs h for each request.
func connServer(t *testing.T, h http.HandlerFunc) (*httptest.Server, <-chan struct{}) {
	t.Helper()
	closed := make(chan struct{}, 64)
	srv := httptest.NewUnstartedServer(h)
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateClosed {
			closed <- struct{}{}
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)
	return srv, closed
}

func senderTo(url string) *Sender {
	return NewSender(Options{Endpoints: map[string]Endpoint{
		"tickets": {URL: url, Secrets: []string{NewSecret()}, AllowPrivate: true},
	}})
}

func wait(t *testing.T, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(10 * time.Second):
		t.Fatalf("never saw %s", what)
	}
}

// TestSwapSenderInFlight: an attempt in flight when the sender is swapped
// finishes on the old sender; attempts started after go to the new one;
// the old sender's connection is closed once its attempt is over.
func TestSwapSenderInFlight(t *testing.T) {
	entered, release := make(chan struct{}), make(chan struct{})
	oldSrv, oldClosed := connServer(t, func(w http.ResponseWriter, r *http.Request) {
		entered <- struct{}{}
		<-release
	})
	newHits := make(chan struct{}, 8)
	newSrv, newClosed := connServer(t, func(w http.ResponseWriter, r *http.Request) { newHits <- struct{}{} })

	sw := NewSwapSender(senderTo(oldSrv.URL))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	inFlight := make(chan deliver.Outcome, 1)
	go func() { inFlight <- sw.Handle(ctx, testJob("tickets"), testMail(), nil) }()
	wait(t, entered, "the attempt reach the old endpoint")

	next := senderTo(newSrv.URL)
	sw.Swap(next)
	if sw.Current() != next {
		t.Fatal("Current() after Swap is not the new sender")
	}
	if o := sw.Handle(ctx, testJob("tickets"), testMail(), nil); !o.Done {
		t.Fatalf("attempt after Swap = %+v, want delivered", o)
	}
	wait(t, newHits, "the attempt after Swap reach the new endpoint")

	close(release)
	if o := <-inFlight; !o.Done || o.Attempt.Status != 200 {
		t.Fatalf("attempt in flight during Swap = %+v, want delivered by the old endpoint", o)
	}
	wait(t, oldClosed, "the old sender's connection closed after its attempt")

	sw.Close()
	wait(t, newClosed, "the sender in use's idle connection closed by Close")
}

// TestSwapSenderConcurrent swaps senders while attempts run (go test
// -race): every attempt is delivered by one of the endpoints.
func TestSwapSenderConcurrent(t *testing.T) {
	srv, _ := connServer(t, func(http.ResponseWriter, *http.Request) {})
	sw := NewSwapSender(senderTo(srv.URL))
	defer sw.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	failed := make(chan deliver.Outcome, 40)
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 10 {
				if o := sw.Handle(ctx, testJob("tickets"), testMail(), nil); !o.Done {
					failed <- o
				}
			}
		}()
	}
	for range 10 {
		sw.Swap(senderTo(srv.URL))
	}
	wg.Wait()
	close(failed)
	for o := range failed {
		t.Errorf("attempt during swaps = %+v, want delivered", o)
	}
}
