# delve: DNS-over-TLS lookups for OpenWrt. `make help` lists the targets.

GO      ?= go
# VERSION is the package version X.Y.Z-rN (scripts/pkgversion): `delve version`, status.version
# and both packages' Version field show this one string. IPK_VERSION=... on the command line,
# its older name, sets it too. COMMIT is the commit built from, `delve version`'s second line.
# Evaluated once (:=), so that a commit landing during a long make does not mix two versions.
ifeq ($(origin VERSION),undefined)
ifneq ($(origin IPK_VERSION),undefined)
VERSION := $(IPK_VERSION)
else
VERSION := $(shell ./scripts/pkgversion)
endif
endif
IPK_VERSION := $(VERSION)
ifeq ($(origin COMMIT),undefined)
COMMIT  := $(shell git describe --always --dirty --abbrev=7 --exclude='*' 2>/dev/null || echo unknown)
endif
PKG     := github.com/delvedns/delve
# SOURCE_DATE_EPOCH (default: the last commit's time) is stamped as the build time, the lower
# bound of the real time that tolerate_unset_clock checks certificates against
# (internal/version.Built); every build passes it, as scripts/build-arch and the feed recipe do.
ifeq ($(origin SOURCE_DATE_EPOCH),undefined)
SOURCE_DATE_EPOCH := $(shell git log -1 --format=%ct 2>/dev/null || echo 0)
endif
LDFLAGS := -s -w -X $(PKG)/internal/version.Version=$(VERSION) -X $(PKG)/internal/version.Commit=$(COMMIT) \
	-X $(PKG)/internal/version.BuildTime=$(SOURCE_DATE_EPOCH)
GOFLAGS_BUILD := -trimpath -ldflags '$(LDFLAGS)'
ARGS    ?= openwrt.org

.PHONY: help build run demo test lint deps
help:
	@echo 'make build   build ./delve for this machine'
	@echo 'make run     build ./delve, then look up $$ARGS (default: openwrt.org) over DoT: make run ARGS="example.com AAAA"'
	@echo 'make demo    offline: delve against a DoT server on loopback (unbound), then the daemon: JSON-RPC, DNS, status'
	@echo 'make test    install the Debian packages the tests need (as root), then lint and go test -race'
	@echo 'make deps    only install the Debian packages the tests need (as root)'
	@echo 'make lint    gofmt and go vet'
	@echo 'make bench   delve against stubby, unbound and kdig on one loopback DoT server (installs them; bench/README.md)'
	@echo 'make soak    1,000,000 lookups through the real daemon, at most 10 minutes; RSS, goroutines and fds stay flat'
	@$(MAKE) -s --no-print-directory help-router

build:
	CGO_ENABLED=0 $(GO) build $(GOFLAGS_BUILD) -o delve ./cmd/delve

# make run builds ./delve first, saying so (a cold build cache takes minutes), then runs it. make
# turns any failure into its own exit status 2, so delve's own (1 no such records, 2 usage or
# configuration, 3 no upstream answered) is printed; a script runs ./delve itself.
run:
	@echo 'make run: building ./delve $(VERSION) (minutes on a cold build cache), then ./delve $(ARGS)' >&2
	@$(MAKE) -s --no-print-directory build
	@./delve $(ARGS) || { s=$$?; echo "make run: delve exited with status $$s (1: no such records; 2: usage or configuration; 3: no upstream answered)" >&2; exit $$s; }

# The offline way to see delve work: scripts/demo starts unbound on loopback (internal/testenv),
# runs ./delve and delve serve against it, shows each command, and stops what it started.
# DEMOFLAGS=-wait keeps both running until Ctrl-C.
demo:
	@./scripts/ensure-debs.sh "the demo's DoT server and dig" unbound:unbound dig:bind9-dnsutils
	@$(MAKE) --no-print-directory build
	@$(GO) build -o $(DIST)/.tools/demo ./scripts/demo
	@$(DIST)/.tools/demo -delve ./delve $(DEMOFLAGS)

deps:
	./scripts/test-deps.sh

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt would change: $$out"; exit 1; fi
	$(GO) vet ./...

# Every test; then the ubus decoders, which read what any local process sends through ubusd, are
# fuzzed for 200,000 inputs each (their seeds run in go test too), a few seconds here. A count,
# not a time: Go 1.26's fuzzer can fail a run whose -fuzztime duration ends while a worker is busy
# ("context deadline exceeded", no failing input; golang/go#75804, fixed in Go 1.27).
test: deps lint
	$(GO) test -race -timeout 15m ./...
	$(GO) test -run '^$$' -fuzz '^FuzzDecode$$' -fuzztime 200000x ./ubus/blob/
	$(GO) test -run '^$$' -fuzz '^FuzzMessage$$' -fuzztime 200000x ./ubus/ubusd/

