// Package projections is the read-model store: what a projection is (Projection, its
// Tables, the Tx it applies in, its batch path), the read-model databases (DB, OpenSQLite,
// OpenPostgres) and their SQL dialects (one file each behind Dialect), the checkpoints, the
// poison queue's table, the table-set registry, and the two ways a set is written: one
// transaction of events with the checkpoint (DB.Apply, the live path) and the batch builder
// (Builder, DB.ApplyBatch) that rebuilds, diffs and time travel share.
//
// Exactly-once effect: the read-model change of an event and the set's checkpoint are
// written in one transaction, so a redelivered event (position <= checkpoint) is a no-op.
//
// The runtime (live projection through Watermill, catch-up, parked events, freshness) is
// in projections/runtime, rebuilds in projections/rebuild; time travel (TimeTravel) is here
// for now; diffs are in projections/diff.
//
// How a rebuild hands a projection over to its new set, and why the registry, the set locks
// and the checkpoints make that safe, is drawn once, in package rebuild's documentation.
package projections
