// Package esdb is the EventStoreDB / KurrentDB backend of package eventstore, on the gRPC client
// github.com/EventStore/EventStore-Client-Go/v4/esdb.
//
//	store, err := esdb.Open(ctx, "esdb://localhost:2113?tls=false")
//
// # Mappings
//
// Streams are EventStoreDB streams. Versions count from 1, revisions from 0: version N is
// revision N-1. Expected versions map to expected revisions in expectedRevision (AnyVersion is
// esdb.Any, NoStream is esdb.NoStream, N >= 1 is esdb.Revision(N-1)); revisionToVersion maps
// back.
//
// An event keeps its ID as the EventStoreDB event id (a canonical UUID is used as is; another
// string gets a name-based UUID and is kept in the metadata), its Type as the event type and
// its Data as JSON data (binary when it is not JSON). The user metadata is a JSON object with
// the fields of eventstore.Metadata plus occurred_at, recorded_at, version, prev_hash and hash
// (hex): toEventData and fromRecorded convert both ways. RecordedAt is stamped by the client
// because the hash chain covers it; the server's created date is not used.
//
// The global log is $all without system events (event type or stream starting with "$") and
// without the event id index. A global position is the event's commit position in the
// transaction log (positionOf): increasing in commit order but not dense, since it is a byte
// offset. Events appended through gRPC have commit == prepare position, one per event, so
// the position of an event is an exact $all position, and a reader resumes after the last
// position it saw. EventStoreDB only reads $all from the position of a record, so for another
// "after" (such as position-1) the first read also tries after+1 and then looks for the last
// record at or before after, reading backwards from the end (allPositionsAfter, cursor).
// Stream reads report positions only on servers 22.6 and later (0 before); AppendResult has
// the position the server reports for the last appended event.
//
// # Hash chain and concurrency
//
// Append reads the stream's last event for its hash and version, checks the expected
// version, chains the new events (eventstore.ChainHash) and appends them at exactly that
// revision, even with AnyVersion: a concurrent writer makes the append fail with a
// *eventstore.VersionConflictError, and an AnyVersion append starts again (WithAppendRetries),
// so the chain never forks.
//
// # Idempotence
//
// EventStoreDB deduplicates event ids only on a best-effort basis, so the store keeps its own
// index: one stream "crm-eventid-<uuid>" per event id, whose last event claims a slot (stream,
// version). Append claims every id (expected revision on the claim stream, so one writer wins)
// before it appends the events. An id is stored when its slot holds it; an exact retry gets
// the original result, any other reuse ErrDuplicateEventID. EventByID follows the same index.
//
// The trade-offs: each appended event costs one more write and a record in $all (filtered out
// by this package, not by the server); claims cannot be written atomically with the events, so
// an append that fails or crashes leaves claims behind. A claim whose slot holds another event
// is dead and is taken over; a claim whose slot is still empty may belong to an append in
// flight, so only the same append (same stream and version) may proceed; anyone else gets
// ErrDuplicateEventID until that slot is filled. Streams named "$..." or "crm-eventid-..."
// are refused by Append.
//
// # Subscriptions and checkpoints
//
// Subscribe is a catch-up subscription to $all with the server-side system event filter; it
// subscribes again after the last record it received when it drops for a transient reason.
// Reading $all needs a user allowed to (an admin on a secure cluster). Checkpoints are not
// stored in EventStoreDB: with this backend, read models and their checkpoints live in
// PostgreSQL.
//
// # The client
//
// Every call runs through Store.do (conn.go), which works around three behaviours of
// EventStore-Client-Go v4: a client whose node discovery fails closes itself for good (the
// store starts a new one), finding a connection ignores the context (the caller stops waiting
// at its context's end), and closing a client under a waiting call panics (Close waits for the
// calls in flight).
//
// # Tests
//
// The unit tests need no server. TestConformanceFake runs the conformance suite
// (storetest.TestStore) through the real client against an in-process fake of the streams
// service (fakeserver_test.go), which checks this package's logic but not the server's
// behaviour. TestConformance runs the suite against a real server named by CRM_TEST_ESDB_URL:
//
//	docker compose up -d eventstore
//	CRM_TEST_ESDB_URL=esdb://localhost:2113?tls=false make test
package esdb
