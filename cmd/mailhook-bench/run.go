package main

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/mailhook/mailhook/dns/dnstest"
)

// benchSecret signs the bench's webhooks (32 bytes, base64).
const benchSecret = "whsec_bWFpbGhvb2stYmVuY2gtc2VjcmV0LTMyLWJ5dGVzISE="

// runSpec is one measured run.
type runSpec struct {
	Name string
	// Client is the SMTP client: "builtin" or "smtp-source".
	Client  string
	Target  string // "serve", "sink", or host:port of a server already running
	Backend string // embedded | redis (serve only)
	// Nodes is the number of `mailhook serve` processes sharing the Redis
	// queue (redis only); the sessions spread over them.
	Nodes int
	// Shards is queue.redis.shards.
	Shards   int
	Size     string
	Sessions int
	PerConn  int
	Duration time.Duration
	Count    int64
	Rate     float64
	DKIM     string
	// Profile, when set, is the file for a 10 s CPU profile taken from the
	// admin listener's /debug/pprof one second into the load.
	Profile string
	// HeapProfile, when set, is the file for the heap profile (legacy text
	// form, which go tool pprof reads) sampled each second during the load
	// at the moment the heap in use was largest.
	HeapProfile string
	// Series keeps the queue depth samples in the result (the soak).
	Series      bool
	SampleEvery time.Duration
}

// latency is a summary of accept→webhook times, in milliseconds.
type latency struct {
	N   int     `json:"n"`
	P50 float64 `json:"p50_ms"`
	P95 float64 `json:"p95_ms"`
	P99 float64 `json:"p99_ms"`
	Max float64 `json:"max_ms"`
}

// depthSample is the queue depth at one moment: messages accepted whose
// webhook had not arrived yet.
type depthSample struct {
	Seconds   float64 `json:"t_s"`
	Accepted  int     `json:"accepted"`
	Delivered int     `json:"delivered"`
	Depth     int     `json:"depth"`
}

// result is what one run measured. JSON field names are what --json
// writes.
type result struct {
	Name     string  `json:"name"`
	Client   string  `json:"client"`
	Target   string  `json:"target"`
	Backend  string  `json:"backend,omitempty"`
	Size     string  `json:"size"`
	Sessions int     `json:"sessions"`
	PerConn  int     `json:"msgs_per_conn"`
	DKIM     string  `json:"dkim"`
	Rate     float64 `json:"rate,omitempty"`

	Seconds     float64          `json:"seconds"`
	Attempted   int64            `json:"attempted"`
	Accepted    int64            `json:"accepted"`
	AcceptedMB  float64          `json:"accepted_mb"`
	MsgsPerSec  float64          `json:"msgs_per_s"`
	MBPerSec    float64          `json:"mb_per_s"`
	Errors      map[string]int64 `json:"errors,omitempty"`
	Connections int64            `json:"connections"`

	SinkMsgsPerSec float64 `json:"sink_msgs_per_s,omitempty"`
	SinkMBPerSec   float64 `json:"sink_mb_per_s,omitempty"`
	RatioMsgs      float64 `json:"ratio_msgs,omitempty"`
	RatioMB        float64 `json:"ratio_mb,omitempty"`

	Delivered         int64    `json:"delivered,omitempty"`
	DeliveredInWindow int64    `json:"delivered_during_load,omitempty"`
	Undelivered       int64    `json:"undelivered_after_drain,omitempty"`
	DrainSeconds      float64  `json:"drain_s,omitempty"`
	Duplicates        int64    `json:"duplicate_deliveries,omitempty"`
	BadSignatures     int64    `json:"bad_signatures,omitempty"`
	Malformed         int64    `json:"malformed_events,omitempty"`
	AuthNotPass       int64    `json:"auth_not_pass,omitempty"`
	AuthExample       string   `json:"auth_example,omitempty"`
	Latency           *latency `json:"latency,omitempty"`
	// LatencyFrom is where the latency starts: the client's sending of
	// the data's end (builtin), or mailhook's acceptance time as the webhook
	// carries it (smtp-source; see payloadAccepted).
	LatencyFrom   string        `json:"latency_from,omitempty"`
	MaxQueueDepth int           `json:"max_queue_depth,omitempty"`
	QueueDepth    []depthSample `json:"queue_depth,omitempty"`
	DNSQueries    int64         `json:"dns_queries,omitempty"`

	PeakRSSMB   float64 `json:"peak_rss_mb,omitempty"`
	MailhookCPU float64 `json:"mailhook_cpu_s,omitempty"`
	BenchCPU    float64 `json:"bench_cpu_s"`
	Profile     string  `json:"profile,omitempty"`
	ProfileNote string  `json:"profile_note,omitempty"`
	HeapProfile string  `json:"heap_profile,omitempty"`
	HeapInuseMB float64 `json:"heap_inuse_mb,omitempty"`
	HeapNote    string  `json:"heap_note,omitempty"`
	Error       string  `json:"error,omitempty"`
}

