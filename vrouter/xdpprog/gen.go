package xdpprog

//go:generate go run github.com/cilium/ebpf/cmd/bpf2go -target bpfel -cc clang -cflags "-O2 -g -Wall -Werror -I/usr/include/x86_64-linux-gnu" -type short_port -type short_key -type short_dst -type short_count -type short_label_key -type short_label pod bpf/pod.c
