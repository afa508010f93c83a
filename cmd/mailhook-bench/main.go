// Command mailhook-bench measures mailhook under SMTP load and compares it
// with what the protocol and the machine allow.
//
// It runs `mailhook serve` as a subprocess with a config it writes (data in
// a temp dir, a webhook to its own receiver, a loopback DNS server
// publishing SPF, DKIM and DMARC p=reject for the sending domain so every
// check passes), drives it with N pipelined SMTP sessions (RFC 2920), and
// verifies every webhook's Standard Webhooks signature as it arrives. The
// same client, with the same settings, is measured against a no-op go-smtp
// sink in the same invocation; each mailhook figure is also given as a ratio
// to the sink's.
//
// --client smtp-source drives the same runs with Postfix's smtp-source
// instead (one connection per message, no pipelining; smtpsource.go); the
// matrix runs both clients when smtp-source is installed.
//
//	mailhook-bench --matrix --json bench/results.json   # 2 KB/100 KB × 1/20 sessions × embedded/redis × builtin/smtp-source
//	mailhook-bench --memory                              # 50 sessions × 10 MB: peak RSS
//	mailhook-bench --latency --rate 200                  # accept→webhook p50/p95/p99 at a fixed rate
//	mailhook-bench --soak                                # 2 minutes: queue depth over time
//	mailhook-bench --size 2k --sessions 20 --duration 10s --backend redis
//	mailhook-bench --client smtp-source --size 2k --sessions 20 --duration 8s
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"time"
)

func main() {
	os.Exit(mainErr(os.Args[1:], os.Stdout, os.Stderr))
}

// report is the --json document.
type report struct {
	Started  time.Time `json:"started"`
	Host     string    `json:"host"`
	CPUs     int       `json:"cpus"`
	Go       string    `json:"go"`
	Mailhook string    `json:"mailhook,omitempty"`
	Client   string    `json:"client"`
	Notes    []string  `json:"notes,omitempty"`
	Runs     []*result `json:"runs"`
}

