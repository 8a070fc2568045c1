#!/usr/bin/env bash
# Installs what xvr's build, tests and demo need on a fresh Debian machine.
# Idempotent: packages already present are not reinstalled. Needs root.
set -euo pipefail

need=()
have() { command -v "$1" >/dev/null 2>&1; }
have ip || need+=(iproute2)
have ping || need+=(iputils-ping)
have ethtool || need+=(ethtool)
have tcpdump || need+=(tcpdump)
have iperf3 || need+=(iperf3)
have nc || need+=(netcat-openbsd)
have sysctl || need+=(procps)
have bridge || need+=(iproute2)
have timeout || need+=(coreutils)
have gcc || need+=(gcc)
have ovs-vswitchd || need+=(openvswitch-switch) # xvr-bench ovs-afxdp; starts its own daemons, never the system one
[[ -x /usr/bin/etcd ]] || need+=(etcd-server)
# kube-proxy (kube/kubetest) execs these inside a node namespace: iptables
# mode iptables-restore/-save (Debian's iptables is the nft backend) and
# conntrack, nftables mode nft; every mode cleans up the others (ipset).
have iptables-restore || need+=(iptables)
have nft || need+=(nftables)
have conntrack || need+=(conntrack)
have ipset || need+=(ipset) # only to clean up after the ipvs mode, which kube-proxy always tries
# A real node (kube/kubetest's containerd and kubelet, issue 13): the tests
# start containerd with their own root, state and socket, never the
# system's; ldd (libc-bin) copies Debian's iptables and ip into images.
have containerd || need+=(containerd)
have runc || need+=(runc)
[[ -x /usr/lib/cni/bridge && -x /usr/lib/cni/host-local && -x /usr/lib/cni/loopback ]] || need+=(containernetworking-plugins)
have ldd || need+=(libc-bin)

if ((${#need[@]})); then
	if [[ $(id -u) -ne 0 ]]; then
		echo "install-deps: need root to apt-get install ${need[*]}" >&2
		exit 1
	fi
	echo "install-deps: installing ${need[*]}"
	export DEBIAN_FRONTEND=noninteractive
	# The tests start their own etcd, OVS and containerd daemons; keep the packages from
	# starting system ones (policy-rc.d exit 101: "action forbidden"),
	# unless the machine already has a policy of its own.
	if [[ ! -e /usr/sbin/policy-rc.d ]]; then
		printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
		chmod 0755 /usr/sbin/policy-rc.d
		trap 'rm -f /usr/sbin/policy-rc.d' EXIT
	fi
	apt-get update -qq
	apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
go mod download
