package httpapi

import (
	"errors"
	"net/http"

	"github.com/gorilla/mux"

	"github.com/eventcrm/crm/cmd/crm/internal/auth"
	"github.com/eventcrm/crm/cmd/crm/internal/webhooks"
)

// MountWebhooks adds the admin endpoints of the webhook subscriptions:
//
// Each change is recorded as an event of the subscription's stream, with the caller as actor
// and X-Reason as reason; If-Match and Idempotency-Key apply as to any command.
//
//	POST   /v1/webhooks                                          subscribe (the secret is in this answer only)
//	GET    /v1/webhooks, /v1/webhooks/{id}
//	PATCH  /v1/webhooks/{id}                                     url, event_types, description, enabled
//	DELETE /v1/webhooks/{id}
//	GET    /v1/webhooks/{id}/deliveries?limit=
//	POST   /v1/webhooks/{id}/deliveries/{deliveryId}/redeliver
func (s *Server) MountWebhooks(svc *webhooks.Service) {
	v1 := prefixed{s.router, "/v1"}
	admin := func(h func(w http.ResponseWriter, r *http.Request) error) http.Handler {
		return s.authorize(auth.PermAdmin, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			r.Body = http.MaxBytesReader(w, r.Body, s.maxBody)
			if err := h(w, r); err != nil {
				s.writeError(w, r, webhookError(err))
			}
		}))
	}
	v1.Handle("/webhooks", admin(func(w http.ResponseWriter, r *http.Request) error {
		var req webhooks.CreateRequest
		if err := decodeWebhookBody(r, &req); err != nil {
			return err
		}
		m, err := commandMeta(r)
		if err != nil {
			return err
		}
		sub, err := svc.Create(r.Context(), m, req)
		if err != nil {
			return err
		}
		w.Header().Set("Location", "/v1/webhooks/"+sub.ID)
		writeJSON(w, http.StatusCreated, sub)
		return nil
	})).Methods(http.MethodPost)
	s.describe(http.MethodPost, "/v1/webhooks", RouteDoc{Tag: "webhooks", Perm: auth.PermAdmin, Summary: "Subscribe a URL to events (the secret is in this answer only)", Body: webhooks.CreateRequest{}, Answer: webhooks.Subscription{}, Status: http.StatusCreated})
	v1.Handle("/webhooks", admin(func(w http.ResponseWriter, r *http.Request) error {
		list, err := svc.List(r.Context())
		if err != nil {
			return err
		}
		writeJSON(w, http.StatusOK, WebhookList{Webhooks: list})
		return nil
	})).Methods(http.MethodGet)
	s.describe(http.MethodGet, "/v1/webhooks", RouteDoc{Tag: "webhooks", Perm: auth.PermAdmin, Summary: "The webhook subscriptions", Answer: WebhookList{}})
	v1.Handle("/webhooks/{id}", admin(func(w http.ResponseWriter, r *http.Request) error {
		sub, err := svc.Get(r.Context(), pathID(r))
		if err != nil {
			return err
		}
		writeJSON(w, http.StatusOK, sub)
		return nil
	})).Methods(http.MethodGet)
	s.describe(http.MethodGet, "/v1/webhooks/{id}", RouteDoc{Tag: "webhooks", Perm: auth.PermAdmin, Summary: "One webhook subscription", Answer: webhooks.Subscription{}, Problems: []int{http.StatusNotFound}})
	v1.Handle("/webhooks/{id}", admin(func(w http.ResponseWriter, r *http.Request) error {
		var p webhooks.Patch
		if err := decodeWebhookBody(r, &p); err != nil {
			return err
		}
		m, err := commandMeta(r)
		if err != nil {
			return err
		}
		sub, err := svc.Update(r.Context(), m, pathID(r), p)
		if err != nil {
			return err
		}
		writeJSON(w, http.StatusOK, sub)
		return nil
	})).Methods(http.MethodPatch)
	s.describe(http.MethodPatch, "/v1/webhooks/{id}", RouteDoc{Tag: "webhooks", Perm: auth.PermAdmin, Summary: "Change a subscription: url, event_types, description, enabled", Body: webhooks.Patch{}, Answer: webhooks.Subscription{},
		Problems: []int{http.StatusNotFound, http.StatusConflict, http.StatusPreconditionFailed, http.StatusUnprocessableEntity}})
	v1.Handle("/webhooks/{id}", admin(func(w http.ResponseWriter, r *http.Request) error {
		m, err := commandMeta(r)
		if err != nil {
			return err
		}
		if err := svc.Delete(r.Context(), m, pathID(r)); err != nil {
			return err
		}
		w.WriteHeader(http.StatusNoContent)
		return nil
	})).Methods(http.MethodDelete)
	s.describe(http.MethodDelete, "/v1/webhooks/{id}", RouteDoc{Tag: "webhooks", Perm: auth.PermAdmin, Summary: "Remove a subscription", Status: http.StatusNoContent,
		Problems: []int{http.StatusNotFound, http.StatusConflict, http.StatusPreconditionFailed}})
	v1.Handle("/webhooks/{id}/deliveries", admin(func(w http.ResponseWriter, r *http.Request) error {
		limit, err := intParam(r, "limit")
		if err != nil {
			return err
		}
		list, err := svc.Deliveries(r.Context(), pathID(r), limit)
		if err != nil {
			return err
		}
		writeJSON(w, http.StatusOK, DeliveryList{Deliveries: list})
		return nil
	})).Methods(http.MethodGet)
	s.describe(http.MethodGet, "/v1/webhooks/{id}/deliveries", RouteDoc{Tag: "webhooks", Perm: auth.PermAdmin, Summary: "A subscription's deliveries: status, attempts, last error, response code", Params: []Param{limitDoc}, Answer: DeliveryList{}, Problems: []int{http.StatusNotFound}})
	v1.Handle("/webhooks/{id}/deliveries/{deliveryId}/redeliver", admin(func(w http.ResponseWriter, r *http.Request) error {
		d, err := svc.Redeliver(r.Context(), pathID(r), mux.Vars(r)["deliveryId"])
		if err != nil {
			return err
		}
		writeJSON(w, http.StatusOK, d)
		return nil
	})).Methods(http.MethodPost)
	s.describe(http.MethodPost, "/v1/webhooks/{id}/deliveries/{deliveryId}/redeliver", RouteDoc{Tag: "webhooks", Perm: auth.PermAdmin, Summary: "Deliver one delivery again", Answer: webhooks.Delivery{}, Problems: []int{http.StatusNotFound}})
}

// WebhookList is the answer of GET /v1/webhooks.
type WebhookList struct {
	Webhooks []webhooks.Subscription `json:"webhooks"`
}

// DeliveryList is the answer of GET /v1/webhooks/{id}/deliveries.
type DeliveryList struct {
	Deliveries []webhooks.Delivery `json:"deliveries"`
}

// decodeWebhookBody reads a webhook request body strictly; business time has no meaning here.
func decodeWebhookBody(r *http.Request, dst any) error {
	at, err := decodeBody(r, dst)
	if err != nil {
		return err
	}
	if !at.IsZero() {
		return badField("occurred_at", "a webhook subscription has no business time")
	}
	return nil
}

// webhookError turns the webhook service's errors into the edge's.
func webhookError(err error) error {
	var inv *webhooks.InvalidError
	switch {
	case errors.As(err, &inv):
		return badField(inv.Field, "%s", inv.Error())
	case errors.Is(err, webhooks.ErrNotFound):
		return notFound("no such webhook subscription or delivery")
	default:
		return err
	}
}
