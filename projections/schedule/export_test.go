package schedule

import "github.com/eventcrm/crm/projections"

// DueQuery is the question of Due, of the tables of set t: its arguments are the fire time
// (microseconds), kind and subject it reads after, now (microseconds) and the limit.
func DueQuery(t projections.Tables) string { return dueQuery(t) }
