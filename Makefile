# GVS — Go Virtual Server. `make demo` runs the lab demo, `make test` all tests.
GO      ?= $(shell command -v go 2>/dev/null || echo /usr/local/go/bin/go)
BIN     := bin
CMDS    := gvs-dataplane gvs-controlplane dpip ipvsadm gvs-testsrv gvs-pktgen
# packages whose tests run under the race detector (the dataplane's
# lock-free worker state is checked by design, not by the race detector)
RACE_PKGS := ./dataplane/config/... ./dataplane/apiserver/... ./dataplane/ring/... ./dataplane/route/... \
             ./internal/... ./cmd/... ./header/... ./ctrlplane/... ./ipvs/... ./session/... ./nat/... ./flowdir/...

.PHONY: all build test unit integration race lint fmt demo deps proto bench bench-micro pgo clean install deb

all: build

build:
	@mkdir -p $(BIN)
	$(GO) build -o $(BIN)/ $(addprefix ./cmd/,$(CMDS))

deps:
	@scripts/deps.sh

test: deps build lint
	$(GO) test -count=1 -timeout 20m ./...
	$(GO) test -count=1 -race -timeout 20m $(RACE_PKGS)

unit: build
	$(GO) test -count=1 $(shell $(GO) list ./... | grep -v /test/integration)

integration: deps build
	$(GO) test -count=1 -v -timeout 20m ./test/integration/

lint:
	@out=$$(gofmt -l $$(find . -name '*.go' -not -path './.git/*')); \
	  if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

fmt:
	gofmt -w $$(find . -name '*.go' -not -path './.git/*')

demo: deps build
	@scripts/demo.sh

proto:
	protoc -I api --go_out=api/dataplanepb --go_opt=paths=source_relative \
	  --go-grpc_out=api/dataplanepb --go-grpc_opt=paths=source_relative api/dataplane.proto

# bpf: regenerates the XDP fast path (dataplane/port/afxdp/xdpfast) from its
# C source with clang through bpf2go; the object and the Go file are
# committed, so building GVS needs no clang. bpf-check regenerates and fails
# when the committed files differ; it runs only with the clang major version
# the committed object was built with (other versions emit other bytes).
BPF_DIR   := dataplane/port/afxdp/xdpfast
BPF_CLANG := 14
.PHONY: bpf bpf-check
bpf:
	@command -v clang >/dev/null || { echo "make bpf: clang is missing: apt-get install clang llvm" >&2; exit 1; }
	cd $(BPF_DIR) && $(GO) generate ./

bpf-check: bpf
	@v=$$(clang -dumpversion | cut -d. -f1); if [ "$$v" != "$(BPF_CLANG)" ]; then \
	  echo "make bpf-check: clang $$v is not clang $(BPF_CLANG): regeneration not compared (the committed object stays in use)"; \
	else git diff --exit-code --stat -- $(BPF_DIR) || { echo "make bpf-check: $(BPF_DIR) does not regenerate identically: run make bpf and commit" >&2; exit 1; }; fi

# dpdk: gvs-dataplane with the DPDK port driver (cgo over the distribution's
# DPDK: apt-get install libdpdk-dev) in $(BIN)/dpdk/; dpdk-test runs the
# driver's tests on virtual devices (no hugepages needed), and the
# dataplane's tests of steering, RSS and xstats through the driver.
.PHONY: dpdk dpdk-test
dpdk:
	@pkg-config --exists libdpdk || { echo "make dpdk: libdpdk-dev is missing: apt-get install libdpdk-dev" >&2; exit 1; }
	@mkdir -p $(BIN)/dpdk
	$(GO) build -tags dpdk -o $(BIN)/dpdk/ ./cmd/gvs-dataplane

dpdk-test:
	@pkg-config --exists libdpdk || { echo "make dpdk-test: libdpdk-dev is missing: apt-get install libdpdk-dev" >&2; exit 1; }
	$(GO) vet -tags dpdk ./dataplane/port/dpdk/
	$(GO) test -count=1 -tags dpdk ./dataplane/port/dpdk/ ./dataplane/config/
	$(GO) test -count=1 -tags dpdk -run 'TestDPDK' ./dataplane/

bench: build
	bench/run.sh

# the pipeline benchmarks built as gvs-dataplane is: with its PGO profile
bench-micro:
	$(GO) test -pgo=$(CURDIR)/$(PGO) -run '^$$' -bench . -benchmem ./dataplane/ ./dataplane/route/

