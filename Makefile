GO      ?= go
BIN     := bin/tidewatch
VERSION ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -s -w -X main.version=$(VERSION)
BENCHTIME ?= 1s

.PHONY: all build test bench run stop proto clean

all: build

## build: the one tidewatch binary (static, no cgo) in bin/
build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/tidewatch

## test: go vet and every test with the race detector
test:
	$(GO) vet ./...
	$(GO) test -race -timeout 20m ./...

## bench: every benchmark, with the figures each one reports
bench:
	$(GO) test -run '^$$' -bench . -benchtime $(BENCHTIME) ./...

## run: the whole platform on this machine: daemon (embedded default) plus the example job
run: build
	@scripts/run.sh

## stop: stop the jobs and the daemon that `make run` started
stop:
	@scripts/stop.sh

clean:
	rm -rf bin
