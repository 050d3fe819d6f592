// Package console holds the web console: a page and its scripts, embedded in the binary and
// served by the HTTP API without a token (they hold no data; the page asks the /v1 API for it
// with the token the user signs in with). Third-party files come from npm through vendor.sh
// (`make web`) and are committed with their licences.
package console

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"fmt"
	"io/fs"
	"mime"
	"net/http"
	"path"
	"strconv"
	"strings"
)

//go:embed assets
var embedded embed.FS

// Index is the name of the page served at /.
const Index = "index.html"

// Asset is one file of the console, kept with its gzip form and an ETag.
type Asset struct {
	Name        string
	ContentType string
	Body        []byte
	Gzipped     []byte
	ETag        string
}

// Assets are the console's files by name. They are read and compressed once, at start.
type Assets struct {
	byName map[string]*Asset
}

// Load reads the embedded files.
func Load() (*Assets, error) {
	sub, err := fs.Sub(embedded, "assets")
	if err != nil {
		return nil, fmt.Errorf("console assets: %w", err)
	}
	return LoadFS(sub)
}

// LoadFS reads the files at the top of fsys (no subdirectories: every asset is /console/NAME).
func LoadFS(fsys fs.FS) (*Assets, error) {
	entries, err := fs.ReadDir(fsys, ".")
	if err != nil {
		return nil, fmt.Errorf("console assets: %w", err)
	}
	a := &Assets{byName: map[string]*Asset{}}
	for _, e := range entries {
		if e.IsDir() {
			continue
		}
		body, err := fs.ReadFile(fsys, e.Name())
		if err != nil {
			return nil, fmt.Errorf("console asset %s: %w", e.Name(), err)
		}
		asset, err := newAsset(e.Name(), body)
		if err != nil {
			return nil, err
		}
		a.byName[e.Name()] = asset
	}
	if _, ok := a.byName[Index]; !ok {
		return nil, fmt.Errorf("console assets: no %s", Index)
	}
	return a, nil
}

func newAsset(name string, body []byte) (*Asset, error) {
	var buf bytes.Buffer
	zw, err := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	if err != nil {
		return nil, fmt.Errorf("console asset %s: %w", name, err)
	}
	if _, err := zw.Write(body); err != nil {
		return nil, fmt.Errorf("console asset %s: gzip: %w", name, err)
	}
	if err := zw.Close(); err != nil {
		return nil, fmt.Errorf("console asset %s: gzip: %w", name, err)
	}
	sum := sha256.Sum256(body)
	ct := mime.TypeByExtension(path.Ext(name))
	switch path.Ext(name) { // the system's MIME table may lack or differ on these
	case ".js":
		ct = "text/javascript; charset=utf-8"
	case ".css":
		ct = "text/css; charset=utf-8"
	case ".html":
		ct = "text/html; charset=utf-8"
	case ".txt":
		ct = "text/plain; charset=utf-8"
	case ".svg":
		ct = "image/svg+xml"
	}
	if ct == "" {
		ct = "application/octet-stream"
	}
	return &Asset{Name: name, ContentType: ct, Body: body, Gzipped: buf.Bytes(), ETag: `"` + hex.EncodeToString(sum[:8]) + `"`}, nil
}

// Get returns the asset called name.
func (a *Assets) Get(name string) (*Asset, bool) {
	asset, ok := a.byName[name]
	return asset, ok
}

// Names lists the assets, for tests and the weight of the page.
func (a *Assets) Names() []string {
	names := make([]string, 0, len(a.byName))
	for n := range a.byName {
		names = append(names, n)
	}
	return names
}

// ContentSecurityPolicy keeps the page to its own scripts and to the API of its own origin.
// Styles may be inline: the chart library sets element styles.
const ContentSecurityPolicy = "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; " +
	"connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'"

// Serve writes the asset, gzipped when the client accepts it, and answers 304 to a matching
// If-None-Match. Assets are revalidated on each load (no-cache), so a new binary is seen at once.
func (asset *Asset) Serve(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Cache-Control", "no-cache")
	h.Set("ETag", asset.ETag)
	h.Set("Vary", "Accept-Encoding")
	if match := r.Header.Get("If-None-Match"); match != "" && strings.Contains(match, asset.ETag) {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	h.Set("Content-Type", asset.ContentType)
	h.Set("X-Content-Type-Options", "nosniff")
	if asset.Name == Index {
		h.Set("Content-Security-Policy", ContentSecurityPolicy)
		h.Set("Referrer-Policy", "no-referrer")
	}
	body := asset.Body
	if acceptsGzip(r) {
		h.Set("Content-Encoding", "gzip")
		body = asset.Gzipped
	}
	_, _ = w.Write(body) // the client may be gone; nothing to do about it
}

func acceptsGzip(r *http.Request) bool {
	for _, part := range strings.Split(r.Header.Get("Accept-Encoding"), ",") {
		coding, params, _ := strings.Cut(strings.TrimSpace(part), ";")
		if !strings.EqualFold(strings.TrimSpace(coding), "gzip") {
			continue
		}
		q, found := strings.CutPrefix(strings.ReplaceAll(params, " ", ""), "q=")
		if !found {
			return true
		}
		weight, err := strconv.ParseFloat(q, 64)
		return err == nil && weight > 0
	}
	return false
}