func mainErr(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("mailhook-bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		target   = fs.String("target", "serve", "serve (start bin/mailhook), sink (the no-op sink only), or HOST:PORT of a running server (client only)")
		binary   = fs.String("mailhook", "bin/mailhook", "the mailhook binary for --target serve")
		backend  = fs.String("backend", "embedded", "queue backend for --target serve: embedded or redis (REDIS_ADDR, a comma-separated list for a Cluster, or a redis-server the bench starts)")
		size     = fs.String("size", "2k", "message size: 2k, 100k, 10m, bytes, or mixed")
		sessions = fs.Int("sessions", 20, "concurrent SMTP sessions")
		nodes    = fs.Int("nodes", 1, "`mailhook serve` processes sharing the Redis queue (--backend redis); the sessions spread over them")
		shards   = fs.Int("shards", 1, "queue.redis.shards for --backend redis")
		perConn  = fs.Int("per-conn", 1, "messages per connection (0 = reuse a connection for the whole run)")
		duration = fs.Duration("duration", 8*time.Second, "length of each run (0 = until --count)")
		count    = fs.Int64("count", 0, "stop after this many messages (0 = until --duration)")
		rate     = fs.Float64("rate", 0, "fixed send rate in messages/s for all sessions (0 = as fast as replies come)")
		dkimKind = fs.String("dkim", "ed25519", "DKIM-sign messages with an ed25519 or rsa key, or none")
		noSink   = fs.Bool("no-sink", false, "skip the no-op sink comparison")
		client   = fs.String("client", "auto", "SMTP client: builtin, smtp-source (Postfix's, one connection per message), both, or auto: both in --matrix when smtp-source is installed, else builtin")
		jsonOut  = fs.String("json", "", "write the results as JSON to this file")
		drain    = fs.Duration("drain", 30*time.Second, "after the load, wait this long at most for the webhooks of accepted messages")
		timeout  = fs.Duration("timeout", time.Minute, "client timeout per SMTP reply")
		profile  = fs.String("profile", "", "take a 10 s CPU profile from mailhook's admin /debug/pprof into this file (single run; in --matrix, during the 2 KB/20 session embedded run)")
		heapProf = fs.String("heap-profile", "", "keep mailhook's heap profile (debug=1 text, sampled each second) from the moment its heap in use was largest; in --memory, --matrix etc. it applies to the memory run, else to the single run")
		rspamdAt = fs.String("rspamd", "", "for --target serve: check every message with the rspamd at this URL (verify.rspamd.url, enforce off); start rspamd yourself")
		logLevel = fs.String("log-level", "info", "mailhook's log level during runs (its log goes to a file in the run's temp dir)")
		keep     = fs.Bool("keep", false, "keep each run's temp dir (config, data, mailhook.log)")
		matrix   = fs.Bool("matrix", false, "run the matrix: 2 KB and 100 KB × 1 and 20 sessions × embedded and redis, each against the sink, with each client of --client")
		memory   = fs.Bool("memory", false, "memory run: 50 sessions each sending one 10 MB message; reports mailhook's peak RSS")
		latencyM = fs.Bool("latency", false, "latency run: 2 KB at --rate (default 200) messages/s for --duration")
		soak     = fs.Bool("soak", false, "soak run: 2 KB, --sessions, 2 minutes; queue depth (accepted − delivered) every 5 s")
	)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	switch *client {
	case "auto", "builtin", "smtp-source", "both":
	default:
		fmt.Fprintln(stderr, "mailhook-bench: --client: want builtin, smtp-source, both or auto")
		return 2
	}
	if _, _, err := parseSize(*size); err != nil {
		fmt.Fprintln(stderr, "mailhook-bench: --size:", err)
		return 2
	}
	if *backend != "embedded" && *backend != "redis" {
		fmt.Fprintln(stderr, "mailhook-bench: --backend: want embedded or redis")
		return 2
	}
	if *sessions < 1 || *perConn < 0 || *duration <= 0 && *count <= 0 {
		fmt.Fprintln(stderr, "mailhook-bench: need --sessions ≥ 1, --per-conn ≥ 0, and --duration or --count")
		return 2
	}
	e := &env{mailhook: *binary, drain: *drain, rspamd: *rspamdAt, logLevel: *logLevel, keep: *keep, timeout: *timeout, log: log}
	defer e.close()

	if *nodes < 1 || *nodes > 1 && *backend != "redis" {
		fmt.Fprintln(stderr, "mailhook-bench: --nodes: want 1, or more with --backend redis")
		return 2
	}
	base := runSpec{Client: "builtin", Target: *target, Backend: *backend, Nodes: *nodes, Shards: *shards, Size: *size, Sessions: *sessions, PerConn: *perConn,
		Duration: *duration, Count: *count, Rate: *rate, DKIM: *dkimKind}
	// The clients: matrixClients for --matrix, clients for the rest.
	// auto adds smtp-source to the matrix when it can run, and says why
	// not when it cannot; asked for by name, it must run.
	var notes []string
	clients, matrixClients := []string{"builtin"}, []string{"builtin"}
	if *client != "builtin" {
		bin, err := findSMTPSource()
		e.smtpSource = bin
		switch {
		case *client == "auto":
			// The matrix's own sizes and no rate: only --per-conn and
			// --nodes can rule smtp-source out.
			m := base
			m.Size, m.Rate = "2k", 0
			why := smtpSourceUnfit(m)
			if err != nil {
				why = err.Error()
			}
			if why == "" {
				matrixClients = []string{"builtin", "smtp-source"}
			} else if *matrix {
				notes = append(notes, "skipped the smtp-source client: "+why)
			}
		case err != nil:
			fmt.Fprintf(stderr, "mailhook-bench: --client %s: %v\n", *client, err)
			return 2
		case *client == "both":
			clients = []string{"builtin", "smtp-source"}
			matrixClients = clients
		default:
			clients = []string{"smtp-source"}
			matrixClients = clients
		}
		if *latencyM && !slices.Contains(clients, "builtin") {
			fmt.Fprintf(stderr, "mailhook-bench: --latency: needs the builtin client (smtp-source cannot hold a fixed rate)\n")
			return 2
		}
	}
	// plan is a list of groups: a sink run (maybe nil) and the runs
	// compared with it.
	type group struct {
		sink *runSpec
		runs []runSpec
	}
	var plan []group
	single := !*matrix && !*memory && !*latencyM && !*soak
	needServe := *target == "serve"
	if *matrix {
		needServe = true
		for _, sz := range []string{"2k", "100k"} {
			for _, n := range []int{1, 20} {
				for _, cl := range matrixClients {
					g := group{}
					sk := base
					sk.Client, sk.Target, sk.Size, sk.Sessions, sk.Rate, sk.Count = cl, "sink", sz, n, 0, 0
					sk.Name = fmt.Sprintf("sink %s×%d", sz, n)
					g.sink = &sk
					for _, be := range []string{"embedded", "redis"} {
						r := sk
						r.Target, r.Backend, r.Name = "serve", be, fmt.Sprintf("serve %s %s×%d", be, sz, n)
						if *profile != "" && sz == "2k" && n == 20 && be == "embedded" && cl == matrixClients[0] {
							r.Profile = *profile
							r.Duration = max(r.Duration, 12*time.Second)
						}
						g.runs = append(g.runs, r)
					}
					plan = append(plan, g)
				}
			}
		}
	}
	if *latencyM {
		needServe = true
		r := base
		r.Target, r.Size, r.Name, r.Count = "serve", "2k", "latency", 0
		if r.Rate <= 0 {
			r.Rate = 200
		}
		r.Duration = max(*duration, 10*time.Second)
		r.Name = fmt.Sprintf("latency %s %.0f/s", r.Backend, r.Rate)
		plan = append(plan, group{runs: []runSpec{r}})
		if slices.Contains(clients, "smtp-source") {
			notes = append(notes, "the latency run is the builtin client's only: smtp-source cannot hold a fixed rate")
		}
	}
	for i, cl := range clients {
		first := i == 0
		if *soak {
			needServe = true
			r := base
			r.Client, r.Target, r.Size, r.Rate, r.Count, r.Duration = cl, "serve", "2k", 0, 0, 2*time.Minute
			r.Series, r.SampleEvery = true, 5*time.Second
			r.Name = fmt.Sprintf("soak %s 2k×%d", r.Backend, r.Sessions)
			plan = append(plan, group{runs: []runSpec{r}})
		}
		if *memory {
			needServe = true
			r := base
			r.Client, r.Target, r.Size, r.Sessions, r.PerConn, r.Count, r.Duration, r.Rate = cl, "serve", "10m", 50, 1, 50, 0, 0
			r.Name = fmt.Sprintf("memory %s 10MB×50", r.Backend)
			if first {
				r.HeapProfile = *heapProf
			}
			plan = append(plan, group{runs: []runSpec{r}})
		}
		if single {
			r := base
			r.Client, r.Name = cl, *target
			if *target == "serve" {
				r.Name = fmt.Sprintf("serve %s %s×%d", *backend, *size, *sessions)
				if *nodes > 1 || *shards > 1 {
					r.Name += fmt.Sprintf(" nodes %d shards %d", *nodes, *shards)
				}
				if first {
					r.Profile = *profile
					r.HeapProfile = *heapProf
				}
			}
			g := group{runs: []runSpec{r}}
			if *target != "sink" && !*noSink {
				sk := base
				sk.Client, sk.Target, sk.Name = cl, "sink", fmt.Sprintf("sink %s×%d", *size, *sessions)
				g.sink = &sk
			}
			plan = append(plan, g)
		}
	}
	if *noSink {
		for i := range plan {
			plan[i].sink = nil
		}
	}
	used := map[string]bool{}
	for _, g := range plan {
		for _, r := range g.runs {
			used[r.Client] = true
			if u := smtpSourceUnfit(r); r.Client == "smtp-source" && u != "" {
				fmt.Fprintf(stderr, "mailhook-bench: --client %s: %s\n", *client, u)
				return 2
			}
		}
	}
	var described []string
	if used["builtin"] {
		described = append(described, fmt.Sprintf("builtin pipelined client, %d msgs/conn (0 = reuse)", *perConn))
	}
	if used["smtp-source"] {
		described = append(described, fmt.Sprintf("smtp-source (Postfix, no pipelining), %d msgs/conn (0 = reuse)", *perConn))
	}
	rep := &report{Started: time.Now().UTC(), CPUs: runtime.NumCPU(), Go: runtime.Version(), Notes: notes,
		Client: strings.Join(described, "; ") + fmt.Sprintf("; DKIM %s", *dkimKind)}
	for _, n := range notes {
		log.Warn(n)
	}
	rep.Host, _ = os.Hostname()
	if needServe {
		abs, err := filepath.Abs(*binary)
		if err == nil {
			*binary = abs
			e.mailhook = abs
		}
		if fi, err := os.Stat(*binary); err != nil || fi.IsDir() {
			fmt.Fprintf(stderr, "mailhook-bench: --mailhook %s: not found (make build)\n", *binary)
			return 2
		}
		rep.Mailhook = *binary
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	failed := false
	for _, g := range plan {
		var sk *result
		if g.sink != nil {
			log.Info("run", "name", g.sink.Name, "client", g.sink.Client)
			sk = e.run(ctx, *g.sink)
			rep.Runs = append(rep.Runs, sk)
			log.Info("done", "name", sk.Name, "client", sk.Client, "msgs/s", round1(sk.MsgsPerSec), "MB/s", round1(sk.MBPerSec), "errors", errorSummary(sk.Errors))
			if sk.Error != "" {
				failed = true
				log.Error("run failed", "name", sk.Name, "client", sk.Client, "error", sk.Error)
			}
		}
		for _, s := range g.runs {
			log.Info("run", "name", s.Name, "client", s.Client)
			r := e.run(ctx, s)
			if sk != nil && sk.MsgsPerSec > 0 {
				r.SinkMsgsPerSec, r.SinkMBPerSec = sk.MsgsPerSec, sk.MBPerSec
				r.RatioMsgs = round3(r.MsgsPerSec / sk.MsgsPerSec)
				if sk.MBPerSec > 0 {
					r.RatioMB = round3(r.MBPerSec / sk.MBPerSec)
				}
			}
			rep.Runs = append(rep.Runs, r)
			log.Info("done", "name", r.Name, "client", r.Client, "msgs/s", round1(r.MsgsPerSec), "MB/s", round1(r.MBPerSec), "errors", errorSummary(r.Errors))
			if r.Error != "" {
				failed = true
				log.Error("run failed", "name", r.Name, "error", r.Error)
			}
			if ctx.Err() != nil {
				break
			}
		}
		if ctx.Err() != nil {
			break
		}
	}
	printTable(stdout, rep)
	if *jsonOut != "" {
		b, _ := json.MarshalIndent(rep, "", "  ")
		err := os.MkdirAll(filepath.Dir(*jsonOut), 0o755)
		if err == nil {
			err = os.WriteFile(*jsonOut, append(b, '\n'), 0o644)
		}
		if err != nil {
			fmt.Fprintln(stderr, "mailhook-bench: --json:", err)
			return 1
		}
		fmt.Fprintf(stdout, "\nresults: %s\n", *jsonOut)
	}
	if failed || ctx.Err() != nil {
		return 1
	}
	return 0
}

func round1(x float64) float64 { return float64(int64(x*10+0.5)) / 10 }
func round3(x float64) float64 { return float64(int64(x*1000+0.5)) / 1000 }

// printTable writes the runs as a table, mailhook runs with their ratio to
// the sink of the same size and sessions.
func printTable(w io.Writer, rep *report) {
	fmt.Fprintf(w, "\nmailhook-bench  %s  %d CPUs  %s\n", rep.Started.Format(time.RFC3339), rep.CPUs, rep.Client)
	fmt.Fprintf(w, "%-28s %-11s %9s %8s %8s %8s %8s %8s %8s %8s %7s %8s %s\n",
		"run", "client", "msgs/s", "MB/s", "×sink", "×sinkMB", "p50ms", "p95ms", "p99ms", "deliv", "maxQ", "RSS MB", "errors")
	dash := func(x float64, f string) string {
		if x == 0 {
			return "-"
		}
		return fmt.Sprintf(f, x)
	}
	for _, r := range rep.Runs {
		p50, p95, p99 := "-", "-", "-"
		if r.Latency != nil {
			p50, p95, p99 = fmt.Sprintf("%.1f", r.Latency.P50), fmt.Sprintf("%.1f", r.Latency.P95), fmt.Sprintf("%.1f", r.Latency.P99)
		}
		deliv := "-"
		if r.Target == "serve" {
			deliv = fmt.Sprintf("%d/%d", r.Delivered, r.Accepted)
		}
		errs := errorSummary(r.Errors)
		if r.Error != "" {
			errs = "RUN FAILED: " + strings.SplitN(r.Error, "\n", 2)[0]
		}
		if r.AuthNotPass > 0 || r.BadSignatures > 0 {
			errs += fmt.Sprintf(" (auth not pass %d, bad signatures %d)", r.AuthNotPass, r.BadSignatures)
		}
		fmt.Fprintf(w, "%-28s %-11s %9.1f %8.2f %8s %8s %8s %8s %8s %8s %7d %8s %s\n",
			r.Name, r.Client, r.MsgsPerSec, r.MBPerSec, dash(r.RatioMsgs, "%.2f"), dash(r.RatioMB, "%.2f"), p50, p95, p99, deliv,
			r.MaxQueueDepth, dash(r.PeakRSSMB, "%.0f"), errs)
	}
	said := map[string]bool{}
	for _, r := range rep.Runs {
		if r.Client == "smtp-source" && r.Latency != nil && !said[r.LatencyFrom] {
			said[r.LatencyFrom] = true
			fmt.Fprintf(w, "latency with smtp-source (%s and like runs): from %s; with builtin: from the client's end of DATA\n", r.Name, r.LatencyFrom)
		}
		if r.ProfileNote != "" {
			fmt.Fprintf(w, "profile (%s): %s\n", r.Name, r.ProfileNote)
		}
		if r.HeapNote != "" {
			fmt.Fprintf(w, "heap profile (%s): %s\n", r.Name, r.HeapNote)
		}
		if r.HeapProfile != "" {
			fmt.Fprintf(w, "heap profile (%s): largest heap in use %.1f MB; go tool pprof -sample_index=inuse_space -top %s\n", r.Name, r.HeapInuseMB, r.HeapProfile)
		}
		if len(r.QueueDepth) > 0 {
			fmt.Fprintf(w, "queue depth (%s), every 5 s:", r.Name)
			for _, d := range r.QueueDepth {
				fmt.Fprintf(w, " %d", d.Depth)
			}
			fmt.Fprintln(w)
		}
	}
	for _, n := range rep.Notes {
		fmt.Fprintln(w, "note:", n)
	}
}
