package httpapi

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/gorilla/mux"
	"go.uber.org/zap"

	"github.com/eventcrm/crm/cmd/crm/internal/auth"
	"github.com/eventcrm/crm/eventstore/audit"
)

// Audit is what the audit endpoints need.
type Audit struct {
	// Ledger gives checkpoints and proofs of the log.
	Ledger *audit.Ledger
	// AccessLog records every auditor read; a read that cannot be recorded is not served.
	AccessLog *audit.AccessLog
}

// audited tells the routes whose reads go to the access log: the histories and everything
// under /v1/audit.
func audited(pathTemplate string) bool {
	switch pathTemplate {
	case "/v1/contacts/{id}/history", "/v1/deals/{id}/history", "/v1/audit/key", "/v1/audit/checkpoint",
		"/v1/audit/proof", "/v1/audit/consistency", "/v1/audit/access-log", "/v1/contacts/{id}/export":
		return true
	}
	return false
}

// MountAudit adds the audit endpoints (auditors and admins: PermVerify) and records auditor
// reads, the histories' included, in the access log.
func (s *Server) MountAudit(a Audit) {
	s.router.Use(s.recordReads(a.AccessLog))
	get := func(path string, h queryFunc, d RouteDoc) {
		d.Perm, d.Tag = auth.PermVerify, "audit"
		s.handle(http.MethodGet, "/v1"+path, s.authorize(auth.PermVerify, s.query(h)), d)
	}
	get("/audit/key", func(r *http.Request) (any, int64, error) {
		k, err := a.Ledger.PublicKey()
		if err != nil {
			return nil, 0, err
		}
		note(r.Context(), "key "+k.ID())
		return k.Info(), 0, nil
	}, RouteDoc{Summary: "The public key checkpoints are signed with", Answer: audit.KeyInfo{}})
	get("/audit/checkpoint", func(r *http.Request) (any, int64, error) {
		cp, err := a.Ledger.Checkpoint(r.Context())
		if err != nil {
			return nil, 0, err
		}
		note(r.Context(), fmt.Sprintf("checkpoint size %d root %s", cp.Size, cp.RootHash))
		return cp, 0, nil
	}, RouteDoc{Summary: "A signed checkpoint of the whole log (Merkle tree size and root)", Answer: audit.Checkpoint{}})
	get("/audit/proof", func(r *http.Request) (any, int64, error) {
		q := r.URL.Query()
		stream := q.Get("stream")
		if stream == "" {
			return nil, 0, badField("stream", "stream is required")
		}
		version, err := auditParam(r, "version", 1, true)
		if err != nil {
			return nil, 0, err
		}
		size, err := auditParam(r, "size", 1, false)
		if err != nil {
			return nil, 0, err
		}
		p, err := a.Ledger.Prove(r.Context(), stream, version, size)
		if err != nil {
			return nil, 0, err
		}
		note(r.Context(), fmt.Sprintf("proof of %s version %d in tree of %d", stream, version, p.TreeSize))
		return p, 0, nil
	}, RouteDoc{Summary: "Proof that one event is in the log's Merkle tree", Answer: audit.InclusionProof{},
		Params: []Param{{Name: "stream", Description: "the event's stream", Required: true},
			{Name: "version", Description: "the event's version in its stream", Type: "integer", Required: true},
			intParamDoc("size", "tree size to prove against (default: the current tree)")},
		Problems: []int{http.StatusNotFound, http.StatusUnprocessableEntity}})
	get("/audit/consistency", func(r *http.Request) (any, int64, error) {
		from, err := auditParam(r, "from", 0, true)
		if err != nil {
			return nil, 0, err
		}
		// to=0 is the empty tree, which only the empty tree (from=0) extends.
		to := audit.CurrentTree
		if r.URL.Query().Has("to") {
			if to, err = auditParam(r, "to", 0, true); err != nil {
				return nil, 0, err
			}
		}
		p, err := a.Ledger.Consistency(r.Context(), from, to)
		if err != nil {
			return nil, 0, err
		}
		note(r.Context(), fmt.Sprintf("consistency of %d with %d", p.From, p.To))
		return p, 0, nil
	}, RouteDoc{Summary: "Proof that a later tree extends an earlier one", Answer: audit.ConsistencyProof{},
		Params: []Param{{Name: "from", Description: "the earlier tree size", Type: "integer", Required: true},
			intParamDoc("to", "the later tree size (default: the current tree)")},
		Problems: []int{http.StatusUnprocessableEntity}})
	// Who read what is for admins: an auditor's reads are what it checks.
	get("/audit/access-log", func(r *http.Request) (any, int64, error) {
		if p := principal(r.Context()); p.Role != auth.RoleAdmin {
			return nil, 0, forbidden(p.Role, "read the access log")
		}
		after, err := auditParam(r, "after", 0, false)
		if err != nil {
			return nil, 0, err
		}
		limit, err := auditParam(r, "limit", 1, false)
		if err != nil {
			return nil, 0, err
		}
		if limit == 0 || limit > 1000 {
			limit = 1000
		}
		entries, err := a.AccessLog.List(r.Context(), after, int(limit))
		if err != nil {
			return nil, 0, err
		}
		next := after
		if len(entries) > 0 {
			next = entries[len(entries)-1].Seq
		}
		note(r.Context(), fmt.Sprintf("access log after %d: %d entries", after, len(entries)))
		return AccessLogPage{Entries: entries, NextAfter: next}, 0, nil
	}, RouteDoc{Summary: "Who read what (admins only)", Answer: AccessLogPage{},
		Params: []Param{intParamDoc("after", "the next_after of the previous page"), intParamDoc("limit", "page size, 1..1000")}})
}

