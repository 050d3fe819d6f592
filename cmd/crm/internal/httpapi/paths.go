package httpapi

import (
	"net/http"
	"net/url"
	"strings"
)

// canonicalPath refuses a path that names a resource only once cleaned: a "." or ".."
// segment (also percent-encoded), an encoded slash or an empty segment. The router does not
// clean paths (cleaning answered 301 before authentication, with a Location that copied the
// query, whatever its size), so such a path is refused here, before routing: no resource of
// the API has one.
func canonicalPath(r *http.Request) error {
	segments := strings.Split(r.URL.EscapedPath(), "/")
	for i, seg := range segments[1:] {
		last := i == len(segments)-2
		raw, err := url.PathUnescape(seg)
		switch {
		case err != nil:
			return badRequest("the path has a malformed percent-encoding")
		case seg == "" && !last: // a trailing slash is routed, and not found
			return badRequest("the path has an empty segment (//)")
		case raw == "." || raw == "..":
			return badRequest("the path has a dot segment (%s)", raw)
		case strings.Contains(raw, "/"):
			return badRequest("the path has an encoded slash (%%2F)")
		}
	}
	return nil
}
