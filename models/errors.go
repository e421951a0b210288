package models

import (
	"errors"
	"fmt"
	"time"
)

// Error codes are stable and machine-readable; clients switch on them. The
// HTTP status each one maps to lives in exactly one table, in handlers.
const (
	CodeInvalidRequest            = "invalid_request"
	CodeInvalidCredentials        = "invalid_credentials"
	CodeUnauthorized              = "unauthorized"
	CodeTokenExpired              = "token_expired"
	CodeForbidden                 = "forbidden"
	CodeNotFound                  = "not_found"
	CodeConflict                  = "conflict"
	CodePanelDisconnected         = "panel_disconnected"
	CodePanelAuthorizationExpired = "panel_authorization_expired"
	CodePanelArmed                = "panel_armed"
	CodeRateLimited               = "rate_limited"
	CodePayloadTooLarge           = "payload_too_large"
	CodeUnsupportedMediaType      = "unsupported_media_type"
	CodeMethodNotAllowed          = "method_not_allowed"
	CodeServiceUnavailable        = "service_unavailable"
	CodeInternal                  = "internal"
	// CodeLastOwner refuses a change that would leave an account with no
	// active owner.
	CodeLastOwner = "last_owner"
	// CodeInvalidState refuses an action the run's state does not allow,
	// such as applying a run that is not awaiting apply.
	CodeInvalidState = "invalid_state"

	// The HTTP server raises these before a request reaches a route.
	CodeRequestHeaderFieldsTooLarge = "request_header_fields_too_large"
	CodeNotImplemented              = "not_implemented"
)

// Error is the one error type that crosses package boundaries with a
// meaning a client can act on. Anything else that reaches the edge is an
// internal error and its text stays in the logs.
type Error struct {
	// Code is one of the Code constants.
	Code string
	// Message is safe to show to the caller.
	Message string
	// Field names the request field at fault, when there is one.
	Field string
	// RetryAfter tells a rate-limited caller when to come back.
	RetryAfter time.Duration
	// Details lists every problem found in an uploaded file, each placed
	// where a person can find it; DetailsOmitted counts those beyond it.
	Details        []ErrorDetail
	DetailsOmitted int
}

// ErrorDetail is one problem in an uploaded file.
type ErrorDetail struct {
	// File is "data" or "control".
	File string
	// Row is the data file's row (its spreadsheet row for CSV, the 1-based
	// index of the user for JSON), or 0 for the file as a whole.
	Row int
	// Column is the column as the file spells it, or the JSON path in the
	// control file, or "".
	Column  string
	Message string
}

func (e *Error) Error() string {
	if e.Field != "" {
		return fmt.Sprintf("%s: %s (field %q)", e.Code, e.Message, e.Field)
	}
	return e.Code + ": " + e.Message
}

// Errorf returns an Error with the given code and a formatted message.
func Errorf(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// FieldError returns an invalid_request Error that names the field at fault.
func FieldError(field, format string, args ...any) *Error {
	return &Error{Code: CodeInvalidRequest, Field: field, Message: fmt.Sprintf(format, args...)}
}

// ErrorCode returns the code of err, or CodeInternal when err is not an
// Error. A nil error has no code.
func ErrorCode(err error) string {
	if err == nil {
		return ""
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return CodeInternal
}

// NotFound is the answer for anything the caller may not see, including
// another account's records: their existence is not revealed.
func NotFound(what string) *Error {
	return Errorf(CodeNotFound, "%s not found", what)
}

// ErrorMessage returns the text of err that is safe to show a person: the
// message of an Error (with the field it names), or a generic line.
func ErrorMessage(err error) string {
	var e *Error
	if errors.As(err, &e) {
		if e.Field != "" {
			return e.Field + ": " + e.Message
		}
		return e.Message
	}
	return "an internal error occurred"
}
