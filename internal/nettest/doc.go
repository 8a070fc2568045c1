// Package nettest holds the helpers that xvr's root integration tests use to
// build throw-away network topologies: named network namespaces ("nodes" and
// "pods"), veth pairs, background processes inside a namespace, and small
// helper programs (TCP sink/source, raw frame sender) that run inside a
// namespace as a child copy of the test binary.
//
// Only _test.go files and benchmark harnesses of this module may import it.
// Everything it creates gets a unique name (prefix, pid, counter; at most 15
// bytes) and is removed by that exact name in t.Cleanup; processes it starts
// are killed by their own process group only.
//
// Lifecycle traps:
//   - Functions that take a testing.TB call t.Fatal and must run on the test's
//     goroutine.
//   - The helper programs re-execute the test binary. A package that uses
//     NS.TCPTransfer or NS.RawSend must call MaybeRunHelper first thing in its
//     TestMain, or the child runs no helper and the call fails.
//   - Nothing here switches the namespace of the calling thread: commands run
//     through `ip netns exec`, so the test process itself stays where it is.
package nettest
