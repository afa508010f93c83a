package main

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base32"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// maxWebhookBody bounds one request body the receiver reads.
const maxWebhookBody = 64 << 20

// signatureTolerance is how far a webhook-timestamp may be from now, as
// the Standard Webhooks specification recommends ("Verifying webhooks").
const signatureTolerance = 5 * time.Minute

// receiver is the webhook endpoint of a run: it verifies each request's
// Standard Webhooks signature, matches the event to its message by the token
// in message.subject and records when it arrived.
//
// With byKey (the smtp-source client, which sends one Subject per round and
// says nothing of when each message was accepted) it knows an event by its
// Subject and recipients instead, counts the accepted messages it is told
// of (setAccepted), and takes the accept time from the payload
// (payloadAccepted).
type receiver struct {
	key   []byte
	runID string
	srv   *http.Server
	url   string
	pool  sync.Pool

	mu        sync.Mutex
	acceptAt  map[int64]time.Time
	arriveAt  map[int64]time.Time
	dups      int64
	bad       int64 // signature or timestamp refused
	malformed int64 // not our JSON or not our token
	authFail  int64 // spf, dkim or dmarc not pass
	authEx    string
	wantDKIM  bool
	arrived   chan struct{}

	byKey     bool
	nAccepted int                  // byKey: messages accepted so far
	keyAt     map[string]time.Time // byKey: arrival by Subject and recipients
	keyLat    []time.Duration      // byKey: payload's accept time → arrival
	coarse    int64                // byKey: latencies from received_at's whole seconds
}

// verifyWebhook checks a Standard Webhooks signature: base64 HMAC-SHA256
// under key of "id.timestamp.body", one of the space-separated "v1,..."
// entries of the webhook-signature header, with a timestamp within
// signatureTolerance of now.
func verifyWebhook(key []byte, h http.Header, body []byte, now time.Time) error {
	id, ts, sigs := h.Get("webhook-id"), h.Get("webhook-timestamp"), h.Get("webhook-signature")
	if id == "" || ts == "" || sigs == "" {
		return errors.New("missing webhook-id, webhook-timestamp or webhook-signature")
	}
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return fmt.Errorf("bad webhook-timestamp %q", ts)
	}
	if d := now.Sub(time.Unix(sec, 0)); d > signatureTolerance || d < -signatureTolerance {
		return fmt.Errorf("webhook-timestamp %s off by %v", ts, d)
	}
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(id))
	mac.Write([]byte{'.'})
	mac.Write([]byte(ts))
	mac.Write([]byte{'.'})
	mac.Write(body)
	want := mac.Sum(nil)
	for _, s := range strings.Fields(sigs) {
		v, b64, ok := strings.Cut(s, ",")
		if !ok || v != "v1" {
			continue
		}
		got, err := base64.StdEncoding.DecodeString(b64)
		if err == nil && hmac.Equal(got, want) {
			return nil
		}
	}
	return errors.New("no matching v1 signature")
}

// parseSecret decodes a "whsec_" secret.
func parseSecret(s string) ([]byte, error) {
	b64, ok := strings.CutPrefix(s, "whsec_")
	if !ok {
		return nil, errors.New("secret must start with whsec_")
	}
	return base64.StdEncoding.DecodeString(b64)
}

// startReceiver listens on 127.0.0.1:0. byKey: see receiver.
func startReceiver(secret, runID string, wantDKIM, byKey bool) (*receiver, error) {
	key, err := parseSecret(secret)
	if err != nil {
		return nil, err
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("receiver: %w", err)
	}
	r := &receiver{
		key: key, runID: runID, wantDKIM: wantDKIM, byKey: byKey,
		acceptAt: map[int64]time.Time{}, arriveAt: map[int64]time.Time{}, keyAt: map[string]time.Time{},
		arrived: make(chan struct{}, 1),
		url:     "http://" + l.Addr().String() + "/hook",
	}
	r.pool.New = func() any { return new(bytes.Buffer) }
	r.srv = &http.Server{Handler: r, ReadHeaderTimeout: 10 * time.Second, ErrorLog: nil}
	go func() {
		defer func() { _ = recover() }()
		_ = r.srv.Serve(l)
	}()
	return r, nil
}

