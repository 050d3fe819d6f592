package httpapi_test

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
)

// The console's page and files are served without a token, gzipped when asked, with an ETag
// that answers 304; /v1/me needs a token and tells the role, permissions and business zone.
func TestConsoleIsServed(t *testing.T) {
	t.Parallel()
	a := newWholeAPI(t, backends()[0])
	tests := []struct {
		name, path, token string
		headers           []string
		status            int
		contentType       string
		contains          string
	}{
		{"page", "/", "", nil, http.StatusOK, "text/html; charset=utf-8", `<script type="module" src="/console/app.js">`},
		{"script", "/console/app.js", "", nil, http.StatusOK, "text/javascript; charset=utf-8", "sessionStorage"},
		{"chart library", "/console/echarts.min.js", "", nil, http.StatusOK, "text/javascript; charset=utf-8", "Apache"},
		{"chart licence", "/console/echarts-LICENSE.txt", "", nil, http.StatusOK, "text/plain; charset=utf-8", "Apache License"},
		{"unknown file", "/console/nope.js", "", nil, http.StatusNotFound, "application/problem+json", "no such console file"},
		{"me without a token", "/v1/me", "", nil, http.StatusUnauthorized, "application/problem+json", ""},
		{"me", "/v1/me", auditorToken, nil, http.StatusOK, "application/json", `"role":"auditor"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := a.do(http.MethodGet, tt.path, tt.token, "", tt.headers...)
			if r.status != tt.status || r.header.Get("Content-Type") != tt.contentType || !bytes.Contains(r.body, []byte(tt.contains)) {
				t.Fatalf("GET %s: %d %s %.200s", tt.path, r.status, r.header.Get("Content-Type"), r.body)
			}
		})
	}

	t.Run("page policy", func(t *testing.T) {
		r := a.do(http.MethodGet, "/", "", "")
		if csp := r.header.Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self'") || strings.Contains(csp, "unsafe-eval") {
			t.Fatalf("Content-Security-Policy %q", csp)
		}
	})
	t.Run("me answers", func(t *testing.T) {
		var me struct {
			Name        string   `json:"name"`
			Role        string   `json:"role"`
			Permissions []string `json:"permissions"`
			BusinessTZ  string   `json:"business_tz"`
		}
		r := a.do(http.MethodGet, "/v1/me", appToken, "")
		if err := json.Unmarshal(r.body, &me); err != nil {
			t.Fatal(err)
		}
		if me.Name != "web" || me.Role != "app" || strings.Join(me.Permissions, ",") != "write,read" || me.BusinessTZ != "UTC" {
			t.Fatalf("me = %+v", me)
		}
	})
	t.Run("gzip and etag", func(t *testing.T) {
		plain := a.do(http.MethodGet, "/console/app.js", "", "")
		zipped := a.do(http.MethodGet, "/console/app.js", "", "", "Accept-Encoding", "gzip")
		if zipped.header.Get("Content-Encoding") != "gzip" || len(zipped.body) >= len(plain.body) {
			t.Fatalf("gzip: encoding %q, %d bytes against %d", zipped.header.Get("Content-Encoding"), len(zipped.body), len(plain.body))
		}
		zr, err := gzip.NewReader(bytes.NewReader(zipped.body))
		if err != nil {
			t.Fatal(err)
		}
		unzipped, err := io.ReadAll(zr)
		if err != nil || !bytes.Equal(unzipped, plain.body) {
			t.Fatalf("gunzipped body differs (%v)", err)
		}
		etag := plain.header.Get("ETag")
		if again := a.do(http.MethodGet, "/console/app.js", "", "", "If-None-Match", etag); etag == "" || again.status != http.StatusNotModified {
			t.Fatalf("If-None-Match %q: %d", etag, again.status)
		}
		if refused := a.do(http.MethodGet, "/console/app.js", "", "", "Accept-Encoding", "gzip;q=0"); refused.header.Get("Content-Encoding") != "" {
			t.Fatal("gzip sent though q=0 refuses it")
		}
	})
}