# Router builds: static cross-builds, the .ipk opkg installs (OpenWrt 24.10 and earlier), the .apk
# apk installs (25.12 and later), and where the bytes go.
# The one table of OpenWrt arch -> Go settings is scripts/arches; scripts/build-arch builds a row.
# SOURCE_DATE_EPOCH (default: the last commit's time) fixes every timestamp, so the same commit
# gives the same bytes. VERSION (above) is the version of both packages and of the binary in
# them. INLINE=1 trades size for speed (see scripts/build-arch).
DIST      ?= dist
ARCHES    := $(shell sed 's/\#.*//' scripts/arches | awk 'NF {print $$1}')
SIZE_ARCH ?= arm_cortex-a7_neon-vfpv4
BUILD_ARCH = GO='$(GO)' VERSION='$(VERSION)' COMMIT='$(COMMIT)' SOURCE_DATE_EPOCH='$(SOURCE_DATE_EPOCH)' INLINE='$(INLINE)' ./scripts/build-arch
MKIPK      = $(DIST)/.tools/mkipk -version '$(IPK_VERSION)' -epoch '$(SOURCE_DATE_EPOCH)' -files files
MKAPK      = $(DIST)/.tools/mkapk -version '$(IPK_VERSION)' -epoch '$(SOURCE_DATE_EPOCH)' -files files
ipk_name   = $(DIST)/delve_$(IPK_VERSION)_$(1).ipk
apk_name   = $(DIST)/$(1)/delve-$(IPK_VERSION).apk
# luci-app-delve is arch all, one package for every router, made from the luci-app-delve directory.
LUCI_PKG   = -pkg luci-app-delve -arch all -version '$(IPK_VERSION)' -epoch '$(SOURCE_DATE_EPOCH)' -files luci-app-delve
luci_ipk   = $(DIST)/luci-app-delve_$(IPK_VERSION)_all.ipk
luci_apk   = $(DIST)/all/luci-app-delve-$(IPK_VERSION).apk
# The size ratchet of $(SIZE_ARCH); internal/crossbuild's TestSizeBudget reads the same file.
budget     = $(shell awk '$$1 == "$(1)" {print $$2}' scripts/size-budget)

.PHONY: build-all ipk ipk-all apk apk-all luci-ipk luci-apk size pkg-tools help-router
help-router:
	@echo 'make build-all          static binaries for every arch in scripts/arches: $(DIST)/ARCH/delve'
	@echo 'make ipk ARCH=...       $(DIST)/delve_VERSION_ARCH.ipk for opkg (OpenWrt 24.10 and earlier)'
	@echo 'make ipk-all            an .ipk for every arch'
	@echo 'make apk ARCH=...       $(DIST)/ARCH/delve-VERSION.apk for apk (OpenWrt 25.12 and later)'
	@echo 'make apk-all            an .apk for every arch'
	@echo 'make luci-ipk           $(DIST)/luci-app-delve_VERSION_all.ipk, the LuCI app for opkg (ipk-all makes it too)'
	@echo 'make luci-apk           $(DIST)/all/luci-app-delve-VERSION.apk, the LuCI app for apk (apk-all makes it too)'
	@echo 'make size               binary, .ipk and .apk size per arch, where the bytes of $(SIZE_ARCH) go;'
	@echo '                        fails when $(SIZE_ARCH) is over scripts/size-budget'

build-all:
	@for a in $(ARCHES); do echo "$(DIST)/$$a/delve"; $(BUILD_ARCH) $$a $(DIST)/$$a/delve || exit 1; done

pkg-tools:
	@$(GO) build -o $(DIST)/.tools/mkipk ./scripts/mkipk
	@$(GO) build -o $(DIST)/.tools/mkapk ./scripts/mkapk

ipk: pkg-tools
	@if [ -z '$(ARCH)' ]; then echo 'usage: make ipk ARCH=<OpenWrt arch>, one of: $(ARCHES)' >&2; exit 2; fi
	@$(BUILD_ARCH) '$(ARCH)' '$(DIST)/$(ARCH)/delve'
	@$(MKIPK) -arch '$(ARCH)' -bin '$(DIST)/$(ARCH)/delve' -o '$(call ipk_name,$(ARCH))'
	@echo '$(call ipk_name,$(ARCH))'

ipk-all: pkg-tools
	@for a in $(ARCHES); do \
		$(BUILD_ARCH) $$a $(DIST)/$$a/delve && \
		$(MKIPK) -arch $$a -bin $(DIST)/$$a/delve -o $(DIST)/delve_$(IPK_VERSION)_$$a.ipk && \
		echo $(DIST)/delve_$(IPK_VERSION)_$$a.ipk || exit 1; \
	done
	@$(DIST)/.tools/mkipk $(LUCI_PKG) -o '$(luci_ipk)'
	@echo '$(luci_ipk)'

luci-ipk: pkg-tools
	@$(DIST)/.tools/mkipk $(LUCI_PKG) -o '$(luci_ipk)'
	@echo '$(luci_ipk)'

