#!/usr/bin/env bash
# The single-node demo: a node namespace running xvrd, two virtual networks
# from NetworkAttachmentDefinition YAML (examples/), three pods. Pods on the
# same VN reach each other through the AF_XDP forwarder; across VNs they do
# not, and the drops show in dropstats. Everything it creates is named
# xd<pid>… and deleted by exact name on exit. Needs root (make demo).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-bin}
id=$$
node="xd${id}n"
work=$(mktemp -d /tmp/xvr-demo.XXXXXX)
sock="$work/xvrd.sock"
xvrd_pid=""
pods=()

cleanup() {
	set +e
	[[ -n $xvrd_pid ]] && kill "$xvrd_pid" 2>/dev/null && wait "$xvrd_pid" 2>/dev/null
	for p in "${pods[@]}"; do ip netns del "$p" 2>/dev/null; done
	ip netns del "$node" 2>/dev/null
	rm -rf "$work"
}
trap cleanup EXIT

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
ctl() { "$BIN/xvrctl" --socket "$sock" "$@"; }
inns() { ip netns exec "$1" "${@:2}"; }

# pod NAME NETWORK IP/LEN GW MAC: a pod namespace whose eth0 is attached to xvrd.
pod() {
	local name="xd${id}$1" host="xd${id}$1h"
	ip netns add "$name"; pods+=("$name")
	ip -n "$node" link add "$host" type veth peer name eth0 netns "$name"
	ip netns exec "$node" sysctl -qw "net.ipv6.conf.$host.disable_ipv6=1"
	ip -n "$node" link set "$host" up
	inns "$name" sysctl -qw net.ipv6.conf.eth0.disable_ipv6=1
	ip -n "$name" link set eth0 address "$5"
	inns "$name" ethtool -K eth0 tx off >/dev/null
	ip -n "$name" addr add "$3" dev eth0
	ip -n "$name" link set eth0 up
	ip -n "$name" link set lo up
	ip -n "$name" route add default via "$4" dev eth0 onlink
	ctl port add --id "$name/eth0" --network "$2" --host-if "$host" --ip "${3%/*}" --mac "$5"
}

say "start xvrd in node namespace $node"
ip netns add "$node"
ip -n "$node" link set lo up
ip netns exec "$node" "$BIN/xvrd" -socket "$sock" -db "$work/xvrd.db" >"$work/xvrd.log" 2>&1 &
xvrd_pid=$!
for _ in $(seq 100); do ctl status >/dev/null 2>&1 && break; sleep 0.1; done
ctl status

say "xvrctl apply -f examples/vn-left-1.yaml examples/vn-right-1.yaml"
ctl apply -f examples/vn-left-1.yaml
ctl apply -f examples/vn-right-1.yaml
ctl network list

say "three pods: a, b on vn-left-1; c on vn-right-1"
pod a default/vn-left-1 198.18.10.1/24 198.18.10.254 02:00:00:00:0a:01
pod b default/vn-left-1 198.18.10.2/24 198.18.10.254 02:00:00:00:0a:02
pod c default/vn-right-1 198.18.20.1/24 198.18.20.254 02:00:00:00:14:01
ctl port list

say "pod a pings its gateway (proxy ARP + ICMP by the vRouter) and pod b (same VN)"
inns "xd${id}a" ping -c 2 -W 1 -i 0.2 198.18.10.254
inns "xd${id}a" ip neigh show dev eth0
inns "xd${id}a" ping -c 3 -W 1 -i 0.2 198.18.10.2

say "pod a cannot reach pod c (other VN): expect 100% loss"
if inns "xd${id}a" ping -c 3 -W 1 -i 0.2 198.18.20.1; then
	echo "demo: isolation failed: pod a reached pod c" >&2
	exit 1
fi

say "TTL 1 gets ICMP time exceeded from the gateway"
inns "xd${id}a" ping -c 1 -W 1 -t 1 198.18.10.2 || true

say "introspection: vif, rt, nh, dropstats"
ctl vif
ctl rt --vn default/vn-left-1
ctl nh
ctl dropstats
say "demo done"
