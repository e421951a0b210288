package handlers

import (
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/panelsync/panelsync/models"
	"github.com/panelsync/panelsync/syncer"
)

type batchHandlers struct {
	engine *syncer.Engine
}

type scopeRequest struct {
	Kind        *string  `json:"kind"`
	Scope       *string  `json:"scope"`
	Group       *string  `json:"group"`
	LocationIDs []string `json:"location_ids"`
}

// BatchResponse is the Batch of the API contract.
type BatchResponse struct {
	ID          string     `json:"id"`
	Kind        string     `json:"kind"`
	Scope       string     `json:"scope"`
	Group       string     `json:"group,omitempty"`
	State       string     `json:"state"`
	Total       int        `json:"total"`
	Queued      int        `json:"queued"`
	Running     int        `json:"running"`
	Succeeded   int        `json:"succeeded"`
	Failed      int        `json:"failed"`
	Cancelled   int        `json:"cancelled"`
	Skipped     int        `json:"skipped"`
	RequestedBy string     `json:"requested_by"`
	CreatedAt   time.Time  `json:"created_at"`
	FinishedAt  *time.Time `json:"finished_at"`
}

// BatchPage is one page of batches, newest first.
type BatchPage struct {
	Items      []BatchResponse `json:"items"`
	NextCursor *string         `json:"next_cursor"`
}

// BatchStartResponse answers an All-Locations request.
type BatchStartResponse struct {
	Batch   BatchResponse `json:"batch"`
	Message string        `json:"message"`
}

// ForceSyncResponse answers a forced sync request.
type ForceSyncResponse struct {
	Message string `json:"message"`
	Flagged *int   `json:"flagged,omitempty"`
}

func toBatchResponse(st syncer.BatchStatus) BatchResponse {
	b := st.Batch
	return BatchResponse{
		ID: b.ID, Kind: string(b.Kind), Scope: b.Scope, Group: b.GroupName, State: b.State,
		Total: b.Total - b.Skipped, Queued: st.Queued, Running: st.Running, Succeeded: st.Succeeded,
		Failed: st.Failed, Cancelled: st.Cancelled, Skipped: b.Skipped, RequestedBy: b.RequestedBy,
		CreatedAt: apiTime(b.CreatedAt), FinishedAt: apiTimePtr(b.FinishedAt),
	}
}

func parseScope(req scopeRequest) (string, string, error) {
	if req.Scope == nil {
		return "", "", models.FieldError("scope", "scope is required: all, group or locations")
	}
	group := ""
	if req.Group != nil {
		g, err := models.Label("group", *req.Group, models.MaxGroupRunes, false)
		if err != nil {
			return "", "", err
		}
		group = g
	}
	if *req.Scope != models.ScopeLocations && len(req.LocationIDs) > 0 {
		return "", "", models.FieldError("location_ids", "location_ids only go with scope locations")
	}
	return *req.Scope, group, nil
}

func (h batchHandlers) start(c *fiber.Ctx) error {
	var req scopeRequest
	if err := decodeJSON(c, &req); err != nil {
		return err
	}
	if req.Kind == nil {
		return models.FieldError("kind", "kind is required: users, panel or refresh")
	}
	kind, err := syncer.ParseKind(*req.Kind)
	if err != nil {
		return err
	}
	scope, group, err := parseScope(req)
	if err != nil {
		return err
	}
	st, err := h.engine.StartBatch(c.UserContext(), actor(c), syncer.BatchRequest{Kind: kind, Scope: scope, Group: group, LocationIDs: req.LocationIDs, Trigger: trigger(c)})
	if err != nil {
		return err
	}
	c.Location("/v1/batches/" + st.Batch.ID)
	return c.Status(fiber.StatusAccepted).JSON(BatchStartResponse{Batch: toBatchResponse(st), Message: syncer.InitiatedMessage(kind)})
}

// list pages the account's batches, newest first, for a person following
// what was asked of all their locations.
func (h batchHandlers) list(c *fiber.Ctx) error {
	if err := allowQuery(c, "cursor", "limit"); err != nil {
		return err
	}
	limit, err := queryLimit(c, 50, 200)
	if err != nil {
		return err
	}
	q := models.BatchQuery{AccountID: principal(c).AccountID, Before: c.Query("cursor"), Limit: limit}
	if err := checkIDCursor(q.Before); err != nil {
		return err
	}
	batches, next, err := h.engine.Batches(c.UserContext(), q)
	if err != nil {
		return err
	}
	page := BatchPage{Items: make([]BatchResponse, len(batches))}
	for i, st := range batches {
		page.Items[i] = toBatchResponse(st)
	}
	if next != "" {
		page.NextCursor = &next
	}
	return c.JSON(page)
}

func (h batchHandlers) get(c *fiber.Ctx) error {
	if err := allowQuery(c); err != nil {
		return err
	}
	st, err := h.engine.Batch(c.UserContext(), principal(c).AccountID, c.Params("id"))
	if err != nil {
		return err
	}
	return c.JSON(toBatchResponse(st))
}

func (h batchHandlers) cancel(c *fiber.Ctx) error {
	st, err := h.engine.CancelBatch(c.UserContext(), actor(c), c.Params("id"))
	if err != nil {
		return err
	}
	return c.JSON(toBatchResponse(st))
}

func (h batchHandlers) forceOne(c *fiber.Ctx) error {
	if _, err := h.engine.ForceSync(c.UserContext(), actor(c), models.ScopeLocations, "", []string{c.Params("id")}); err != nil {
		if models.ErrorCode(err) == models.CodeNotFound {
			return models.NotFound("location")
		}
		return err
	}
	return c.Status(fiber.StatusAccepted).JSON(ForceSyncResponse{Message: "Users will sync on next check-in"})
}

func (h batchHandlers) forceScope(c *fiber.Ctx) error {
	var req scopeRequest
	if err := decodeJSON(c, &req); err != nil {
		return err
	}
	if req.Kind != nil && *req.Kind != string(models.RunUsers) {
		return models.FieldError("kind", "a forced sync is always a users sync")
	}
	scope, group, err := parseScope(req)
	if err != nil {
		return err
	}
	n, err := h.engine.ForceSync(c.UserContext(), actor(c), scope, group, req.LocationIDs)
	if err != nil {
		return err
	}
	return c.Status(fiber.StatusAccepted).JSON(ForceSyncResponse{Message: "Users will sync on next check-in", Flagged: &n})
}
