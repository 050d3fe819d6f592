package projectiontest

import (
	"reflect"
	"time"
)

// PageByFields is the Page of an Explained whose questions name the figure, the page size and
// the page in their fields Explain (a string), Limit (an int) and Cursor (a string), as the read
// models' Params do.
func PageByFields[P any](params P, path string, limit int, cursor string) P {
	return withFields(params, field{"Explain", path}, field{"Limit", limit}, field{"Cursor", cursor})
}

// AsOfByField is the AsOf of an Explained or a Kept whose questions name the time they are
// about in their field AsOf (a time.Time), as the read models' Params do.
func AsOfByField[P any](params P, asOf time.Time) P { return withFields(params, field{"AsOf", asOf}) }

// pageOf is the question base as of a time, limit items a page, at the page cursor: its fields
// AsOf (a time.Time), Limit (an int) and Cursor (a string) set.
func pageOf[P any](base P) func(asOf time.Time, limit int, cursor string) P {
	return func(asOf time.Time, limit int, cursor string) P {
		return withFields(base, field{"AsOf", asOf}, field{"Limit", limit}, field{"Cursor", cursor})
	}
}

// field is a value for the field of a question of that name.
type field struct {
	name  string
	value any
}

// withFields is params with fields set; it panics on a field params does not have or a value
// of another type (a mistake of the test).
func withFields[P any](params P, fields ...field) P {
	v := reflect.ValueOf(&params).Elem()
	for _, f := range fields {
		v.FieldByName(f.name).Set(reflect.ValueOf(f.value))
	}
	return params
}
