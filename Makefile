# xvr — see README.md. `make demo` and `make test` set up everything they need.
GO      ?= go
VERSION ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X main.version=$(VERSION)
CMDS    := $(notdir $(wildcard cmd/*))

.PHONY: all build deps install test test-unit fmt-check vet bench bench-quick demo demo-single-node generate clean

all: build

deps:
	./scripts/install-deps.sh

build:
	mkdir -p bin
	$(GO) build -ldflags "$(LDFLAGS)" -o bin/ $(addprefix ./cmd/,$(CMDS))
	$(GO) build -o bin/cnitool github.com/containernetworking/cni/cnitool

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet ./...

# The whole suite: unit, fuzz seeds, root/netns end-to-end tests, race detector,
# and every benchmark once so they keep compiling and running.
test: deps build fmt-check vet
	$(GO) test -race -count=1 -timeout 45m ./...
	$(GO) test -count=1 -run '^$$' -bench . -benchtime 1x -timeout 20m ./...

# Unit tests only (no root needed).
test-unit:
	$(GO) test -short -count=1 ./...

# xvr against Linux routing, bridge and kernel VXLAN on the same topology
# (docs/bench.md); bench-quick is the ~2 min version.
bench: deps build
	bin/xvr-bench -o bench-out
	$(GO) test -count=1 -run '^$$' -bench . -benchtime 2s ./vrouter/... ./bench/... ./encap ./flowtable

bench-quick: deps build
	bin/xvr-bench --quick -o bench-out

demo: deps build
	./scripts/demo.sh

demo-single-node: deps build
	./scripts/demo-single-node.sh

# Install on a node: binaries, the CNI plugin under its type names, the
# systemd unit, its env file (kept if present) and the node CNI config.
PREFIX ?= /usr/local
install: build
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)/opt/cni/bin $(DESTDIR)/etc/systemd/system $(DESTDIR)/etc/xvr $(DESTDIR)/etc/cni/net.d
	install -m 0755 bin/xvrd bin/xvrctl bin/xvr-cni $(DESTDIR)$(PREFIX)/bin/
	install -m 0755 bin/xvr-cni $(DESTDIR)/opt/cni/bin/xvr
	install -m 0755 bin/xvr-cni $(DESTDIR)/opt/cni/bin/contrail-k8s-cni
	install -m 0644 deploy/xvrd.service $(DESTDIR)/etc/systemd/system/xvrd.service
	[ -e $(DESTDIR)/etc/xvr/xvrd.env ] || install -m 0644 deploy/xvrd.env $(DESTDIR)/etc/xvr/xvrd.env
	install -m 0644 deploy/10-xvr.conflist $(DESTDIR)/etc/cni/net.d/10-xvr.conflist
	if [ -z "$(DESTDIR)" ] && [ -d /run/systemd/system ]; then systemctl daemon-reload; fi

generate:
	cd vrouter/xdpprog && $(GO) generate

clean:
	rm -rf bin
