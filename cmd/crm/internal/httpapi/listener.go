package httpapi

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
)

// MaxHeaderBytes bounds a request's header block (net/http allows 4 KiB more).
const MaxHeaderBytes = 1 << 20

// netHTTPHeaderTooLarge is the answer net/http writes itself, straight to the connection and
// before any handler runs, when a header block exceeds the server's MaxHeaderBytes
// (net/http/server.go, conn.serve). TestOversizedHeaderBlockIsAProblem notices when a Go
// release changes it.
const netHTTPHeaderTooLarge = "HTTP/1.1 431 Request Header Fields Too Large\r\nContent-Type: text/plain; charset=utf-8\r\n" +
	"Connection: close\r\n\r\n431 Request Header Fields Too Large"

// ProblemListener wraps ln so that net/http's own plain-text answer to an oversized header block
// goes out as a problem instead: no handler sees such a request, so the connection is the only
// place left to answer it.
func ProblemListener(ln net.Listener) net.Listener { return problemListener{ln} }

type problemListener struct{ net.Listener }

func (l problemListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &problemConn{Conn: c}, nil
}

// problemConn replaces net/http's plain-text 431 with headerBlockProblemResponse.
type problemConn struct{ net.Conn }

func (c *problemConn) Write(p []byte) (int, error) {
	if string(p) != netHTTPHeaderTooLarge {
		return c.Conn.Write(p)
	}
	if _, err := c.Conn.Write(headerBlockProblemResponse()); err != nil {
		return 0, err
	}
	return len(p), nil
}

// CloseWrite lets net/http half-close the connection after the 431, as it does on a bare TCP
// connection, so that the client reads the answer before the connection is reset.
func (c *problemConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

// headerBlockTooLarge is the problem of a header block over MaxHeaderBytes.
func headerBlockTooLarge() *apiError {
	return &apiError{status: http.StatusRequestHeaderFieldsTooLarge, slug: "header-too-large", title: "Request header too large",
		detail: fmt.Sprintf("the request's header block is longer than %d bytes", MaxHeaderBytes)}
}

// headerBlockProblemResponse is the whole HTTP answer to a header block over MaxHeaderBytes.
func headerBlockProblemResponse() []byte {
	p, _ := problemFor(headerBlockTooLarge())
	body, _ := json.Marshal(p) // a Problem of strings and an int always encodes
	var b bytes.Buffer
	fmt.Fprintf(&b, "HTTP/1.1 %d %s\r\n", p.Status, http.StatusText(p.Status))
	fmt.Fprintf(&b, "Content-Type: application/problem+json\r\nCache-Control: no-store\r\nConnection: close\r\n")
	fmt.Fprintf(&b, "Content-Length: %d\r\n\r\n%s\n", len(body)+1, body)
	return b.Bytes()
}
