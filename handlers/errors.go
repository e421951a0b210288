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

	"github.com/gofiber/fiber/v2"

	"github.com/panelsync/panelsync/models"
)

// problemStatus maps every error code to its HTTP status. It is the only
// place a status is chosen for an error.
var problemStatus = map[string]int{
	models.CodeInvalidRequest:            fiber.StatusBadRequest,
	models.CodeInvalidCredentials:        fiber.StatusUnauthorized,
	models.CodeUnauthorized:              fiber.StatusUnauthorized,
	models.CodeForbidden:                 fiber.StatusForbidden,
	models.CodeNotFound:                  fiber.StatusNotFound,
	models.CodeMethodNotAllowed:          fiber.StatusMethodNotAllowed,
	models.CodeConflict:                  fiber.StatusConflict,
	models.CodePanelDisconnected:         fiber.StatusConflict,
	models.CodePanelAuthorizationExpired: fiber.StatusConflict,
	models.CodePanelArmed:                fiber.StatusConflict,
	models.CodePayloadTooLarge:           fiber.StatusRequestEntityTooLarge,
	models.CodeUnsupportedMediaType:      fiber.StatusUnsupportedMediaType,
	models.CodeRateLimited:               fiber.StatusTooManyRequests,
	models.CodeServiceUnavailable:        fiber.StatusServiceUnavailable,
	models.CodeInternal:                  fiber.StatusInternalServerError,
}

// problemTitle is the short human summary of each code.
var problemTitle = map[string]string{
	models.CodeInvalidRequest:            "Invalid request",
	models.CodeInvalidCredentials:        "Invalid credentials",
	models.CodeUnauthorized:              "Unauthorized",
	models.CodeForbidden:                 "Forbidden",
	models.CodeNotFound:                  "Not found",
	models.CodeMethodNotAllowed:          "Method not allowed",
	models.CodeConflict:                  "Conflict",
	models.CodePanelDisconnected:         "Panel disconnected",
	models.CodePanelAuthorizationExpired: "Panel authorization expired",
	models.CodePanelArmed:                "Panel armed",
	models.CodePayloadTooLarge:           "Payload too large",
	models.CodeUnsupportedMediaType:      "Unsupported media type",
	models.CodeRateLimited:               "Too many requests",
	models.CodeServiceUnavailable:        "Service unavailable",
	models.CodeInternal:                  "Internal error",
}

// fiberErrorCode maps the errors Fiber raises itself (routing, body limit)
// onto the domain codes.
var fiberErrorCode = map[int]string{
	fiber.StatusBadRequest:            models.CodeInvalidRequest,
	fiber.StatusNotFound:              models.CodeNotFound,
	fiber.StatusMethodNotAllowed:      models.CodeMethodNotAllowed,
	fiber.StatusRequestEntityTooLarge: models.CodePayloadTooLarge,
	fiber.StatusUnsupportedMediaType:  models.CodeUnsupportedMediaType,
	fiber.StatusTooManyRequests:       models.CodeRateLimited,
	fiber.StatusServiceUnavailable:    models.CodeServiceUnavailable,
	fiber.StatusUpgradeRequired:       models.CodeInvalidRequest,
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
}

// problemFor converts any error into a problem document. Errors that are
// not domain errors are internal: their text is logged, never sent.
func problemFor(err error) (Problem, *models.Error) {
	var de *models.Error
	var fe *fiber.Error
	switch {
	case errors.As(err, &de):
	case errors.As(err, &fe):
		code, ok := fiberErrorCode[fe.Code]
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
	default:
		de = &models.Error{Code: models.CodeInternal, Message: "an internal error occurred; it has been logged"}
	}
	status, ok := problemStatus[de.Code]
	if !ok {
		status = fiber.StatusInternalServerError
	}
	return Problem{
		Type:   "urn:panelsync:problem:" + de.Code,
		Title:  problemTitle[de.Code],
		Status: status,
		Detail: de.Message,
		Code:   de.Code,
		Field:  de.Field,
	}, de
}

// NewErrorHandler returns the one Fiber error handler: it writes every
// error as application/problem+json and logs internal ones.
func NewErrorHandler(log *slog.Logger) fiber.ErrorHandler {
	return func(c *fiber.Ctx, err error) error {
		p, de := problemFor(err)
		p.RequestID = requestID(c)
		if p.Status >= 500 {
			log.ErrorContext(c.UserContext(), "request failed",
				"request_id", p.RequestID, "method", c.Method(), "path", c.Path(), "error", err.Error())
		}
		if de.RetryAfter > 0 {
			c.Set(fiber.HeaderRetryAfter, strconv.Itoa(int(math.Ceil(de.RetryAfter.Seconds()))))
		}
		if p.Status == fiber.StatusUnauthorized {
			// Panels sign in with Basic credentials, people with tokens.
			if strings.HasPrefix(c.Path(), "/device/") {
				c.Set(fiber.HeaderWWWAuthenticate, `Basic realm="panelsync-device"`)
			} else {
				c.Set(fiber.HeaderWWWAuthenticate, `Bearer realm="panelsync"`)
			}
		}
		c.Status(p.Status)
		c.Set(fiber.HeaderContentType, "application/problem+json")
		return c.JSON(p, "application/problem+json")
	}
}
