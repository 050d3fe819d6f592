package domain

import "reflect"

// newOfSameType returns a constructor of fresh zero values of prototype's concrete type.
// Reflection is used only here, to allocate; names always come from EventType.
func newOfSameType(prototype Event) func() Event {
	t := reflect.TypeOf(prototype)
	if t.Kind() != reflect.Pointer {
		panic("event prototypes must be pointers: " + prototype.EventType())
	}
	elem := t.Elem()
	return func() Event { return reflect.New(elem).Interface().(Event) }
}
