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
// What uses the store is in packages of its own: projections/runtime runs projections live
// (catch-up, parked events, freshness), projections/rebuild rebuilds them blue/green,
// projections/timetravel answers them at past positions, projections/diff compares a
// candidate with the served set.
//
// How a rebuild hands a projection over to its new set, and why the registry, the set locks
// and the checkpoints make that safe, is drawn once, in package rebuild's documentation.
package projections
