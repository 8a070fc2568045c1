#!/usr/bin/env bash
# Builds the project's Kubernetes images as docker-save archives, without a
# container engine or a registry (docs/decisions/0007-images-without-docker.md),
# into ${IMAGES_DIR:-.cache/images}:
#
#   xvr-node.tar        xvr.local/xvr-node:TAG        xvrd, xvr-cni, xvrctl and
#                       Debian's iptables (iptables-nft, its libraries and
#                       extensions), which xvrd runs for its egress masquerade
#   xvr-controller.tar  xvr.local/xvr-controller:TAG  xvr-kube-manager, uid 65534
#   pause.tar           xvr.local/pause:TAG           the pod sandbox (images/pause)
#   test-app.tar        xvr.local/test-app:TAG        HTTP hostname + /healthz and a
#                       UDP echo on 8080 (images/test-app), and Debian's ip
#   coredns.tar         xvr.local/coredns:TAG         the CoreDNS of scripts/kube-bins.sh
#                       (.cache/kube/bin/coredns, or $XVR_KUBE_ASSETS) and its libc
#
# Load one into a node's containerd with
#   ctr -n k8s.io images import .cache/images/pause.tar
# and run it with imagePullPolicy: Never. The Go programs are built static
# (CGO_ENABLED=0); the Debian ones come with the shared libraries ldd lists.
# TAG is $IMAGE_TAG, default dev.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${IMAGES_DIR:-.cache/images}
tag=${IMAGE_TAG:-dev}
version=${VERSION:-$(git describe --always --dirty 2>/dev/null || echo dev)}
bin=$out/bin
mkdir -p "$bin"

CGO_ENABLED=0 go build -trimpath -ldflags "-X main.version=$version" -o "$bin/" \
	./cmd/xvrd ./cmd/xvr-cni ./cmd/xvrctl ./cmd/xvr-kube-manager ./cmd/xvr-image \
	./images/pause ./images/test-app

mk() { # FILE REF FLAGS...
	local file=$1 ref=$2
	shift 2
	echo "images: $ref -> $out/$file ($("$bin/xvr-image" -o "$out/$file" -ref "$ref" -label "org.opencontainers.image.version=$version" "$@"))"
}

mk pause.tar "xvr.local/pause:$tag" -file /pause="$bin/pause" -entrypoint /pause
mk test-app.tar "xvr.local/test-app:$tag" -file /test-app="$bin/test-app" -entrypoint /test-app \
	-host "$(command -v ip)"
coredns=${XVR_KUBE_ASSETS:-.cache/kube/bin}/coredns
mk coredns.tar "xvr.local/coredns:$tag" -file /coredns="$coredns" -entrypoint /coredns \
	$(ldd "$coredns" | awk '$1 ~ /^\// {print "-host", $1} $3 ~ /^\// {print "-host", $3}')
mk xvr-controller.tar "xvr.local/xvr-controller:$tag" -file /usr/local/bin/xvr-kube-manager="$bin/xvr-kube-manager" \
	-entrypoint /usr/local/bin/xvr-kube-manager -user 65534
mk xvr-node.tar "xvr.local/xvr-node:$tag" \
	-file /usr/local/bin/xvrd="$bin/xvrd" -file /usr/local/bin/xvr-cni="$bin/xvr-cni" -file /usr/local/bin/xvrctl="$bin/xvrctl" \
	-host /usr/sbin/iptables -host-tree "$(dirname "$(readlink -f "$(ldd "$(readlink -f /usr/sbin/iptables)" | awk '/libxtables/ {print $3}')")")/xtables" \
	-entrypoint /usr/local/bin/xvrd
