package httpapi

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
)

// MaxHeaderBytes bounds a request's header block (net/http allows 4 KiB more).
const MaxHeaderBytes = 1 << 20

// netHTTPErrorHeaders are the headers of the answers net/http writes itself, straight to the
// connection and before any handler runs, when it cannot parse a request: a header block over
// MaxHeaderBytes (431), a header name or value with a byte HTTP forbids, such as NUL (400), an
// unsupported transfer encoding (501), and the like (net/http/server.go, conn.serve). Answers of
// handlers are written through a buffer and carry a Date header, so they never look like this.
// TestNetHTTPRefusalsAreProblems notices when a Go release changes it.
const netHTTPErrorHeaders = "\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\n"

// ProblemListener wraps ln so that net/http's own plain-text refusals of requests it cannot
// parse go out as problems instead: no handler sees such a request, so the connection is the
// only place left to answer it.
func ProblemListener(ln net.Listener) net.Listener { return problemListener{ln} }

type problemListener struct{ net.Listener }

func (l problemListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &problemConn{Conn: c}, nil
}

// problemConn replaces net/http's plain-text refusals with problems.
type problemConn struct{ net.Conn }

func (c *problemConn) Write(p []byte) (int, error) {
	prob, ok := netHTTPRefusal(p)
	if !ok {
		return c.Conn.Write(p)
	}
	if _, err := c.Conn.Write(problemResponse(prob)); err != nil {
		return 0, err
	}
	return len(p), nil
}

// CloseWrite lets net/http half-close the connection after a refusal, as it does on a bare TCP
// connection, so that the client reads the answer before the connection is reset.
func (c *problemConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

// netHTTPRefusal reports whether p is one of net/http's own refusals, and its problem:
// "HTTP/1.1 <status line>" netHTTPErrorHeaders "<status line>", where the status line may
// end in ": <reason>".
func netHTTPRefusal(p []byte) (*apiError, bool) {
	head, body, ok := strings.Cut(string(p), netHTTPErrorHeaders)
	line, isResponse := strings.CutPrefix(head, "HTTP/1.1 ")
	if !ok || !isResponse || body != line || len(line) < 3 {
		return nil, false
	}
	status, err := strconv.Atoi(line[:3])
	if err != nil || status < 400 {
		return nil, false
	}
	if status == http.StatusRequestHeaderFieldsTooLarge {
		return headerBlockTooLarge(), true
	}
	detail := "the request could not be parsed as HTTP"
	if _, reason, found := strings.Cut(line, ": "); found {
		detail += ": " + reason
	}
	slug := "bad-request"
	if status != http.StatusBadRequest {
		slug = strings.ToLower(strings.ReplaceAll(http.StatusText(status), " ", "-"))
	}
	return unparsable(status, slug, detail), true
}

// problemResponse is the whole HTTP answer with the problem of e, for a request no handler saw.
func problemResponse(e *apiError) []byte {
	p, _ := problemFor(e)
	body, _ := json.Marshal(p) // a Problem of strings and an int always encodes
	var b bytes.Buffer
	fmt.Fprintf(&b, "HTTP/1.1 %d %s\r\n", p.Status, http.StatusText(p.Status))
	fmt.Fprintf(&b, "Content-Type: application/problem+json\r\nCache-Control: no-store\r\nConnection: close\r\n")
	fmt.Fprintf(&b, "Content-Length: %d\r\n\r\n%s\n", len(body)+1, body)
	return b.Bytes()
}
