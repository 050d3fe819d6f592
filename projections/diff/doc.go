// Package diff answers "what would a switch to this code change?" for a projection: Run
// builds the candidate code from the log into a temporary table set beside the served one,
// up to the served set's checkpoint, and compares the two table by table and row by row
// (rows matched by primary key), reading the served set from one snapshot so that the live
// runner goes on meanwhile. CompareSets compares two sets as they are now, and Digest sums
// a set up order-independently (live equals rebuilt, time travel equals rebuild).
//
// It owns nothing persistent: the temporary set is dropped afterwards. Building uses the
// read-model store's batch builder (projections.Builder), as rebuilds and time travel do.
package diff