// URL is the endpoint to configure.
func (r *receiver) URL() string { return r.url }

// Close stops the server.
func (r *receiver) Close() {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_ = r.srv.Shutdown(ctx)
}

// event is the part of the webhook JSON the receiver reads.
type event struct {
	MsgID      string `json:"msg_id"`
	ReceivedAt string `json:"received_at"`
	Envelope   struct {
		RcptTo []string `json:"rcpt_to"`
	} `json:"envelope"`
	Message struct {
		Subject string `json:"subject"`
	} `json:"message"`
	Auth struct {
		SPF   struct{ Result string }   `json:"spf"`
		DKIM  []struct{ Result string } `json:"dkim"`
		DMARC struct{ Result string }   `json:"dmarc"`
	} `json:"auth"`
}

func (r *receiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	now := time.Now()
	buf := r.pool.Get().(*bytes.Buffer)
	buf.Reset()
	defer func() {
		if buf.Cap() <= 1<<20 {
			r.pool.Put(buf)
		}
	}()
	if _, err := buf.ReadFrom(http.MaxBytesReader(w, req.Body, maxWebhookBody)); err != nil {
		http.Error(w, "read body: "+err.Error(), http.StatusBadRequest)
		return
	}
	body := buf.Bytes()
	if err := verifyWebhook(r.key, req.Header, body, now); err != nil {
		r.mu.Lock()
		r.bad++
		r.mu.Unlock()
		http.Error(w, "signature: "+err.Error(), http.StatusUnauthorized)
		return
	}
	var ev event
	if err := json.Unmarshal(body, &ev); err != nil {
		r.count(&r.malformed)
		http.Error(w, "json: "+err.Error(), http.StatusBadRequest)
		return
	}
	if r.byKey {
		r.arriveByKey(w, &ev, now)
		return
	}
	seq, ok := r.token(ev.Message.Subject)
	if !ok {
		// Not a message of this run: take it (no retries), count it.
		r.count(&r.malformed)
		w.WriteHeader(http.StatusNoContent)
		return
	}
	authOK := r.authOK(&ev)
	r.mu.Lock()
	if _, dup := r.arriveAt[seq]; dup {
		r.dups++
	} else {
		r.arriveAt[seq] = now
	}
	r.noteAuth(&ev, authOK)
	r.mu.Unlock()
	r.signal()
	w.WriteHeader(http.StatusNoContent)
}

// arriveByKey records the event of a byKey receiver.
func (r *receiver) arriveByKey(w http.ResponseWriter, ev *event, now time.Time) {
	acc, fine, err := payloadAccepted(ev.ReceivedAt, ev.MsgID)
	if err != nil || !strings.HasPrefix(ev.Message.Subject, "mhb "+r.runID+"-") {
		r.count(&r.malformed)
		w.WriteHeader(http.StatusNoContent)
		return
	}
	key := ev.Message.Subject + "\x00" + strings.Join(ev.Envelope.RcptTo, ",")
	authOK := r.authOK(ev)
	r.mu.Lock()
	if _, dup := r.keyAt[key]; dup {
		r.dups++
	} else {
		r.keyAt[key] = now
		r.keyLat = append(r.keyLat, now.Sub(acc))
		if !fine {
			r.coarse++
		}
	}
	r.noteAuth(ev, authOK)
	r.mu.Unlock()
	r.signal()
	w.WriteHeader(http.StatusNoContent)
}

// authOK reports whether SPF, DKIM (when the run signs) and DMARC passed.
func (r *receiver) authOK(ev *event) bool {
	dkimPass := !r.wantDKIM
	for _, d := range ev.Auth.DKIM {
		dkimPass = dkimPass || d.Result == "pass"
	}
	return ev.Auth.SPF.Result == "pass" && dkimPass && ev.Auth.DMARC.Result == "pass"
}

// noteAuth counts a failed verdict; r.mu is held.
func (r *receiver) noteAuth(ev *event, ok bool) {
	if ok {
		return
	}
	r.authFail++
	if r.authEx == "" {
		a, _ := json.Marshal(ev.Auth)
		r.authEx = string(a)
	}
}

