# mailhook — the two commands a new user needs are `make run` and `make test`.
GO       ?= go
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS  := -s -w -X main.version=$(VERSION)
BIN      := bin/mailhook
CONFIG   ?= config.example.yaml
FUZZTIME ?= 15s

.PHONY: build run test test-deps test-race check fuzz bench clean

build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/mailhook
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/mailhook-bench ./cmd/mailhook-bench 2>/dev/null || true

# Build and serve with the example config: embedded queue, nothing else to
# install or start.
run: build
	$(BIN) serve --config $(CONFIG)

# Install what the tests need if it is missing (scripts/test-deps.sh says
# what and why: redis-server, dovecot, chromium), then run every test with
# the race detector.
test: test-deps
	$(GO) test -race -shuffle=on -timeout 20m ./...

test-deps:
	@scripts/test-deps.sh

check:
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); echo "gofmt needed"; exit 1; }
	$(GO) vet ./...
	$(GO) run honnef.co/go/tools/cmd/staticcheck@2025.1.1 ./...

# Run every fuzz target briefly (FUZZTIME each).
fuzz:
	@for pkg in $$($(GO) list ./...); do \
	  for f in $$($(GO) test -list '^Fuzz' $$pkg 2>/dev/null | grep '^Fuzz'); do \
	    echo "== $$pkg $$f"; $(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) $$pkg || exit 1; \
	  done; \
	done

# Micro-benchmarks with allocations, then the end-to-end load matrix, with
# the builtin client and with Postfix's smtp-source (test-deps installs it).
bench: test-deps
	$(GO) test -run '^$$' -bench . -benchmem -benchtime 2s ./parse/ ./route/ ./ingest/... ./deliver/...
	@if [ -x scripts/bench.sh ]; then scripts/bench.sh; fi

clean:
	rm -rf bin data
