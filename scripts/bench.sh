#!/bin/sh
# End-to-end load matrix for `make bench` (issue 9): builds mailhook and
# mailhook-bench, then runs, against `mailhook serve` and a no-op SMTP sink
# measured with the same client in the same run:
#   - the matrix: 2 KB and 100 KB × 1 and 20 sessions × embedded and redis
#     queues, full pipeline (SPF/DKIM/DMARC against a loopback DNS server,
#     parse, route, durable commit, signed webhook delivery), with the
#     builtin pipelined client and again with Postfix's smtp-source (one
#     connection per message; skipped, with the reason, when it is not
#     installed: apt-get install postfix; --client builtin for one client);
#   - accept→webhook latency at 200 msgs/s;
#   - memory: 50 sessions × one 10 MB message, peak RSS.
# Writes bench/results.json, bench/cpu-2k-20.pprof (a 10 s CPU profile of the
# 2 KB/20 session embedded run) and bench/heap-10m.txt (the heap at its
# largest during the memory run), both from the admin listener's
# /debug/pprof. Extra arguments go to mailhook-bench, e.g.
#   scripts/bench.sh --duration 4s --per-conn 0
# The 2-minute bounded-queue check is separate: bin/mailhook-bench --soak.
set -eu
cd "$(dirname "$0")/.."
GO=${GO:-go}
VERSION=$(git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS="-s -w -X main.version=$VERSION"
mkdir -p bin bench
CGO_ENABLED=0 $GO build -trimpath -ldflags "$LDFLAGS" -o bin/mailhook ./cmd/mailhook
CGO_ENABLED=0 $GO build -trimpath -ldflags "$LDFLAGS" -o bin/mailhook-bench ./cmd/mailhook-bench

profile=bench/cpu-2k-20.pprof
rm -f "$profile" bench/heap-10m.txt
status=0
bin/mailhook-bench --mailhook bin/mailhook --matrix --latency --memory \
	--profile "$profile" --heap-profile bench/heap-10m.txt --json bench/results.json "$@" || status=$?
if [ -s "$profile" ]; then
	echo
	echo "CPU profile of mailhook, 2 KB × 20 sessions, embedded queue (top 15):"
	$GO tool pprof -top -nodecount=15 bin/mailhook "$profile" 2>/dev/null || true
fi
if [ -s bench/heap-10m.txt ]; then
	echo
	echo "Heap of mailhook at its largest, 50 × 10 MB (top 10, in use):"
	$GO tool pprof -sample_index=inuse_space -top -nodecount=10 bin/mailhook bench/heap-10m.txt 2>/dev/null | tail -n +6 || true
fi
exit $status