apk: pkg-tools
	@if [ -z '$(ARCH)' ]; then echo 'usage: make apk ARCH=<OpenWrt arch>, one of: $(ARCHES)' >&2; exit 2; fi
	@$(BUILD_ARCH) '$(ARCH)' '$(DIST)/$(ARCH)/delve'
	@$(MKAPK) -arch '$(ARCH)' -bin '$(DIST)/$(ARCH)/delve' -o '$(call apk_name,$(ARCH))'
	@echo '$(call apk_name,$(ARCH))'

apk-all: pkg-tools
	@for a in $(ARCHES); do \
		$(BUILD_ARCH) $$a $(DIST)/$$a/delve && \
		$(MKAPK) -arch $$a -bin $(DIST)/$$a/delve -o $(DIST)/$$a/delve-$(IPK_VERSION).apk && \
		echo $(DIST)/$$a/delve-$(IPK_VERSION).apk || exit 1; \
	done
	@mkdir -p '$(DIST)/all' && $(DIST)/.tools/mkapk $(LUCI_PKG) -o '$(luci_apk)'
	@echo '$(luci_apk)'

luci-apk: pkg-tools
	@mkdir -p '$(DIST)/all' && $(DIST)/.tools/mkapk $(LUCI_PKG) -o '$(luci_apk)'
	@echo '$(luci_apk)'

# Both packages of every arch from one build each; then the ratchet of scripts/size-budget.
size: pkg-tools
	@for a in $(ARCHES); do \
		$(BUILD_ARCH) $$a $(DIST)/$$a/delve && \
		$(MKIPK) -arch $$a -bin $(DIST)/$$a/delve -o $(DIST)/delve_$(IPK_VERSION)_$$a.ipk && \
		$(MKAPK) -arch $$a -bin $(DIST)/$$a/delve -o $(DIST)/$$a/delve-$(IPK_VERSION).apk || exit 1; \
	done
	@printf '%-28s %12s %12s %12s\n' arch 'binary bytes' '.ipk bytes' '.apk bytes'
	@for a in $(ARCHES); do \
		printf '%-28s %12s %12s %12s\n' $$a $$(wc -c < $(DIST)/$$a/delve) $$(wc -c < $(DIST)/delve_$(IPK_VERSION)_$$a.ipk) \
			$$(wc -c < $(DIST)/$$a/delve-$(IPK_VERSION).apk); \
	done
	@$(BUILD_ARCH) $(SIZE_ARCH) $(DIST)/$(SIZE_ARCH)/delve.unstripped unstripped
	@echo; $(GO) run ./scripts/binsize -top 30 $(DIST)/$(SIZE_ARCH)/delve.unstripped
	@bin=$$(wc -c < $(DIST)/$(SIZE_ARCH)/delve); ipk=$$(wc -c < $(call ipk_name,$(SIZE_ARCH))); \
	 apk=$$(wc -c < $(call apk_name,$(SIZE_ARCH))); \
	 maxbin=$(call budget,binary); maxipk=$(call budget,ipk); pct=$(call budget,apk-over-ipk-percent); \
	 maxapk=$$((ipk + ipk * pct / 100)); \
	 verdict() { if [ $$1 -le $$2 ]; then echo "within $$2"; else echo "OVER $$2 by $$(($$1 - $$2))"; fi; }; \
	 echo; echo "budget $(SIZE_ARCH) (scripts/size-budget): binary $$bin bytes, $$(verdict $$bin $$maxbin);" \
	 ".ipk $$ipk bytes, $$(verdict $$ipk $$maxipk); .apk $$apk bytes, $$(verdict $$apk $$maxapk) (.ipk + $$pct %)"; \
	 [ $$bin -le $$maxbin ] && [ $$ipk -le $$maxipk ] && [ $$apk -le $$maxapk ]

# Benchmarks: delve against stubby, unbound as a DoT forwarder and kdig, all on one loopback DoT
# upstream (bench/README.md). Installs what it runs (as root), prints the table and writes it to
# bench/results/. Not part of test: nothing asserts a time. Options: BENCHFLAGS='-duration 2s'.
.PHONY: bench
# delve is measured as it ships for x86_64 routers (scripts/build-arch x86_64).
bench:
	./bench/deps.sh
	@$(BUILD_ARCH) x86_64 $(DIST)/bench/delve
	$(GO) run ./bench/cmd/delvebench -version '$(VERSION)' -delve $(abspath $(DIST))/bench/delve $(BENCHFLAGS)

# Soak: 1,000,000 lookups through the real daemon (mostly cache hits, some misses, some
# NXDOMAIN), stopped at 10 minutes; RSS, goroutines and fds at the start and the end, which must
# be flat. Not part of test. Writes bench/results/soak-last.txt. DELVE_SOAK_LOOKUPS=N and
# DELVE_SOAK_TIME=5m in the environment change the count and the bound.
.PHONY: soak
soak:
	DELVE_SOAK_OUT=$(CURDIR)/bench/results/soak-last.txt $(GO) test -tags soak -run '^TestSoak$$' -count=1 -timeout 20m -v ./internal/faults/
