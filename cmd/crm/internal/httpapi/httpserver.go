package httpapi

import (
	"net/http"
	"time"
)

// Timeouts are the deadlines of the HTTP server in front of the API.
type Timeouts struct {
	// ReadHeader bounds reading a request's header block; Read the whole request, body
	// included (a body slower than that is answered 408).
	ReadHeader, Read time.Duration
	// Write bounds the time from the end of a request's header block to the end of its
	// answer: an answer not written by then is cut off, and the client gets nothing.
	Write time.Duration
	// Idle bounds a kept-alive connection between requests.
	Idle time.Duration
}

// DefaultTimeouts are the server's deadlines before ForReadWait.
func DefaultTimeouts() Timeouts {
	return Timeouts{ReadHeader: 10 * time.Second, Read: 30 * time.Second, Write: 60 * time.Second, Idle: 2 * time.Minute}
}

// ForReadWait returns t with a write timeout that outlasts readWait, the longest wait of a
// read-model answer for min_position, by at least half of t.Write: after waiting, the answer
// still has to read its tables and be written, and one that waited the whole write timeout was
// cut off before it could say stale: true. This is the one place where the two meet.
func (t Timeouts) ForReadWait(readWait time.Duration) Timeouts {
	t.Write = max(t.Write, readWait+t.Write/2)
	return t
}

// HTTPServer returns the server that serves s with the deadlines t and a header block of at
// most MaxHeaderBytes. Serve it on ProblemListener, so that a larger header block, which
// net/http refuses itself before any handler runs, is also answered with a problem.
func (s *Server) HTTPServer(t Timeouts) *http.Server {
	return &http.Server{Handler: s, ReadHeaderTimeout: t.ReadHeader, ReadTimeout: t.Read, WriteTimeout: t.Write,
		IdleTimeout: t.Idle, MaxHeaderBytes: MaxHeaderBytes}
}
