// Package afxdp is xvr's AF_XDP port layer: a UMEM shared by several XDP
// sockets (one per device and queue), so that forwarding moves a descriptor
// from one socket's RX ring to another socket's TX ring without copying the
// frame.
//
// It is built directly on golang.org/x/sys/unix and imported by the
// dataplane (the pollers) and its tests; nothing else should need it. It
// does not load or attach XDP programs: the caller puts Socket.FD into the
// XSKMAP of its own program.
//
// # Ownership
//
// Every UMEM frame has exactly one owner at a time: the Umem free list, the
// caller, or the kernel through one Socket's rings. Alloc and Receive give a
// frame to the caller; Transmit and Free take it back (to the kernel or the
// free list). Complete returns transmitted frames to the free list and Fill
// lends free frames to the kernel for receiving. The Umem keeps a per-frame
// owner tag, so Socket.Close returns every frame that socket had lent to the
// kernel and nothing leaks when a port goes away.
//
// # Lifecycle traps
//
//   - A Umem and all its sockets belong to ONE goroutine (the poller). No
//     method is safe for concurrent use; the package takes no locks.
//   - Sockets that share a Umem inherit the copy/zero-copy and need_wakeup
//     mode of the first one (kernel rule for XDP_SHARED_UMEM); Open refuses
//     later options that differ.
//   - A socket stays open, but unbound, when the kernel deletes its device
//     (a pod veth removed under the poller): the kernel then refuses it as
//     the owner of a shared bind (EBADF). Open shares through any socket
//     still bound and, when none is, registers the memory again on the new
//     socket; the unbound one only gives its frames back on Close.
//   - One socket per (ifindex, queue) per Umem. Each socket has its own fill
//     and completion rings (kernel >= 5.10), so Fill and Complete must be
//     called per socket.
//   - Sockets are bound to the network namespace of the thread that calls
//     Open: lock the OS thread and enter the namespace first.
//   - Received frames start XDP_PACKET_HEADROOM (256) + UmemConfig.Headroom
//     bytes into their chunk; that headroom is free for prepending headers
//     in place (move Desc.Addr back, grow Desc.Len).
//   - Close every Socket (or the Umem, which closes them) before dropping
//     the Umem; the memory is unmapped by Umem.Close.
package afxdp
