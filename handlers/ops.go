package handlers

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/panelsync/panelsync/models"
	"github.com/panelsync/panelsync/syncer"
)

type opsHandlers struct {
	log       *slog.Logger
	readiness []ReadinessCheck
	openapi   []byte
	docs      []byte
	asset     func(name string) ([]byte, string, bool)
	// stranded reports the ranks no running node serves, as of the
	// engine's last check; nil on a node without an engine.
	stranded func() []syncer.StrandedRank
}

// healthz says the process is alive; it checks nothing else so that a
// slow database never gets a live process restarted.
func (h opsHandlers) healthz(c *fiber.Ctx) error {
	return c.JSON(HealthResponse{Status: "ok"})
}

// readyz says whether this node should receive traffic: every dependency
// answers and the schema is current. The checks run at once, each with
// the whole bound, so that a dependency that does not answer is reported
// in about the bound and does not leave the others without time.
func (h opsHandlers) readyz(c *fiber.Ctx) error {
	ctx, cancel := context.WithTimeout(c.UserContext(), 2*time.Second)
	defer cancel()
	failures := make([]error, len(h.readiness))
	var wg sync.WaitGroup
	for i, chk := range h.readiness {
		wg.Add(1)
		go func() {
			defer wg.Done()
			failures[i] = chk.Check(ctx)
		}()
	}
	wg.Wait()
	resp := HealthResponse{Status: "ready", Checks: map[string]string{}}
	for i, chk := range h.readiness {
		if err := failures[i]; err != nil {
			// The route is public, so the answer names the failing check
			// and the log keeps its detail (addresses, driver errors).
			resp.Status = "not_ready"
			resp.Checks[chk.Name] = "failing"
			h.log.WarnContext(ctx, "readiness check failing", "check", chk.Name, "error", err.Error())
			continue
		}
		resp.Checks[chk.Name] = "ok"
	}
	if h.stranded != nil {
		for _, r := range h.stranded() {
			resp.StrandedRanks = append(resp.StrandedRanks, StrandedRankResponse{Rank: r.Rank, Queued: r.Queued})
		}
	}
	if resp.Status != "ready" {
		c.Status(fiber.StatusServiceUnavailable)
	}
	return c.JSON(resp)
}

func (h opsHandlers) openAPI(c *fiber.Ctx) error {
	c.Set(fiber.HeaderContentType, "application/yaml; charset=utf-8")
	return c.Send(h.openapi)
}

func (h opsHandlers) docsPage(c *fiber.Ctx) error {
	c.Set(fiber.HeaderContentType, fiber.MIMETextHTMLCharsetUTF8)
	return c.Send(h.docs)
}

func (h opsHandlers) docsAsset(c *fiber.Ctx) error {
	body, contentType, ok := h.asset(c.Params("name"))
	if !ok {
		return models.NotFound("asset")
	}
	c.Set(fiber.HeaderContentType, contentType)
	c.Set(fiber.HeaderCacheControl, "public, max-age=86400")
	return c.Send(body)
}