// AccessLogPage is the answer of GET /v1/audit/access-log.
type AccessLogPage struct {
	Entries   []audit.Access `json:"entries"`
	NextAfter int64          `json:"next_after"`
}

// auditParam reads a query parameter of at least lowest; 0 when absent and not required.
func auditParam(r *http.Request, name string, lowest int64, required bool) (int64, error) {
	v := r.URL.Query().Get(name)
	if v == "" {
		if required {
			return 0, badField(name, "%s is required", name)
		}
		return 0, nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < lowest {
		return 0, badField(name, "%s %q is not an integer of at least %d", name, v, lowest)
	}
	return n, nil
}

type noteKey struct{}

// note says what a recorded read read, for the access log.
func note(ctx context.Context, what string) {
	if p, ok := ctx.Value(noteKey{}).(*string); ok {
		*p = what
	}
}

// bufferedResponse holds an answer until its read is recorded.
type bufferedResponse struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (b *bufferedResponse) Header() http.Header         { return b.header }
func (b *bufferedResponse) Write(p []byte) (int, error) { return b.body.Write(p) }
func (b *bufferedResponse) WriteHeader(status int) {
	if b.status == 0 {
		b.status = status
	}
}

// recordReads records every authorized read of an audited route in the access log before the
// answer leaves: when the record cannot be written, the reader gets a 500 and nothing else.
// Refused requests (no token, wrong role) are not the log's business: the access log at
// debug level and the answer say enough.
func (s *Server) recordReads(log *audit.AccessLog) mux.MiddlewareFunc {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			var tmpl string
			if route := mux.CurrentRoute(r); route != nil {
				tmpl, _ = route.GetPathTemplate()
			}
			if !audited(tmpl) {
				next.ServeHTTP(w, r)
				return
			}
			what := ""
			if id := mux.Vars(r)["id"]; id != "" {
				what = "history of " + id
				if strings.HasSuffix(tmpl, "/export") {
					what = "export of " + id
				}
			}
			buf := &bufferedResponse{header: w.Header()}
			next.ServeHTTP(buf, r.WithContext(context.WithValue(r.Context(), noteKey{}, &what)))
			if buf.status == 0 {
				buf.status = http.StatusOK
			}
			if p := principal(r.Context()); p.Name != "" {
				a, err := log.Record(r.Context(), audit.Access{Actor: p.Name, Role: string(p.Role), RequestID: requestID(r.Context()),
					Method: r.Method, Path: r.URL.Path, Query: r.URL.RawQuery, Status: buf.status, What: what})
				if err != nil {
					for k := range buf.header {
						delete(buf.header, k)
					}
					s.writeError(w, r, fmt.Errorf("record auditor read: %w", err))
					return
				}
				s.log.Info("auditor read", zap.String("actor", p.Name), zap.String("role", string(p.Role)),
					zap.String("request_id", a.RequestID), zap.String("path", a.Path), zap.String("query", a.Query),
					zap.Int("status", a.Status), zap.String("what", what), zap.Int64("access_seq", a.Seq))
			}
			w.WriteHeader(buf.status)
			_, _ = w.Write(buf.body.Bytes()) // the client may be gone; nothing to do about it
		})
	}
}
