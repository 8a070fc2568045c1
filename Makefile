# xvr — see README.md. `make demo` and `make test` set up everything they need.
GO      ?= go
VERSION ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X main.version=$(VERSION)
CMDS    := $(notdir $(wildcard cmd/*))

.PHONY: all build deps install uninstall test test-unit fmt-check vet bench bench-quick demo demo-kube demo-single-node generate clean fuzz soak kube-bins kube-apiserver images

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

# The Kubernetes binaries the Kubernetes tests (kube/kubetest) run, built
# from the Go module proxy into .cache/kube/bin once (scripts/kube-bins.sh):
# kube-apiserver, kube-controller-manager, kube-proxy, kube-scheduler,
# kubectl, kubelet (tools/kube, one go build) and
# coredns (tools/coredns); etcd is Debian's (make deps). kube-apiserver is
# the old name of this target.
kube-bins:
	./scripts/kube-bins.sh
kube-apiserver: kube-bins

# The Kubernetes images (node, controller, pause, test-app, coredns) as docker-save
# archives in .cache/images, built without a container engine
# (scripts/images.sh, docs/decisions/0007-images-without-docker.md); load
# one with `ctr -n k8s.io images import .cache/images/NAME.tar`.
images: kube-bins
	./scripts/images.sh

# The whole suite: unit, fuzz seeds, root/netns end-to-end tests (Kubernetes
# ones against a real kube-apiserver + etcd), race detector, and every
# benchmark once so they keep compiling and running.
test: deps build kube-bins fmt-check vet
	$(GO) test -race -count=1 -timeout 45m ./...
	$(GO) test -count=1 -run '^$$' -bench . -benchtime 1x -timeout 20m ./...
	$(MAKE) fuzz

# Every fuzz target in the repository, FUZZTIME each; a failure leaves its
# input under the package's testdata/fuzz. A count, not a duration: with a
# duration, go1.26's fuzz coordinator can fail a target with "context
# deadline exceeded" at the deadline on a loaded machine (go.dev/issue/75804,
# fixed in go1.27).
FUZZTIME ?= 20000x
fuzz:
	@set -e; for f in $$(git ls-files -co --exclude-standard '*_test.go' | xargs grep -l '^func Fuzz' | sort); do \
		for n in $$(sed -n 's/^func \(Fuzz[A-Za-z0-9_]*\)(.*/\1/p' $$f); do \
			echo "== $$(dirname $$f) $$n ($(FUZZTIME))"; \
			$(GO) test -count=1 -run '^$$' -fuzz "^$$n\$$" -fuzztime $(FUZZTIME) -timeout 10m ./$$(dirname $$f); \
		done; \
	done

# Soak (as root, bounded to 10 min): mixed traffic plus pod churn against
# one xvrd; asserts RSS, goroutines and fds are flat and writes a report
# (docs/reliability.md). SOAK_DURATION (default 5m, at most 9m30s) sets the
# traffic phase, SOAK_REPORT where the report goes.
SOAK_DURATION ?= 5m
SOAK_REPORT   ?= soak-out/report.md
soak: deps build
	SOAK_DURATION=$(SOAK_DURATION) SOAK_REPORT=$(SOAK_REPORT) ./scripts/soak.sh

# Unit tests only (no root needed).
test-unit:
	$(GO) test -short -count=1 ./...

# xvr against Linux routing, bridge, OVS AF_XDP and kernel VXLAN on the same
# topology (docs/bench.md); bench-quick is the ~3-5 min version.
bench: deps build
	bin/xvr-bench -o bench-out
	$(GO) test -count=1 -run '^$$' -bench . -benchtime 2s ./vrouter/... ./bench/... ./encap ./flowtable

bench-quick: deps build
	bin/xvr-bench --quick -o bench-out

demo: deps build
	./scripts/demo.sh

# The seed's walkthrough with the real kubectl on a real one-node cluster
# (kubelet + containerd in a network namespace of its own), xvr installed
# from its own images with kubectl apply -f deploy/kubernetes/.
demo-kube: deps build kube-bins
	$(GO) test -tags demo -count=1 -run '^TestDemoKube$$' -v -timeout 15m ./e2e/

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

# Uninstall from a node: stop the unit, remove the host interface, its routes
# and the masquerade chain (xvrd -uninstall), then the installed files. The
# state store (/var/lib/xvr) is kept.
uninstall:
	if [ -z "$(DESTDIR)" ] && [ -d /run/systemd/system ]; then systemctl disable --now xvrd || true; fi
	if [ -z "$(DESTDIR)" ] && [ -x $(PREFIX)/bin/xvrd ]; then $(PREFIX)/bin/xvrd -uninstall; fi
	rm -f $(DESTDIR)$(PREFIX)/bin/xvrd $(DESTDIR)$(PREFIX)/bin/xvrctl $(DESTDIR)$(PREFIX)/bin/xvr-cni
	rm -f $(DESTDIR)/opt/cni/bin/xvr $(DESTDIR)/opt/cni/bin/contrail-k8s-cni
	rm -f $(DESTDIR)/etc/systemd/system/xvrd.service $(DESTDIR)/etc/cni/net.d/10-xvr.conflist
	if [ -z "$(DESTDIR)" ] && [ -d /run/systemd/system ]; then systemctl daemon-reload; fi

generate:
	cd vrouter/xdpprog && $(GO) generate

clean:
	rm -rf bin
