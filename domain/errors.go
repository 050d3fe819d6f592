package domain

import (
	"errors"
	"fmt"
)

// Code classifies a domain error; the HTTP edge maps each code to one status and problem type.
type Code string

// Error codes.
const (
	// CodeInvalid: a command field has a value the domain does not accept.
	CodeInvalid Code = "invalid"
	// CodeRefused: the command is well-formed but the current state does not allow it
	// (a refused phase transition, winning a lost deal, completing a done task).
	CodeRefused Code = "refused"
	// CodeNotFound: the aggregate or an entity inside it does not exist.
	CodeNotFound Code = "not_found"
	// CodeConflict: the aggregate already exists.
	CodeConflict Code = "conflict"
	// CodeMerged: the aggregate was merged into another and takes no more commands;
	// Error.MergedInto names the survivor, so the edge can point the client there.
	CodeMerged Code = "merged"
)

// Error is the one error type of the domain.
type Error struct {
	Code    Code
	Field   string // the offending command field, when there is one
	Message string
	// MergedInto is the id of the surviving aggregate, set only with CodeMerged.
	MergedInto string
}

func (e *Error) Error() string {
	if e.Field != "" {
		return fmt.Sprintf("%s: %s", e.Field, e.Message)
	}
	return e.Message
}

// Invalid reports a bad value of field.
func Invalid(field, format string, args ...any) *Error {
	return &Error{Code: CodeInvalid, Field: field, Message: fmt.Sprintf(format, args...)}
}

// Refused reports a command the current state does not allow.
func Refused(format string, args ...any) *Error {
	return &Error{Code: CodeRefused, Message: fmt.Sprintf(format, args...)}
}

// NotFound reports a missing aggregate or entity.
func NotFound(format string, args ...any) *Error {
	return &Error{Code: CodeNotFound, Message: fmt.Sprintf(format, args...)}
}

// Conflict reports an aggregate that exists already.
func Conflict(format string, args ...any) *Error {
	return &Error{Code: CodeConflict, Message: fmt.Sprintf(format, args...)}
}

// Merged reports a command on an aggregate (what, e.g. "contact") that was merged into another.
func Merged(what, id, into string) *Error {
	return &Error{Code: CodeMerged, Message: fmt.Sprintf("%s %s was merged into %s", what, id, into), MergedInto: into}
}

// ErrorCode returns the code of a domain error in err's chain, or "" when there is none.
func ErrorCode(err error) Code {
	var de *Error
	if errors.As(err, &de) {
		return de.Code
	}
	return ""
}

// MergedInto returns the survivor's id when err's chain holds a CodeMerged domain error.
func MergedInto(err error) (string, bool) {
	var de *Error
	if errors.As(err, &de) && de.Code == CodeMerged {
		return de.MergedInto, true
	}
	return "", false
}
