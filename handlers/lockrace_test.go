package handlers_test

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"

	gomysql "github.com/go-sql-driver/mysql"
	"github.com/gofiber/fiber/v2"

	"github.com/panelsync/panelsync/handlers"
)

// TestErrorHandler_LockRaceLeftAfterRetries_Answers503WithRetryAfter: a
// deadlock or lock wait timeout that Tx could not get past by running the
// transaction again is contention that will pass: the client is told to
// retry, not that the server failed.
func TestErrorHandler_LockRaceLeftAfterRetries_Answers503WithRetryAfter(t *testing.T) {
	for _, number := range []uint16{1213, 1205} {
		app := fiber.New(fiber.Config{ErrorHandler: handlers.NewErrorHandler(slog.New(slog.DiscardHandler))})
		app.Post("/tap", func(c *fiber.Ctx) error {
			return fmt.Errorf("enqueue run: %w", &gomysql.MySQLError{Number: number, Message: "lost a lock race"})
		})
		resp, err := app.Test(httptest.NewRequest(http.MethodPost, "/tap", nil))
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		var p struct {
			Code string `json:"code"`
		}
		_ = json.Unmarshal(body, &p)
		if resp.StatusCode != http.StatusServiceUnavailable || p.Code != "service_unavailable" || resp.Header.Get("Retry-After") == "" {
			t.Errorf("error %d: %d Retry-After %q %s, want 503 service_unavailable with Retry-After", number, resp.StatusCode, resp.Header.Get("Retry-After"), body)
		}
	}
}
