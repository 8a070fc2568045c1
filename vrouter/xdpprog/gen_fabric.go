package xdpprog

//go:generate go run github.com/cilium/ebpf/cmd/bpf2go -target bpfel -cc clang -cflags "-O2 -g -Wall -Werror -I/usr/include/x86_64-linux-gnu" -type fabric_config -type fabric_lpm_key fabric bpf/fabric.c