// env holds what runs share: the binary, a Redis started once, message
// sets built once per size.
type env struct {
	mailhook string
	drain    time.Duration
	logLevel string
	rspamd   string // verify.rspamd.url, "" for none
	keep     bool
	timeout  time.Duration
	log      *slog.Logger
	// smtpSource is smtp-source's path, when a run uses it.
	smtpSource string

	mu    sync.Mutex
	msgs  map[string]*messageSet
	redis *redisServer
}

func (e *env) close() { e.redis.Close() }

func (e *env) messages(size, dkim string) (*messageSet, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.msgs == nil {
		e.msgs = map[string]*messageSet{}
	}
	k := size + "/" + dkim
	if m, ok := e.msgs[k]; ok {
		return m, nil
	}
	m, err := newMessageSet(size, dkim)
	if err != nil {
		return nil, err
	}
	e.msgs[k] = m
	return m, nil
}

func (e *env) redisAddr(ctx context.Context) (string, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.redis == nil {
		r, err := startRedis(ctx)
		if err != nil {
			return "", err
		}
		e.redis = r
	}
	return e.redis.addr, nil
}

func newRunID() string {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func cpuSelf() float64 {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
}

// run performs one measured run.
func (e *env) run(ctx context.Context, s runSpec) (res *result) {
	msgs, err := e.messages(s.Size, s.DKIM)
	res = &result{Name: s.Name, Client: cmp.Or(s.Client, "builtin"), Target: s.Target, Size: s.Size, Sessions: s.Sessions, PerConn: s.PerConn, DKIM: s.DKIM, Rate: s.Rate}
	if err != nil {
		res.Error = err.Error()
		return res
	}
	res.Size = msgs.label
	runID := newRunID()
	addr := s.Target
	var (
		rcv  *receiver
		dns  *dnstest.Server
		proc *mailhookProc
		dir  string
		// heapStop ends the heap sampling when the load ends.
		heapStop = func() {}
	)
	switch s.Target {
	case "sink":
		sk, err := startSink()
		if err != nil {
			res.Error = err.Error()
			return res
		}
		defer sk.Close()
		addr = sk.Addr()
	case "serve":
		res.Backend = s.Backend
		if dns, err = startDNS(msgs.txtRecords()); err != nil {
			res.Error = err.Error()
			return res
		}
		defer dns.Close()
		if rcv, err = startReceiver(benchSecret, runID, s.DKIM != "none", res.Client == "smtp-source"); err != nil {
			res.Error = err.Error()
			return res
		}
		defer rcv.Close()
		if dir, err = os.MkdirTemp("", "mailhook-bench-"); err != nil {
			res.Error = err.Error()
			return res
		}
		if e.keep {
			e.log.Info("keeping the run's directory", "dir", dir)
		} else {
			// Kept when mailhook failed, for its log.
			defer func() {
				if res.Error == "" {
					os.RemoveAll(dir)
				} else {
					e.log.Info("kept the failed run's directory", "dir", dir)
				}
			}()
		}
		so := serveOptions{Binary: e.mailhook, Dir: dir, DNS: dns.Addr(), HookURL: rcv.URL(), Secret: benchSecret,
			Backend: s.Backend, Prefix: "mhb-" + runID, LogLevel: e.logLevel, Rspamd: e.rspamd, Shards: s.Shards, Node: "node0"}
		if s.Backend == "redis" {
			if so.RedisAddr, err = e.redisAddr(ctx); err != nil {
				res.Error = err.Error()
				return res
			}
		}
		if s.Profile != "" || s.HeapProfile != "" {
			if so.AdminAddr, err = freeAddr(); err != nil {
				res.Error = err.Error()
				return res
			}
			so.AdminToken = newRunID() + newRunID() + newRunID() + newRunID()
		}
		if proc, err = startMailhook(ctx, so); err != nil {
			res.Error = err.Error()
			return res
		}
		addr = proc.smtp
		// More nodes on the same Redis queue: each a config and data dir
		// of its own, all delivering; the client spreads its sessions.
		for i := 1; i < s.Nodes; i++ {
			o := so
			o.Dir = filepath.Join(dir, fmt.Sprint("node", i))
			o.Node = fmt.Sprint("node", i)
			o.AdminAddr = ""
			if err := os.MkdirAll(o.Dir, 0o700); err != nil {
				res.Error = err.Error()
				return res
			}
			more, err := startMailhook(ctx, o)
			if err != nil {
				res.Error = err.Error()
				return res
			}
			defer more.stop()
			addr += "," + more.smtp
		}
		defer func() {
			if proc != nil {
				proc.stop()
			}
		}()
		if s.Profile != "" {
			done := make(chan struct{})
			defer func() { <-done }()
			go func() {
				defer close(done)
				defer func() {
					if r := recover(); r != nil {
						res.ProfileNote = fmt.Sprint("panic: ", r)
					}
				}()
				res.Profile, res.ProfileNote = fetchProfile(ctx, so.AdminAddr, so.AdminToken, s.Profile)
			}()
		}
		if s.HeapProfile != "" {
			hctx, hcancel := context.WithCancel(ctx)
			heapStop = hcancel
			done := make(chan struct{})
			defer func() { hcancel(); <-done }()
			go func() {
				defer close(done)
				defer func() { _ = recover() }()
				inuse, note := sampleHeap(hctx, so.AdminAddr, so.AdminToken, s.HeapProfile)
				res.HeapInuseMB = math.Round(float64(inuse)/1e5) / 10
				if inuse > 0 {
					res.HeapProfile = s.HeapProfile
				} else {
					res.HeapNote = note
				}
			}()
		}
	}

	co := clientOptions{Addr: addr, Sessions: s.Sessions, PerConn: s.PerConn, Duration: s.Duration, Count: s.Count,
		Rate: s.Rate, Msgs: msgs, RunID: runID, Timeout: e.timeout}
	if rcv != nil {
		co.OnAccept = rcv.accepted
		co.OnSent = func(n int64) { rcv.setAccepted(int(n)) }
	}
	// Sample the queue depth (accepted, webhook not yet arrived) each
	// second, or each SampleEvery, until the drain ends.
	sampleStop := make(chan struct{})
	sampleDone := make(chan struct{})
	start := time.Now()
	go func() {
		defer close(sampleDone)
		if rcv == nil {
			return
		}
		every := s.SampleEvery
		if every <= 0 {
			every = time.Second
		}
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-sampleStop:
				return
			case <-t.C:
			}
			a, d := rcv.counts()
			res.MaxQueueDepth = max(res.MaxQueueDepth, a-d)
			if s.Series {
				res.QueueDepth = append(res.QueueDepth, depthSample{Seconds: math.Round(time.Since(start).Seconds()), Accepted: a, Delivered: d, Depth: a - d})
				e.log.Info("soak", "t", time.Since(start).Round(time.Second), "accepted", a, "delivered", d, "depth", a-d)
			}
		}
	}()
	cpu0 := cpuSelf()
	var st *clientStats
	if res.Client == "smtp-source" {
		// smtp-source is a child: its CPU is not the bench's own (cpuSelf).
		co.Binary = e.smtpSource
		st = runSMTPSource(ctx, co)
		if st.Fatal != "" {
			res.Error = st.Fatal
		}
		if rcv != nil {
			// What smtp-source surely had accepted: the drain waits for
			// these.
			rcv.setAccepted(int(st.Accepted.Load()))
		}
	} else {
		st = runClient(ctx, co)
	}
	heapStop()
	res.BenchCPU = cpuSelf() - cpu0
	close(sampleStop)
	<-sampleDone

	res.Seconds = st.End.Sub(st.Start).Seconds()
	res.Attempted = st.Attempted.Load()
	res.Accepted = st.Accepted.Load()
	res.AcceptedMB = float64(st.AcceptedBytes.Load()) / 1e6
	res.Errors = st.Errors()
	res.Connections = st.Connections.Load()
	if res.Seconds > 0 {
		res.MsgsPerSec = float64(res.Accepted) / res.Seconds
		res.MBPerSec = res.AcceptedMB / res.Seconds
	}
	if rcv != nil {
		_, inWindow := rcv.latencies(st.End)
		res.DeliveredInWindow = int64(inWindow)
		d0 := time.Now()
		rcv.drain(ctx, e.drain)
		res.DrainSeconds = time.Since(d0).Seconds()
		lats, _ := rcv.latencies(st.End)
		res.Delivered = int64(len(lats))
		res.Undelivered = max(res.Accepted-res.Delivered, 0)
		res.Latency = summarize(lats)
		res.LatencyFrom = "the client's end of DATA"
		rcv.mu.Lock()
		if rcv.byKey {
			res.LatencyFrom = "mailhook's acceptance (start of DATA), from the webhook's msg_id and received_at"
			if rcv.coarse > 0 {
				res.LatencyFrom += fmt.Sprintf("; %d of them from received_at alone (whole seconds)", rcv.coarse)
			}
		}
		res.Duplicates, res.BadSignatures, res.Malformed, res.AuthNotPass, res.AuthExample = rcv.dups, rcv.bad, rcv.malformed, rcv.authFail, rcv.authEx
		rcv.mu.Unlock()
		res.DNSQueries = int64(dns.TotalQueries())
	}
	if proc != nil {
		sr := proc.stop()
		proc = nil
		res.PeakRSSMB = float64(sr.PeakRSSKB) / 1024
		res.MailhookCPU = sr.CPUSeconds
		if sr.ExitErr != nil {
			res.Error = fmt.Sprintf("mailhook serve: %v", sr.ExitErr)
		}
		if e.keep || sr.ExitErr != nil {
			e.log.Info("mailhook log", "path", filepath.Join(dir, "mailhook.log"), "tail", tail(filepath.Join(dir, "mailhook.log"), 5))
		}
	}
	return res
}

