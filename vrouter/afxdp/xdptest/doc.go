// Package xdptest is a fake of vrouter/afxdp's shared UMEM and its sockets,
// for tests that exercise a poller's logic without a kernel, root or a
// network namespace. Only tests (and benchmarks) may import it.
//
// A Umem is plain Go memory with a free list; Umem.Open returns a Socket
// whose four rings are in-process queues. The test plays the kernel's part:
// Socket.Inject takes a frame from the socket's fill ring, copies the bytes
// in Headroom (256) bytes into the chunk and queues an RX descriptor;
// Socket.Sent drains what the code under test transmitted and completes
// those frames. Knobs make Transmit short (SetTxCapacity, for a full TX ring)
// or fail (SetTransmitError), and Open fail (SetOpenError).
//
// # Ownership
//
// Every frame has one owner at a time, as in afxdp: the free list, the
// caller, or one socket (its fill, RX, TX or completion queue). Fill lends
// free frames to a socket, Receive gives frames to the caller, Transmit
// gives them back to the socket, Complete (after the test's Sent) and Free
// return them to the free list, and Socket.Close reclaims everything the
// socket held. The fake checks every hand-over against a per-frame owner
// tag. Unlike afxdp, which ignores a bad Free, the fake fails loudly: a
// double free, a free or transmit of a frame the caller does not own, a
// descriptor running past its chunk, or frames still owned by the caller
// when the Umem is closed, are recorded and returned by Umem.Err. A test
// should end by closing everything and checking that Err is nil and that
// FreeFrames equals Frames (nothing leaked).
//
// # Lifecycle traps
//
//   - Unlike afxdp, every method is safe for concurrent use (one mutex per
//     Umem), so a test goroutine may Inject and read Sent while a poller
//     runs on its own goroutine. Frame bytes are handed over under that
//     mutex too, so the race detector sees every hand-over.
//   - Each Socket owns an eventfd, returned by FD: it is readable exactly
//     while the socket's RX queue holds frames, like an AF_XDP socket, so a
//     poller's poll(2) sleep works unchanged. Close the sockets (or the
//     Umem) to release it.
//   - Mem returns nil after Umem.Close, as afxdp's memory is unmapped.
package xdptest
