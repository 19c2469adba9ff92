# delve: DNS-over-TLS lookups for OpenWrt. `make help` lists the targets.

GO      ?= go
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
PKG     := github.com/delvedns/delve
LDFLAGS := -s -w -X $(PKG)/internal/version.Version=$(VERSION)
GOFLAGS_BUILD := -trimpath -ldflags '$(LDFLAGS)'
ARGS    ?= openwrt.org

.PHONY: help build run test lint deps
help:
	@echo 'make build   build ./delve for this machine'
	@echo 'make run     look up $$ARGS (default: openwrt.org) over DoT: make run ARGS="example.com AAAA"'
	@echo 'make test    install the Debian packages the tests need (as root), then lint and go test -race'
	@echo 'make lint    gofmt and go vet'

build:
	CGO_ENABLED=0 $(GO) build $(GOFLAGS_BUILD) -o delve ./cmd/delve

run:
	$(GO) run $(GOFLAGS_BUILD) ./cmd/delve $(ARGS)

deps:
	./scripts/test-deps.sh

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt would change: $$out"; exit 1; fi
	$(GO) vet ./...

test: deps lint
	$(GO) test -race -timeout 15m ./...
