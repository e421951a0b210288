// Package handlers holds the HTTP routes: each parses and validates its
// input, authorizes, calls one service and converts the result into a
// response type. Errors go back as values to the one ErrorHandler.
package handlers

import (
	"errors"
	"log/slog"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/panelsync/panelsync/bus"
	"github.com/panelsync/panelsync/models"
)

// problemStatus maps every error code to its HTTP status. It is the only
// place a status is chosen for an error.
func problemStatus(key string) (int, bool) {
	switch key {
	case models.CodeInvalidRequest:
		return fiber.StatusBadRequest, true
	case models.CodeInvalidCredentials:
		return fiber.StatusUnauthorized, true
	case models.CodeUnauthorized:
		return fiber.StatusUnauthorized, true
	case models.CodeTokenExpired:
		return fiber.StatusUnauthorized, true
	case models.CodeForbidden:
		return fiber.StatusForbidden, true
	case models.CodeNotFound:
		return fiber.StatusNotFound, true
	case models.CodeMethodNotAllowed:
		return fiber.StatusMethodNotAllowed, true
	case models.CodeConflict, models.CodeLastOwner, models.CodeInvalidState:
		return fiber.StatusConflict, true
	case models.CodePanelDisconnected:
		return fiber.StatusConflict, true
	case models.CodePanelAuthorizationExpired:
		return fiber.StatusConflict, true
	case models.CodePanelArmed:
		return fiber.StatusConflict, true
	case models.CodePayloadTooLarge:
		return fiber.StatusRequestEntityTooLarge, true
	case models.CodeRequestHeaderFieldsTooLarge:
		return fiber.StatusRequestHeaderFieldsTooLarge, true
	case models.CodeNotImplemented:
		return fiber.StatusNotImplemented, true
	case models.CodeUnsupportedMediaType:
		return fiber.StatusUnsupportedMediaType, true
	case models.CodeRateLimited:
		return fiber.StatusTooManyRequests, true
	case models.CodeServiceUnavailable:
		return fiber.StatusServiceUnavailable, true
	case models.CodeInternal:
		return fiber.StatusInternalServerError, true
	}
	return 0, false
}

// problemTitle is the short human summary of each code.
func problemTitle(key string) (string, bool) {
	switch key {
	case models.CodeInvalidRequest:
		return "Invalid request", true
	case models.CodeInvalidCredentials:
		return "Invalid credentials", true
	case models.CodeUnauthorized:
		return "Unauthorized", true
	case models.CodeTokenExpired:
		return "Token expired", true
	case models.CodeForbidden:
		return "Forbidden", true
	case models.CodeNotFound:
		return "Not found", true
	case models.CodeMethodNotAllowed:
		return "Method not allowed", true
	case models.CodeConflict:
		return "Conflict", true
	case models.CodeLastOwner:
		return "Last owner", true
	case models.CodeInvalidState:
		return "Invalid state", true
	case models.CodePanelDisconnected:
		return "Panel disconnected", true
	case models.CodePanelAuthorizationExpired:
		return "Panel authorization expired", true
	case models.CodePanelArmed:
		return "Panel armed", true
	case models.CodePayloadTooLarge:
		return "Payload too large", true
	case models.CodeRequestHeaderFieldsTooLarge:
		return "Request header fields too large", true
	case models.CodeNotImplemented:
		return "Not implemented", true
	case models.CodeUnsupportedMediaType:
		return "Unsupported media type", true
	case models.CodeRateLimited:
		return "Too many requests", true
	case models.CodeServiceUnavailable:
		return "Service unavailable", true
	case models.CodeInternal:
		return "Internal error", true
	}
	return "", false
}

// fiberErrorCode maps the errors Fiber raises itself (routing, body limit)
// onto the domain codes.
func fiberErrorCode(key int) (string, bool) {
	switch key {
	case fiber.StatusBadRequest:
		return models.CodeInvalidRequest, true
	case fiber.StatusNotFound:
		return models.CodeNotFound, true
	case fiber.StatusMethodNotAllowed:
		return models.CodeMethodNotAllowed, true
	case fiber.StatusRequestEntityTooLarge:
		return models.CodePayloadTooLarge, true
	case fiber.StatusRequestHeaderFieldsTooLarge:
		return models.CodeRequestHeaderFieldsTooLarge, true
	case fiber.StatusUnsupportedMediaType:
		return models.CodeUnsupportedMediaType, true
	case fiber.StatusTooManyRequests:
		return models.CodeRateLimited, true
	case fiber.StatusServiceUnavailable:
		return models.CodeServiceUnavailable, true
	case fiber.StatusUpgradeRequired:
		return models.CodeInvalidRequest, true
	}
	return "", false
}

