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

## proto: regenerate yarn/hadoopproto/*.pb.go (needs protoc and protoc-gen-go v1.36.12:
##        apt-get install protobuf-compiler; go install google.golang.org/protobuf/cmd/protoc-gen-go@v1.36.12)
proto:
	PATH="$$($(GO) env GOPATH)/bin:$$PATH" protoc -I . \
		--go_out=. --go_opt=paths=source_relative yarn/hadoopproto/*.proto

clean:
	rm -rf bin
