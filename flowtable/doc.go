// Package flowtable is xvr's flow table: per-flow forwarding decisions (forward
// to a cached next hop, drop, source NAT) keyed by VRF and IPv4 5-tuple, with
// per-entry packet and byte counters, idle aging, and the fabric SNAT port
// pools.
//
// A flow is two entries, forward and reverse, linked to each other; each has
// its own key and action (under NAT the reverse key is not the swapped forward
// key). Pollers both read and write the table: Lookup, Insert (flow setup in
// the data path, not in an agent), Account and Close never allocate and never
// take a lock that a reader waits for. The table is one fixed array of 64-byte
// slots (one cache line per entry) with open addressing: readers check a slot
// with a per-slot sequence word (a seqlock); inserters claim free slots with
// CAS and serialize only per home slot, so several pollers insert at once
// without a global lock. See docs/decisions/0003-flow-table.md.
//
// Importers: the dataplane pipeline (lookups, flow setup, accounting), the
// agent (a sweeper goroutine calling Age, introspection through Flows and
// Stats). This package imports nothing of xvr's.
//
// Ownership and lifecycle traps:
//   - A Ref names one entry for one lifetime: once the flow is aged out or
//     deleted its slot is reused, and the old Ref is stale. Account, Get,
//     Close and Delete detect that (they compare the slot's generation) and
//     return false; callers then look the key up again. A Ref is only a
//     cache: never keep one across batches without being ready for that.
//   - Insert's ErrExists means another poller won the race (or a lookup
//     missed an entry being published): use the returned Ref of the winner.
//   - An SNAT port belongs to the caller until Insert succeeds with it in the
//     forward action; then the table owns it and frees it to its pool (given
//     in Config.SNAT) when the flow is removed. On any Insert error the caller
//     frees it.
//   - Time is a caller-chosen uint32 tick (e.g. seconds since start) passed
//     per batch, never read per packet. Ticks compared by the sweeper must be
//     less than 2^31 apart; pass monotonic ticks.
//   - Packet and byte counters are individually atomic; a stale Ref that raced
//     with a reuse may count one packet to the new flow (documented, harmless).
package flowtable
