package projections

import (
	"errors"

	"github.com/eventcrm/crm/eventstore"
)

// SourceProblems reports what a configuration that folds the log store into the read-model
// database db lacks: the database (or its dialect) and the log; nil when it lacks nothing.
func SourceProblems(db *DB, store eventstore.Store) []error {
	var errs []error
	if db == nil || db.SQL == nil {
		errs = append(errs, errors.New("no read-model database"))
	} else if db.Dialect == nil {
		errs = append(errs, errors.New("no dialect"))
	}
	if store == nil {
		errs = append(errs, errors.New("no event store"))
	}
	return errs
}
