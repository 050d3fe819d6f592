// Package timetravel answers read models as they stood at a past position of the log (or
// a past moment, PositionAt): TimeTravel takes snapshots of each projection every so many
// events, and for a question copies the nearest snapshot at or below the position into a
// temporary set and applies the events after it with the batch builder of package
// projections, as a rebuild stopped there would. It owns the snapshots and temporary sets:
// files of their own beside a SQLite read-model database, tables listed in
// projection_snapshots on PostgreSQL, and the cache of the last sets asked for. The sets it
// hands out are frozen (projections.DB.AsFrozen): nothing writes to them once built.
package timetravel