func (r *receiver) signal() {
	select {
	case r.arrived <- struct{}{}:
	default:
	}
}

// msgIDEncoding is the alphabet of mailhook's message ids (ingest).
var msgIDEncoding = base32.NewEncoding("0123456789abcdefghjkmnpqrstvwxyz").WithPadding(base32.NoPadding)

// payloadAccepted reads when mailhook accepted a message from its webhook:
// received_at (RFC 3339; mailhook writes whole seconds), refined to the
// millisecond by msg_id when the id's first 48 bits, milliseconds since
// the epoch as mailhook makes its ids, fall within that second (both are
// taken at the same moment, the start of the DATA phase). fine reports
// whether the millisecond reading was used.
func payloadAccepted(receivedAt, msgID string) (at time.Time, fine bool, err error) {
	at, err = time.Parse(time.RFC3339Nano, receivedAt)
	if err != nil {
		return time.Time{}, false, fmt.Errorf("received_at: %w", err)
	}
	if at.Nanosecond() != 0 {
		return at, true, nil
	}
	b, err := msgIDEncoding.DecodeString(strings.ToLower(msgID))
	if err != nil || len(b) < 8 {
		return at, false, nil
	}
	ms := int64(binary.BigEndian.Uint64(b[:8]) >> 16)
	if fromID := time.UnixMilli(ms); !fromID.Before(at) && fromID.Before(at.Add(time.Second)) {
		return fromID, true, nil
	}
	return at, false, nil
}

func (r *receiver) count(p *int64) {
	r.mu.Lock()
	*p++
	r.mu.Unlock()
}

// token reads the message number from "mhb RUNID-SEQ".
func (r *receiver) token(subject string) (int64, bool) {
	rest, ok := strings.CutPrefix(subject, "mhb "+r.runID+"-")
	if !ok {
		return 0, false
	}
	n, err := strconv.ParseInt(rest, 10, 64)
	return n, err == nil && n >= 0
}

// setAccepted tells a byKey receiver how many messages were accepted so
// far.
func (r *receiver) setAccepted(n int) {
	r.mu.Lock()
	r.nAccepted = n
	r.mu.Unlock()
}

// accepted records when the client got the 250 for message seq.
func (r *receiver) accepted(seq int64, at time.Time) {
	r.mu.Lock()
	r.acceptAt[seq] = at
	r.mu.Unlock()
}

// counts returns how many messages were accepted and how many of those
// arrived so far.
func (r *receiver) counts() (accepted, delivered int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.byKey {
		return r.nAccepted, len(r.keyAt)
	}
	for seq := range r.arriveAt {
		if _, ok := r.acceptAt[seq]; ok {
			delivered++
		}
	}
	return len(r.acceptAt), delivered
}

// deliveredTotal is the number of distinct messages that arrived.
func (r *receiver) deliveredTotal() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.arriveAt) + len(r.keyAt)
}

// drain waits until every accepted message arrived, or until d passed.
func (r *receiver) drain(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		if a, dl := r.counts(); dl >= a {
			return true
		}
		select {
		case <-ctx.Done():
			return false
		case <-t.C:
			return false
		case <-r.arrived:
		case <-tick.C:
		}
	}
}

// latencies returns accept→arrival times of the messages that arrived,
// sorted, and how many arrived before end.
func (r *receiver) latencies(end time.Time) ([]time.Duration, int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.byKey {
		out := slices.Clone(r.keyLat)
		slices.Sort(out)
		inWindow := 0
		for _, at := range r.keyAt {
			if !at.After(end) {
				inWindow++
			}
		}
		return out, inWindow
	}
	out := make([]time.Duration, 0, len(r.arriveAt))
	inWindow := 0
	for seq, at := range r.arriveAt {
		acc, ok := r.acceptAt[seq]
		if !ok {
			continue
		}
		out = append(out, at.Sub(acc))
		if !at.After(end) {
			inWindow++
		}
	}
	slices.Sort(out)
	return out, inWindow
}
