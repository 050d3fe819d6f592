package httpapi

import (
	"context"
	"net/http"
	"reflect"
	"strings"
	"time"

	"github.com/gorilla/mux"

	"github.com/eventcrm/crm/cmd/crm/internal/auth"
	"github.com/eventcrm/crm/cmd/crm/internal/metrics"
	"github.com/eventcrm/crm/commands"
)

// commandRoutes lists every command endpoint once: a new command is one line here.
func (s *Server) commandRoutes() []commandRoute {
	h, post := s.cmds, http.MethodPost
	return []commandRoute{
		commandOf(post, "/contacts", h.CreateContact, nil, created("/v1/contacts/")),
		commandOf(http.MethodPatch, "/contacts/{id}", h.UpdateContact, func(c *commands.UpdateContact, v vars) { c.ContactID = v["id"] }),
		commandOf(post, "/contacts/{id}/phase", h.ChangePhase, func(c *commands.ChangePhase, v vars) { c.ContactID = v["id"] }),
		commandOf(post, "/contacts/{id}/touchpoints", h.RecordTouchpoint, func(c *commands.RecordTouchpoint, v vars) { c.ContactID = v["id"] },
			entity("touchpoint_id")),
		commandOf(post, "/contacts/{id}/purchases", h.RecordPurchase, func(c *commands.RecordPurchase, v vars) { c.ContactID = v["id"] },
			entity("purchase_id")),
		commandOf(post, "/contacts/{id}/surveys", h.RecordSurvey, func(c *commands.RecordSurvey, v vars) { c.ContactID = v["id"] },
			entity("survey_id")),
		commandOf(post, "/contacts/{id}/usage", h.ReportUsage, func(c *commands.ReportUsage, v vars) { c.ContactID = v["id"] }),
		commandOf(post, "/contacts/{id}/tasks", h.ScheduleTask, func(c *commands.ScheduleTask, v vars) { c.ContactID = v["id"] },
			entity("task_id")),
		commandOf(post, "/contacts/{id}/tasks/{taskId}/complete", h.CompleteTask,
			func(c *commands.CompleteTask, v vars) { c.ContactID, c.TaskID = v["id"], v["taskId"] }, pathOnly()),
		commandOf(post, "/contacts/{id}/tasks/{taskId}/reschedule", h.RescheduleTask,
			func(c *commands.RescheduleTask, v vars) { c.ContactID, c.TaskID = v["id"], v["taskId"] }),
		commandOf(post, "/contacts/{id}/tasks/{taskId}/reassign", h.ReassignTask,
			func(c *commands.ReassignTask, v vars) { c.ContactID, c.TaskID = v["id"], v["taskId"] }),
		commandOf(post, "/contacts/{id}/tasks/{taskId}/cancel", h.CancelTask,
			func(c *commands.CancelTask, v vars) { c.ContactID, c.TaskID = v["id"], v["taskId"] }),
		commandOf(post, "/contacts/{id}/opt-out", h.OptOut, func(c *commands.OptOut, v vars) { c.ContactID = v["id"] }),
		commandOf(post, "/contacts/{id}/notes", h.AddNote, func(c *commands.AddNote, v vars) { c.ContactID = v["id"] }, entity("note_id")),
		commandOf(post, "/contacts/{id}/merge", h.MergeContact, func(c *commands.MergeContact, v vars) { c.ContactID = v["id"] }),
		commandOf(http.MethodPut, "/contacts/{id}/account", h.LinkContactToAccount,
			func(c *commands.LinkContactToAccount, v vars) { c.ContactID = v["id"] }),
		commandOf(http.MethodDelete, "/contacts/{id}/account/{accountId}", h.UnlinkContactFromAccount,
			func(c *commands.UnlinkContactFromAccount, v vars) { c.ContactID, c.AccountID = v["id"], v["accountId"] }, pathOnly()),
		commandOf(post, "/accounts", h.CreateAccount, nil, created("/v1/accounts/")),
		commandOf(http.MethodPatch, "/accounts/{id}", h.UpdateAccount, func(c *commands.UpdateAccount, v vars) { c.AccountID = v["id"] }),
		commandOf(post, "/deals", h.OpenDeal, nil, created("/v1/deals/")),
		commandOf(http.MethodPatch, "/deals/{id}", h.UpdateDeal, func(c *commands.UpdateDeal, v vars) { c.DealID = v["id"] }),
		commandOf(post, "/deals/{id}/stage", h.ChangeDealStage, func(c *commands.ChangeDealStage, v vars) { c.DealID = v["id"] }),
		commandOf(post, "/deals/{id}/win", h.WinDeal, func(c *commands.WinDeal, v vars) { c.DealID = v["id"] }),
		commandOf(post, "/deals/{id}/lose", h.LoseDeal, func(c *commands.LoseDeal, v vars) { c.DealID = v["id"] }),
		commandOf(post, "/deals/{id}/reopen", h.ReopenDeal, func(c *commands.ReopenDeal, v vars) { c.DealID = v["id"] }, pathOnly()),
		commandOf(post, "/contacts/{id}/erase", h.EraseContact, func(c *commands.EraseContact, v vars) { c.ContactID = v["id"] },
			needs(auth.PermErase), after(s.erased)),
		commandOf(http.MethodPut, "/settings/lead_scoring", h.ChangeLeadScoring, nil, adminOnly()),
		commandOf(http.MethodPut, "/settings/stage_probabilities", h.ChangeStageProbabilities, nil, adminOnly()),
		commandOf(http.MethodPut, "/settings/lost_reasons", h.ChangeLostReasons, nil, adminOnly()),
		commandOf(http.MethodPut, "/settings/processes", h.ChangeProcessSettings, nil, adminOnly()),
	}
}

