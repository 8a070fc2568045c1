#!/usr/bin/env bash
# The product story on one machine (Contrail's multi-interface pod, no Multus):
#   - xvrd runs in a "node" network namespace;
#   - vn-left-1, vn-right-1 and vn-blue are created from NAD YAML in examples/;
#   - a pod that asks for vn-left-1 and vn-right-1 is attached by the real CNI
#     plugin (driven by cnitool, as a runtime would) and gets eth0 on the
#     cluster default network plus eth1 and eth2;
#   - its `ip addr` matches its network-status; the VNs show their Contrail
#     names; it reaches a pod on each VN and not a pod on vn-blue.
# Everything it creates is named xd<pid>… and deleted by exact name on exit.
# Needs root; `make demo` builds what it needs and installs the packages.
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
	for p in "${pods[@]}"; do cni del "$p" >/dev/null 2>&1; ip netns del "$p" 2>/dev/null; done
	[[ -n $xvrd_pid ]] && kill "$xvrd_pid" 2>/dev/null && wait "$xvrd_pid" 2>/dev/null
	ip netns del "$node" 2>/dev/null
	rm -rf "$work"
}
trap cleanup EXIT

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
ctl() { "$BIN/xvrctl" --socket "$sock" "$@"; }
inns() { ip netns exec "$1" "${@:2}"; }

# The node's CNI configuration and plugin directory, as a runtime has them.
mkdir -p "$work/net.d" "$work/cni-bin"
cp "$BIN/xvr-cni" "$work/cni-bin/xvr"
cat >"$work/net.d/10-xvr.conflist" <<CONF
{"cniVersion":"1.1.0","name":"xvr","plugins":[{"type":"xvr","socket":"$sock","hostNetns":"/var/run/netns/$node"}]}
CONF

# cni ADD|DEL POD: run the plugin through cnitool with kubelet's CNI_ARGS.
cni() {
	local op=$1 pod=$2 name=${3:-$2}
	NETCONFPATH="$work/net.d" CNI_PATH="$work/cni-bin" \
		CNI_ARGS="K8S_POD_NAMESPACE=default;K8S_POD_NAME=$name;K8S_POD_UID=uid-$name;K8S_POD_INFRA_CONTAINER_ID=$pod" \
		"$BIN/cnitool" "$op" xvr "/var/run/netns/$pod"
}

# pod NAME NETWORKS: a pod namespace with the networks annotation, attached by the CNI.
pod() {
	local name="xd${id}$1"
	ip netns add "$name"; pods+=("$name")
	ip -n "$name" link set lo up
	printf 'apiVersion: v1\nkind: Pod\nmetadata:\n  name: %s\n  namespace: default\n  annotations:\n    k8s.v1.cni.cncf.io/networks: %s\n' \
		"$name" "'$2'" | ctl pod apply -f - >/dev/null
	cni add "$name" >"$work/$1.result"
}

say "start xvrd in node namespace $node (cluster default network 198.19.0.0/16)"
ip netns add "$node"
ip -n "$node" link set lo up
ip netns exec "$node" "$BIN/xvrd" -socket "$sock" -db "$work/xvrd.db" >"$work/xvrd.log" 2>&1 &
xvrd_pid=$!
for _ in $(seq 100); do ctl status >/dev/null 2>&1 && break; sleep 0.1; done
ctl status

say "virtual networks from NetworkAttachmentDefinition YAML"
for f in examples/vn-left-1.yaml examples/vn-right-1.yaml examples/vn-blue.yaml; do
	grep -E '^  (name|namespace):|opencontrail' "$f" | sed 's/^/    /'
	ctl apply -f "$f"
done
say "xvrctl network list: the Contrail names (k8s-<nad>-pod-network in project k8s-<namespace>)"
ctl network list

say "a pod asking for two networks: k8s.v1.cni.cncf.io/networks: [{\"name\":\"vn-left-1\"},{\"name\":\"vn-right-1\"}]"
pod multi '[{"name":"vn-left-1"},{"name":"vn-right-1"}]'
say "CNI ADD result (one result, every interface, ips[].interface indexes)"
cat "$work/multi.result"
say "inside the pod: ip addr"
inns "xd${id}multi" ip -br addr
inns "xd${id}multi" ip -br link
say "its network-status (kept by xvrd; the Kubernetes controller writes it to the pod)"
ctl pod status "default/xd${id}multi"
ctl pod status "default/xd${id}multi" -o json
say "check: every interface inside the pod has the IP and MAC its network-status lists"
ctl pod status "default/xd${id}multi" | tail -n +2 | while read -r ifname network ip mac _; do
	have_ip=$(inns "xd${id}multi" ip -4 -o addr show dev "$ifname" | awk '{print $4}' | cut -d/ -f1)
	have_mac=$(inns "xd${id}multi" ip -o link show dev "$ifname" | grep -o 'link/ether [0-9a-f:]*' | cut -d' ' -f2)
	if [[ $have_ip != "$ip" || $have_mac != "$mac" ]]; then
		echo "demo: $ifname has $have_ip/$have_mac, network-status says $ip/$mac" >&2
		exit 1
	fi
	echo "  $ifname  $network  $ip  $mac  ok"
done

say "peers: one pod on vn-left-1, one on vn-right-1, one on vn-blue (namespace blue)"
pod left 'vn-left-1'
pod right 'vn-right-1'
pod blue 'blue/vn-blue'
ctl port list

# ip_of POD IFNAME: the pod's address on an interface, from its network-status.
ip_of() { ctl pod status "default/xd${id}$1" | awk -v i="$2" '$1 == i { print $3 }'; }
left_ip=$(ip_of left eth1); right_ip=$(ip_of right eth1); blue_ip=$(ip_of blue eth1)

say "multi -> left pod on vn-left-1 ($left_ip) over eth1"
inns "xd${id}multi" ping -c 3 -W 1 -i 0.2 "$left_ip"
say "multi -> right pod on vn-right-1 ($right_ip) over eth2"
inns "xd${id}multi" ping -c 3 -W 1 -i 0.2 "$right_ip"
say "multi -> blue pod on vn-blue ($blue_ip): a network it is not on, expect 100% loss"
if inns "xd${id}multi" ping -c 3 -W 1 -i 0.2 "$blue_ip"; then
	echo "demo: isolation failed: the pod reached vn-blue" >&2
	exit 1
fi

say "what the forwarder holds: vif, rt, dropstats"
ctl vif
ctl rt --vn default/vn-left-1
ctl dropstats

say "CNI DEL of every pod: ports gone, addresses free again"
for p in "${pods[@]}"; do cni del "$p"; done
ctl port list
say "demo done"
