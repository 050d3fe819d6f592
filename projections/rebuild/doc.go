// Package rebuild rebuilds projections blue/green: Rebuild builds a fresh table set of each
// projection from the log with the batch builder of package projections, beside the served
// one, switches the table-set registry to it in one transaction and drops the set it
// replaced; Rebuilds runs them in the background for a server and reports their progress,
// also of rebuilds run by another process (`crm rebuild`). It owns the rebuild lock and
// progress rows (projections.RebuildsTable) and the hand-over below; the registry, the
// checkpoints and the set locks it relies on belong to package projections, the live
// runner that follows the switch to package runtime.
//
// # The blue/green hand-over
//
// This is the one place it is described; the code of each step, here and in packages
// projections and runtime, points here. A rebuild never writes the served set and the live
// runner never writes a replaced one:
//
//	       projection_rebuilds          projection_sets           runner (any process)
//	       (lock, lease, phase)         (served set per version)  applies to the served set
//	───────────────────────────────────────────────────────────────────────────────────────
//	1 lock   owner+lease on the row     v1 -> g3 (served)         apply tx: lock g3,
//	                                                              read registry, write g3
//	2 build  phase=building, g4         v1 -> g3                  still g3; queries read g3
//	         Builder: log in batches,
//	         each with g4's checkpoint
//	3 switch ONE transaction: lock g3 and g4, apply the events since the last batch (at
//	         least up to g3's checkpoint), point projection_sets at g4, phase=switched
//	                                    v1 -> g4                  next apply tx: lock g3,
//	                                                              registry says g4 ->
//	                                                              adopt g4 (its checkpoint,
//	                                                              its parked events), retry
//	4 drop   wait for this process's readers of g3 (Runner.WaitReaders), then DropDelay for
//	         other processes' queries; drop g3, its checkpoint and parked rows; phase=done
//
// Why no event is lost or applied twice: the switch and every apply transaction take the
// old set's lock (projections.Dialect.LockSet) before they read the registry, so an apply
// transaction either committed before the switch (and the switch applies from g3's
// checkpoint on) or runs after it, finds g4 served and applies there from g4's checkpoint.
// A runner in the same process is moved at once (RebuildConfig.Runner); others notice at
// their next transaction or their registry poll (runtime.RunnerConfig.RegistryPoll). An
// interrupted rebuild resumes from g4's checkpoint; one interrupted after the switch drops
// g3 first.
package rebuild
