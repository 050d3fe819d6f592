package httpapi

import (
	"context"
	"reflect"
	"testing"

	"github.com/eventcrm/crm/commands"
)

// Every command of commands.Handler (a method taking a context, Meta and a command, giving a
// Result) has one route, and no route is listed twice.
func TestCommandRoutesListEveryCommandOnce(t *testing.T) {
	t.Parallel()
	want := map[reflect.Type]string{}
	h := reflect.TypeFor[*commands.Handler]()
	for i := range h.NumMethod() {
		m := h.Method(i).Type // the receiver is its first argument
		if m.NumIn() == 4 && m.In(1) == reflect.TypeFor[context.Context]() && m.In(2) == reflect.TypeFor[commands.Meta]() &&
			m.NumOut() == 2 && m.Out(0) == reflect.TypeFor[commands.Result]() {
			want[m.In(3)] = h.Method(i).Name
		}
	}
	if len(want) == 0 {
		t.Fatal("no command methods found on commands.Handler")
	}
	// The webhook subscriptions' commands are run by the webhook service behind /v1/webhooks
	// (MountWebhooks), which checks the URL and the event types first.
	for _, c := range []reflect.Type{reflect.TypeFor[commands.CreateWebhook](), reflect.TypeFor[commands.ChangeWebhook](),
		reflect.TypeFor[commands.SwitchWebhook](), reflect.TypeFor[commands.DeleteWebhook]()} {
		if _, ok := want[c]; !ok {
			t.Errorf("%v is not a command of commands.Handler", c)
		}
		delete(want, c)
	}
	routes := (&Server{}).commandRoutes()
	seen := map[string]bool{}
	for _, c := range routes {
		if key := c.method + " " + c.path; seen[key] {
			t.Errorf("%s listed twice", key)
		} else {
			seen[key] = true
		}
		if _, ok := want[c.command]; !ok {
			t.Errorf("%s %s runs %v, which is not a command of commands.Handler, or has a second route", c.method, c.path, c.command)
		}
		delete(want, c.command)
	}
	for typ, name := range want {
		t.Errorf("commands.Handler.%s (%v) has no route", name, typ)
	}
}