# PGO is the profile gvs-dataplane is built with (go build picks up a main
# package's default.pgo): the packet path of the pipeline benchmarks on the
# mem driver — established FullNAT both ways, new connections, forwarding,
# SYN cookies, the other forwarding modes, NAT64. make pgo regenerates it
# after the packet path changed (docs/benchmarks.md, "The mem pipeline").
PGO = cmd/gvs-dataplane/default.pgo
PGO_BENCH = LBPaths|FullNATEstablishedMany|ForwardIPv4$$|ForwardIPv6$$|EchoIPv4$$|SynProxyCookie|Modes|NAT64Established|FragFirst|Tunnel
pgo:
	$(GO) test -run '^$$' -bench '$(PGO_BENCH)' -benchtime 2000000x -cpuprofile $(CURDIR)/$(PGO).new ./dataplane/ >/dev/null
	mv $(PGO).new $(PGO)
	rm -f dataplane.test

clean:
	rm -rf $(BIN)

# install: binaries, systemd units, sample configs (never over existing
# ones) and docs under DESTDIR. The binaries are static (no cgo): the
# package needs nothing at run time but the kernel.
PREFIX      ?= /usr/local
DESTDIR     ?=
SYSCONFDIR  ?= /etc
UNITDIR     ?= /lib/systemd/system
VERSION     ?= $(shell cat VERSION 2>/dev/null || echo 0~git$$(git log -1 --format=%cd --date=format:%Y%m%d).$$(git rev-parse --short HEAD))
DEB_ARCH    ?= $(shell $(GO) env GOARCH)
SBIN_CMDS   := gvs-dataplane gvs-controlplane ipvsadm dpip
BIN_CMDS    := gvs-pktgen
INSTALL_BIN := $(BIN)/install

install:
	@mkdir -p $(INSTALL_BIN)
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '-s -w -X github.com/gvs-lb/gvs/dataplane/apiserver.Version=$(VERSION)' \
	  -o $(INSTALL_BIN)/ $(addprefix ./cmd/,$(SBIN_CMDS) $(BIN_CMDS))
	install -d $(DESTDIR)$(PREFIX)/sbin $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(UNITDIR) \
	  $(DESTDIR)$(SYSCONFDIR)/gvs $(DESTDIR)$(PREFIX)/share/doc/gvs
	install -m 0755 $(addprefix $(INSTALL_BIN)/,$(SBIN_CMDS)) $(DESTDIR)$(PREFIX)/sbin/
	install -m 0755 $(addprefix $(INSTALL_BIN)/,$(BIN_CMDS)) $(DESTDIR)$(PREFIX)/bin/
	for u in dist/systemd/*.service; do \
	  sed 's|/usr/sbin/|$(PREFIX)/sbin/|g; s|file:/usr/share/doc/gvs|file:$(PREFIX)/share/doc/gvs|g' $$u >$(DESTDIR)$(UNITDIR)/$${u##*/}; \
	  chmod 0644 $(DESTDIR)$(UNITDIR)/$${u##*/}; done
	for f in dist/etc/gvs/*.yaml; do d=$(DESTDIR)$(SYSCONFDIR)/gvs/$${f##*/}; \
	  if [ -e $$d ]; then echo "install: keeping $$d"; else install -m 0644 $$f $$d; fi; done
	install -m 0644 README.md docs/*.md $(DESTDIR)$(PREFIX)/share/doc/gvs/

# deb: the same tree under /usr, packed by dpkg-deb (bin/gvs_VERSION_ARCH.deb
# and bin/gvs.deb pointing at it).
DEB_ROOT := $(BIN)/deb/root
deb:
	rm -rf $(BIN)/deb $(BIN)/gvs_*.deb $(BIN)/gvs.deb
	$(MAKE) --no-print-directory install DESTDIR=$(CURDIR)/$(DEB_ROOT) PREFIX=/usr VERSION='$(VERSION)'
	install -d $(DEB_ROOT)/DEBIAN
	sed -e 's|@VERSION@|$(VERSION)|' -e 's|@ARCH@|$(DEB_ARCH)|' \
	  -e "s|@SIZE@|$$(du -sk --exclude=DEBIAN $(DEB_ROOT) | cut -f1)|" dist/debian/control.in >$(DEB_ROOT)/DEBIAN/control
	install -m 0644 dist/debian/conffiles $(DEB_ROOT)/DEBIAN/
	install -m 0755 dist/debian/postinst dist/debian/prerm dist/debian/postrm $(DEB_ROOT)/DEBIAN/
	dpkg-deb --root-owner-group -Zgzip --build $(DEB_ROOT) $(BIN)/gvs_$(VERSION)_$(DEB_ARCH).deb
	ln -sf gvs_$(VERSION)_$(DEB_ARCH).deb $(BIN)/gvs.deb