// fetchProfile takes a 10 s CPU profile from the admin listener's
// /debug/pprof, one second into the load.
func fetchProfile(ctx context.Context, admin, token, path string) (string, string) {
	select {
	case <-ctx.Done():
		return "", "cancelled"
	case <-time.After(time.Second):
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+admin+"/debug/pprof/profile?seconds=10", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", fmt.Sprintf("not available: %v", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Sprintf("not available: GET /debug/pprof/profile: %s", resp.Status)
	}
	f, err := os.Create(path)
	if err != nil {
		return "", err.Error()
	}
	defer f.Close()
	if _, err := io.Copy(f, io.LimitReader(resp.Body, 256<<20)); err != nil {
		return "", err.Error()
	}
	return path, "10 s CPU profile; go tool pprof -top " + path
}

var heapInuseRE = regexp.MustCompile(`(?m)^# HeapInuse = (\d+)$`)

// sampleHeap fetches /debug/pprof/heap?debug=1 each second until ctx ends
// and writes to path the sample taken when HeapInuse was largest. It
// returns that HeapInuse, or 0 and why there is none.
func sampleHeap(ctx context.Context, admin, token, path string) (int64, string) {
	var best []byte
	var bestInuse int64
	note := "heap profile: no sample"
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			if best == nil {
				return 0, note
			}
			if err := os.WriteFile(path, best, 0o644); err != nil {
				return 0, err.Error()
			}
			return bestInuse, ""
		case <-t.C:
		}
		rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		req, _ := http.NewRequestWithContext(rctx, http.MethodGet, "http://"+admin+"/debug/pprof/heap?debug=1", nil)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			cancel()
			note = fmt.Sprintf("heap profile not available: %v", err)
			continue
		}
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
		resp.Body.Close()
		cancel()
		if resp.StatusCode != http.StatusOK {
			note = "heap profile not available: " + resp.Status
			continue
		}
		if m := heapInuseRE.FindSubmatch(body); m != nil {
			if n, _ := strconv.ParseInt(string(m[1]), 10, 64); n > bestInuse {
				best, bestInuse = body, n
			}
		}
	}
}

// summarize gives nearest-rank percentiles of sorted latencies.
func summarize(d []time.Duration) *latency {
	if len(d) == 0 {
		return nil
	}
	ms := func(x time.Duration) float64 { return math.Round(float64(x)/1e4) / 100 }
	pct := func(p float64) time.Duration {
		i := int(math.Ceil(p/100*float64(len(d)))) - 1
		return d[min(max(i, 0), len(d)-1)]
	}
	return &latency{N: len(d), P50: ms(pct(50)), P95: ms(pct(95)), P99: ms(pct(99)), Max: ms(d[len(d)-1])}
}
