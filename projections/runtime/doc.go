// Package runtime runs projections live: the Runner feeds each projection the store's
// global feed through a Watermill router handler (a consumer group of its own, a poison
// queue, retries, a recoverer) and applies what it is delivered in batches (the delivered
// event with those committed after it, in one transaction, through the read model's batch
// path), catches up from the log in large batches at start and whenever it falls far behind
// (from far behind, as a rebuild builds, in place), parks the events a projection refuses and retries them on
// request, follows the sets rebuilds switch to, and says how fresh each read model is
// (Freshness, Status, WaitFor) for the queries that read through it.
//
// What it applies to, and how, belongs to package projections: the contract, the
// read-model database with its checkpoints and its poison-queue table, and the table-set
// registry. How a rebuild hands a projection over to a new set, and how the runner follows,
// is drawn once, in package rebuild's documentation.
package runtime
