package schedule

import "github.com/eventcrm/crm/projections"

// DueQuery is the question of Due, of the tables of set t: its arguments are since and now
// (microseconds) and the limit.
func DueQuery(t projections.Tables) string { return dueQuery(t) }
