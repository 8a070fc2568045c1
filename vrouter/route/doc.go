// Package route holds the forwarder's IPv4 longest-prefix-match route tables,
// one Table per virtual network (VRF), gathered in a Tables set indexed by VRF id.
//
// Readers (the pollers) never lock: a Table publishes immutable versions
// (*View) through one atomic.Pointer, and every write builds a new version,
// by path copying (github.com/gaissmai/bart persistent operations) or, for
// big batches, by editing a private deep copy, and publishes it with one
// Store (see docs/decisions/0002-route-tables.md). Writers serialize on a
// mutex inside each Table, so different VNs can be written in parallel, and
// never block readers. A single-route write at 1M routes costs ~20-40 µs and
// ~11 KB of garbage: batch updates with Apply.
//
// Importers: the forwarder's pipeline (lookups) and the agent (writes). This
// package imports nothing of xvr's.
//
// Ownership and lifecycle:
//   - A *View is immutable and stays valid forever; it is only stale. A poller
//     loads one per batch (Table.Snapshot) and must drop it at the end of the
//     batch, or it keeps a whole old table alive and keeps routing by it.
//   - A *Table stays usable after Tables.Remove, but it is detached: writes to
//     it are no longer visible through Tables.Get, and a later Ensure of the same
//     VRF creates a fresh, empty Table. Pollers therefore call Tables.Get at
//     least once per batch and keep neither a *Table nor a *View across batches.
//   - A nil *Table (what Get returns for an unknown VRF) is a valid empty table
//     for readers; writing to it returns ErrNoTable.
//   - Apply publishes a whole batch at once: readers see all of it or none.
//     Lookups through Table.Lookup may see a newer version on each call; take a
//     Snapshot for several lookups that must agree.
package route
