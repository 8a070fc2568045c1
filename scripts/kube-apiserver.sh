#!/usr/bin/env bash
# Builds kube-apiserver for the Kubernetes tests (kube/kubetest) from the Go
# module proxy: tools/kube-apiserver is a module of its own that requires
# k8s.io/kubernetes with replace lines for its staging modules. The binary
# goes to .cache/kube/bin (ignored by git) and is rebuilt only when that
# module changes. About 7 minutes on 2 cores the first time.
set -euo pipefail
cd "$(dirname "$0")/.."
out=.cache/kube/bin/kube-apiserver
stamp=.cache/kube/bin/kube-apiserver.sum
want=$(cat tools/kube-apiserver/go.mod tools/kube-apiserver/go.sum | sha256sum | cut -d' ' -f1)
if [[ -x $out && -f $stamp && $(cat "$stamp") == "$want" ]]; then
	exit 0
fi
mkdir -p .cache/kube/bin
echo "kube-apiserver: building $(grep -oE 'k8s.io/kubernetes v[0-9.]+' tools/kube-apiserver/go.mod | head -1 | cut -d' ' -f2) into $out (first time: minutes)"
(cd tools/kube-apiserver && GOWORK=off go build -trimpath -o "../../$out.tmp" k8s.io/kubernetes/cmd/kube-apiserver)
mv "$out.tmp" "$out"
echo "$want" >"$stamp"