// Problem is an RFC 9457 problem document.
type Problem struct {
	Type      string `json:"type"`
	Title     string `json:"title"`
	Status    int    `json:"status"`
	Detail    string `json:"detail"`
	Code      string `json:"code"`
	Field     string `json:"field,omitempty"`
	RequestID string `json:"request_id,omitempty"`
	// Errors lists every problem of an uploaded file; ErrorsOmitted
	// counts those beyond the list.
	Errors        []ProblemDetail `json:"errors,omitempty"`
	ErrorsOmitted int             `json:"errors_omitted,omitempty"`
}

// ProblemDetail is one problem of an uploaded file: which file, the row
// (0 for the file as a whole) and column, and what is wrong.
type ProblemDetail struct {
	File    string `json:"file"`
	Row     int    `json:"row"`
	Column  string `json:"column"`
	Message string `json:"message"`
}

// unavailableRetryAfter is how long a client is asked to wait before
// retrying while the database or the bus is unreachable.
const unavailableRetryAfter = 5 * time.Second

// problemFor converts any error into a problem document. Errors that are
// not domain errors are internal: their text is logged, never sent.
func problemFor(err error) (Problem, *models.Error) {
	var de *models.Error
	var fe *fiber.Error
	switch {
	case errors.As(err, &de):
	case errors.As(err, &fe):
		code, ok := fiberErrorCode(fe.Code)
		if !ok {
			code = models.CodeInternal
		}
		msg := fe.Message
		if code == models.CodeNotFound {
			msg = "no such route"
		}
		if code == models.CodePayloadTooLarge {
			msg = "request body is larger than this server accepts"
		}
		de = &models.Error{Code: code, Message: msg}
	case models.IsUnavailable(err):
		// The database cannot be used right now: the client is told to
		// retry, as API.md's service_unavailable promises, not that the
		// request was at fault.
		de = &models.Error{Code: models.CodeServiceUnavailable, Message: "the service cannot reach its database right now; nothing was changed, try again shortly",
			RetryAfter: unavailableRetryAfter}
	case errors.Is(err, bus.ErrUnavailable):
		// What the request must do crosses to other servers (or reaches a
		// panel linked to one), and the bus between them is down.
		de = &models.Error{Code: models.CodeServiceUnavailable, Message: "the service cannot reach its message bus right now, so this cannot take effect on every server; nothing was changed, try again shortly",
			RetryAfter: unavailableRetryAfter}
	default:
		de = &models.Error{Code: models.CodeInternal, Message: "an internal error occurred; it has been logged"}
	}
	status, ok := problemStatus(de.Code)
	if !ok {
		status = fiber.StatusInternalServerError
	}
	p := Problem{
		Type:          "urn:panelsync:problem:" + de.Code,
		Title:         title(de.Code),
		Status:        status,
		Detail:        de.Message,
		Code:          de.Code,
		Field:         de.Field,
		ErrorsOmitted: de.DetailsOmitted,
	}
	for _, d := range de.Details {
		p.Errors = append(p.Errors, ProblemDetail{File: d.File, Row: d.Row, Column: d.Column, Message: d.Message})
	}
	return p, de
}

// NewErrorHandler returns the one Fiber error handler: it writes every
// error as application/problem+json and logs internal ones.
func NewErrorHandler(log *slog.Logger) fiber.ErrorHandler {
	return func(c *fiber.Ctx, err error) error {
		p, de := problemFor(err)
		p.RequestID = requestID(c)
		if p.Status >= 500 && !loadShed(c) {
			log.ErrorContext(c.UserContext(), "request failed",
				"request_id", p.RequestID, "method", c.Method(), "path", c.Path(), "error", err.Error())
		}
		if de.RetryAfter > 0 {
			c.Set(fiber.HeaderRetryAfter, strconv.Itoa(int(math.Ceil(de.RetryAfter.Seconds()))))
		}
		if p.Status == fiber.StatusUnauthorized {
			// Panels sign in with Basic credentials, people with tokens.
			switch {
			case strings.HasPrefix(c.Path(), "/device/"):
				c.Set(fiber.HeaderWWWAuthenticate, `Basic realm="panelsync-device"`)
			case de.Code == models.CodeTokenExpired:
				// RFC 6750's error attribute, for clients that read it
				// rather than the code.
				c.Set(fiber.HeaderWWWAuthenticate, `Bearer realm="panelsync", error="invalid_token", error_description="the access token expired"`)
			default:
				c.Set(fiber.HeaderWWWAuthenticate, `Bearer realm="panelsync"`)
			}
		}
		c.Status(p.Status)
		c.Set(fiber.HeaderContentType, "application/problem+json")
		return c.JSON(p, "application/problem+json")
	}
}

func title(code string) string {
	t, _ := problemTitle(code)
	return t
}
