package projectiontest

import (
	"reflect"
	"time"
)

// pageByFields is the question params about the figure at path, limit parts a page, at the page
// cursor: its fields Explain (a string), Limit (an int) and Cursor (a string) set.
func pageByFields[P any](params P, path string, limit int, cursor string) P {
	return withFields(params, field{"Explain", path}, field{"Limit", limit}, field{"Cursor", cursor})
}

// asOfByField is the question params as of a time: its field AsOf (a time.Time) set.
func asOfByField[P any](params P, asOf time.Time) P { return withFields(params, field{"AsOf", asOf}) }

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
