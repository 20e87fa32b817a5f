# GVS — Go Virtual Server. `make demo` runs the lab demo, `make test` all tests.
GO      ?= $(shell command -v go 2>/dev/null || echo /usr/local/go/bin/go)
BIN     := bin
CMDS    := gvs-dataplane gvs-controlplane dpip ipvsadm gvs-testsrv gvs-pktgen
# packages whose tests run under the race detector (the dataplane's
# lock-free worker state is checked by design, not by the race detector)
RACE_PKGS := ./dataplane/config/... ./dataplane/apiserver/... ./dataplane/ring/... ./dataplane/route/... \
             ./internal/... ./cmd/... ./header/... ./ctrlplane/... ./ipvs/... ./session/... ./nat/... ./flowdir/...

.PHONY: all build test unit integration race lint fmt demo deps proto bench bench-micro clean

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

bench: build
	bench/run.sh

bench-micro:
	$(GO) test -run '^$$' -bench . -benchmem ./dataplane/ ./dataplane/route/

clean:
	rm -rf $(BIN)
