// Package sqlitefile names a SQLite file for the modernc.org/sqlite driver.
//
// The driver reads a data source name up to its first '?' as the file and the rest as its
// parameters; a name starting with "file:" goes to sqlite3_open_v2 whole as a URI, in which
// '?' and '#' end the path and %HH stands for a byte. A path written as it is into a data
// source name is therefore cut at its first '?' or '#', and any %HH in it is decoded: the
// database lands in another file. DSN writes the path as a URI with every such byte escaped.
package sqlitefile

import (
	"net/url"
	"strings"
)

// DSN is the data source name of the SQLite file at path (absolute or relative to the working
// directory) with the driver's and SQLite's parameters params (nil for none).
//
// Every byte of path but the unreserved characters of RFC 3986 and '/' is written %HH, which
// SQLite decodes back to the byte: no '?', '#' or '%' of the path is read as URI syntax, and
// a path beginning with "//" is not read as an authority.
func DSN(path string, params url.Values) string {
	var b strings.Builder
	b.Grow(len("file://") + 3*len(path) + 1 + 64)
	b.WriteString("file:")
	if strings.HasPrefix(path, "/") {
		b.WriteString("//") // an empty authority: the path that follows is taken whole
	}
	const hex = "0123456789ABCDEF"
	for i := 0; i < len(path); i++ {
		c := path[i]
		if unreserved(c) || c == '/' {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(hex[c>>4])
		b.WriteByte(hex[c&0xf])
	}
	if len(params) > 0 {
		b.WriteByte('?')
		b.WriteString(params.Encode())
	}
	return b.String()
}

// unreserved reports whether c is an unreserved character of RFC 3986.
func unreserved(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
		c == '-' || c == '.' || c == '_' || c == '~'
}
