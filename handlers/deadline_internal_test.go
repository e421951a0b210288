package handlers

import (
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/panelsync/panelsync/models"
)

func TestBoundRequests_WorkPastTheBound_Answers503WithRetryAfter(t *testing.T) {
	const bound = 200 * time.Millisecond
	app := fiber.New(fiber.Config{ErrorHandler: NewErrorHandler(slog.New(slog.DiscardHandler)), BodyLimit: importBodyLimit})
	app.Use(boundRequests(bound))
	// A call that waits on the database until its context ends and then
	// says so in words of its own, as SQLite does ("interrupted").
	app.Get("/wait", func(c *fiber.Ctx) error {
		<-c.UserContext().Done()
		return errors.New("interrupted (9)")
	})
	// An answer the handler chose stays what it is, deadline or not.
	app.Get("/refused", func(c *fiber.Ctx) error {
		<-c.UserContext().Done()
		return models.Errorf(models.CodeConflict, "no")
	})
	// An upload is given time for its size on top of the bound.
	app.Post(importPath, func(c *fiber.Ctx) error {
		deadline, _ := c.UserContext().Deadline()
		return c.SendString(time.Until(deadline).Round(100 * time.Millisecond).String())
	})

	start := time.Now()
	resp, err := app.Test(httptest.NewRequest("GET", "/wait", nil), 10_000)
	if err != nil {
		t.Fatalf("the request did not end: %v", err)
	}
	elapsed := time.Since(start)
	var p Problem
	if err := json.NewDecoder(resp.Body).Decode(&p); err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusServiceUnavailable || p.Code != models.CodeServiceUnavailable || resp.Header.Get("Retry-After") != "5" {
		t.Errorf("work past the bound: %d %q Retry-After %q", resp.StatusCode, p.Code, resp.Header.Get("Retry-After"))
	}
	if elapsed < bound || elapsed > bound+2*time.Second {
		t.Errorf("answered after %s; the bound is %s", elapsed, bound)
	}

	resp, err = app.Test(httptest.NewRequest("GET", "/refused", nil), 10_000)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusConflict {
		t.Errorf("a domain answer after the bound became %d", resp.StatusCode)
	}

	body := strings.NewReader(strings.Repeat("x", 10<<20))
	resp, err = app.Test(httptest.NewRequest("POST", importPath, body), 10_000)
	if err != nil {
		t.Fatal(err)
	}
	left, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := string(left), (bound + 10*importTimePerMiB).String(); got != want {
		t.Errorf("a 10 MiB upload has %s to run, want %s", got, want)
	}
}
