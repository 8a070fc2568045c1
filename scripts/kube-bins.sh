#!/usr/bin/env bash
# Builds the Kubernetes binaries the end-to-end tests (kube/kubetest) run,
# all from the Go module proxy, into .cache/kube/bin (ignored by git):
#
#   - kube-apiserver, kube-controller-manager, kube-proxy, kube-scheduler,
#     kubectl and kubelet from tools/kube, a module of its own that requires
#     k8s.io/kubernetes with replace lines for its staging modules and names
#     the six commands in its tool block; they are built by one `go build`
#     and stamped with the Kubernetes version so they report it (not
#     v0.0.0-master);
#   - coredns from tools/coredns, a CoreDNS with only the plugins a cluster
#     DNS needs.
#
# Each module is rebuilt only when its go.mod or go.sum changes (a stamp
# next to the binaries). The first build of tools/kube takes about 12
# minutes on 2 cores (kubelet, kube-scheduler and kubectl added about 5 to
# a build cache warm with the other three), coredns about 3 more; a
# rebuild from a warm build cache (only linking) about 1 minute.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=.cache/kube/bin
mkdir -p "$bin"

# stamp MODULE prints what the binaries built from MODULE were built from.
stamp() { cat "tools/$1/go.mod" "tools/$1/go.sum" | sha256sum | cut -d' ' -f1; }

# fresh MODULE BIN... succeeds when every BIN is there and MODULE is unchanged.
fresh() {
	local mod=$1 b
	shift
	[[ -f $bin/$mod.sum && $(cat "$bin/$mod.sum") == "$(stamp "$mod")" ]] || return 1
	for b; do [[ -x $bin/$b ]] || return 1; done
}

# build MODULE LDFLAGS PKG... builds every PKG of MODULE in one go build,
# into a fresh directory first so that a failed build replaces nothing.
tmp=
trap '[[ -z $tmp ]] || rm -rf "$tmp"' EXIT
build() {
	local mod=$1 ldflags=$2
	shift 2
	tmp=$(mktemp -d "$bin/.build.XXXXXX")
	(cd "tools/$mod" && GOWORK=off go build -trimpath -ldflags "$ldflags" -o "$OLDPWD/$tmp/" "$@")
	mv "$tmp"/* "$bin/"
	rm -rf "$tmp"
	tmp=
	stamp "$mod" >"$bin/$mod.sum"
}

kube=$(grep -oE 'k8s.io/kubernetes v[0-9]+\.[0-9]+\.[0-9]+' tools/kube/go.mod | head -1 | cut -d' ' -f2)
kubecmds=(kube-apiserver kube-controller-manager kube-proxy kube-scheduler kubectl kubelet)
if ! fresh kube "${kubecmds[@]}"; then
	echo "kube: building ${kubecmds[*]} $kube into $bin (first time: minutes)"
	major=${kube#v}; major=${major%%.*}
	minor=${kube#v*.}; minor=${minor%%.*}
	v=k8s.io/component-base/version
	build kube "-X $v.gitVersion=$kube -X $v.gitMajor=$major -X $v.gitMinor=$minor -X $v.gitTreeState=clean" \
		"${kubecmds[@]/#/k8s.io/kubernetes/cmd/}"
fi

if [[ -d tools/coredns ]]; then
	coredns=$(grep -oE 'github.com/coredns/coredns v[0-9.]+' tools/coredns/go.mod | head -1 | cut -d' ' -f2)
	if ! fresh coredns coredns; then
		echo "coredns: building $coredns into $bin"
		build coredns "-X github.com/coredns/coredns/coremain.GitCommit=$coredns" .
	fi
fi