// mountCommands adds the command routes under /v1, for principals that may write.
func (s *Server) mountCommands(v1 prefixed) {
	for _, c := range s.commandRoutes() {
		perm := c.perm
		if perm == "" {
			perm = auth.PermWrite
		}
		v1.Handle(c.path, s.authorize(perm, s.command(c))).Methods(c.method)
		s.describe(c.method, v1.prefix+c.path, RouteDoc{Perm: perm, command: &c})
	}
}

// commandRoute is one command endpoint: where it is, how a request becomes its command and
// runs, and how its result is presented.
type commandRoute struct {
	method, path string
	run          func(r *http.Request, m commands.Meta) (commands.Result, error)
	created      string          // path prefix of a created resource: 201 with Location created+id
	entityKey    string          // JSON name of Result.EntityID, for a command that creates an entity
	pathOnly     bool            // the body holds nothing but occurred_at: the path names everything
	perm         auth.Permission // what the caller needs; "" is auth.PermWrite
	command      reflect.Type
	after        func(r *http.Request, res commands.Result) // runs after the command succeeded
}

// vars are a request's path variables.
type vars = map[string]string

// routeOption sets how a command route reads its request or presents its answer.
type routeOption func(*commandRoute)

// created answers 201 with the Location prefix+id of the created resource.
func created(prefix string) routeOption { return func(c *commandRoute) { c.created = prefix } }

// entity adds the id of the entity the command created (Result.EntityID) under key.
func entity(key string) routeOption { return func(c *commandRoute) { c.entityKey = key } }

// pathOnly refuses every body field but occurred_at, also a field of the command that its
// path sets (such as a task id).
func pathOnly() routeOption { return func(c *commandRoute) { c.pathOnly = true } }

// needs makes the route need perm rather than auth.PermWrite.
func needs(perm auth.Permission) routeOption { return func(c *commandRoute) { c.perm = perm } }

// after runs f once the command succeeded, before the answer.
func after(f func(r *http.Request, res commands.Result)) routeOption {
	return func(c *commandRoute) { c.after = f }
}

// adminOnly lets only admins run the command (settings).
func adminOnly() routeOption { return func(c *commandRoute) { c.perm = auth.PermAdmin } }

// commandOf is the route method path running run: the body decoded into its command C,
// whose path variables setPath (nil when there are none) then sets.
func commandOf[C any](method, path string, run func(context.Context, commands.Meta, C) (commands.Result, error),
	setPath func(*C, vars), opts ...routeOption) commandRoute {
	c := commandRoute{method: method, path: path, command: reflect.TypeFor[C]()}
	for _, o := range opts {
		o(&c)
	}
	pathOnly := c.pathOnly
	c.run = func(r *http.Request, m commands.Meta) (commands.Result, error) {
		var cmd C
		var body any = &cmd
		if pathOnly {
			body = &struct{}{}
		}
		at, err := decodeBody(r, body)
		if err != nil {
			return commands.Result{}, err
		}
		m.OccurredAt = at
		if setPath != nil {
			setPath(&cmd, mux.Vars(r))
		}
		return run(r.Context(), m, cmd)
	}
	return c
}

// command serves a command route: metadata from the principal and headers, the result as
// {"id","version","position"} with the new version as ETag.
func (s *Server) command(c commandRoute) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.Body = http.MaxBytesReader(w, r.Body, s.maxBody)
		start := time.Now()
		m, err := commandMeta(r)
		var res commands.Result
		if err == nil {
			res, err = c.run(r, m)
		}
		s.metrics.Command(c.command.Name(), commandOutcome(err), time.Since(start))
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		if c.after != nil {
			c.after(r, res)
		}
		writeResult(w, c, res)
	})
}

// commandOutcome is how a command ended, for the metrics: ok, or the type of its problem
// (validation, conflict, precondition-failed, internal, ...).
func commandOutcome(err error) string {
	if err == nil {
		return metrics.OutcomeOK
	}
	p, _ := problemFor(err)
	return strings.TrimPrefix(p.Type, ProblemBase)
}

// commandMeta reads a command's metadata from the principal and the headers.
func commandMeta(r *http.Request) (commands.Meta, error) {
	expected, err := ifMatch(r)
	if err != nil {
		return commands.Meta{}, err
	}
	if err := checkMetadataHeaders(r.Header); err != nil {
		return commands.Meta{}, err
	}
	key := r.Header.Get("Idempotency-Key")
	if len(key) > 255 {
		return commands.Meta{}, badRequest("Idempotency-Key is longer than 255 characters")
	}
	return commands.Meta{
		Actor:           principal(r.Context()).Name,
		CorrelationID:   r.Header.Get("X-Correlation-ID"),
		CausationID:     r.Header.Get("X-Causation-ID"),
		Reason:          r.Header.Get("X-Reason"),
		IdempotencyKey:  key,
		ExpectedVersion: expected,
	}, nil
}

// writeResult answers a command that succeeded as its route says.
func writeResult(w http.ResponseWriter, c commandRoute, res commands.Result) {
	body := map[string]any{"id": res.ID, "version": res.Version, "position": res.Position}
	if c.entityKey != "" {
		body[c.entityKey] = res.EntityID
	}
	w.Header().Set("ETag", etag(res.Version))
	if res.Replayed {
		w.Header().Set("Idempotent-Replayed", "true")
	}
	status := http.StatusOK
	if c.created != "" {
		status = http.StatusCreated
		w.Header().Set("Location", c.created+res.ID)
	}
	writeJSON(w, status, body)
}
