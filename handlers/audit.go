package handlers

import (
	"encoding/json"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/panelsync/panelsync/models"
)

type auditHandlers struct {
	store *models.Store
}

// AuditActor is who made an audited change.
type AuditActor struct {
	Kind string `json:"kind"`
	ID   string `json:"id"`
	Name string `json:"name"`
}

// AuditTarget is the record an audited change was made to.
type AuditTarget struct {
	Type string `json:"type"`
	ID   string `json:"id"`
	Name string `json:"name"`
}

// AuditEntryResponse is the AuditEntry of the API contract.
type AuditEntryResponse struct {
	ID         string          `json:"id"`
	OccurredAt time.Time       `json:"occurred_at"`
	Actor      AuditActor      `json:"actor"`
	Action     string          `json:"action"`
	Target     AuditTarget     `json:"target"`
	Before     json.RawMessage `json:"before"`
	After      json.RawMessage `json:"after"`
	RequestID  string          `json:"request_id"`
}

// AuditPage is one page of the audit log, newest first.
type AuditPage struct {
	Items      []AuditEntryResponse `json:"items"`
	NextBefore *string              `json:"next_before"`
}

func toAuditEntryResponse(e models.AuditEntry) AuditEntryResponse {
	return AuditEntryResponse{
		ID:         e.ID,
		OccurredAt: apiTime(e.CreatedAt),
		Actor:      AuditActor{Kind: e.ActorKind, ID: e.ActorID, Name: e.ActorName},
		Action:     e.Action,
		Target:     AuditTarget{Type: e.TargetType, ID: e.TargetID, Name: e.TargetName},
		Before:     rawOrNull(e.Before),
		After:      rawOrNull(e.After),
		RequestID:  e.RequestID,
	}
}

func rawOrNull(s string) json.RawMessage {
	if s == "" {
		return json.RawMessage("null")
	}
	return json.RawMessage(s)
}

func (h auditHandlers) list(c *fiber.Ctx) error {
	if err := allowQuery(c, "target_type", "target_id", "actor_id", "action", "before", "limit"); err != nil {
		return err
	}
	limit, err := queryLimit(c, models.DefaultAuditPageSize, models.MaxAuditPageSize)
	if err != nil {
		return err
	}
	q := models.AuditQuery{
		AccountID:  principal(c).AccountID,
		TargetType: c.Query("target_type"),
		TargetID:   c.Query("target_id"),
		ActorID:    c.Query("actor_id"),
		Action:     c.Query("action"),
		Before:     c.Query("before"),
		Limit:      limit,
	}
	if q.TargetID != "" && q.TargetType == "" {
		return models.FieldError("target_id", "target_id needs target_type (such as location, login, api_key, run)")
	}
	entries, next, err := h.store.ListAudit(c.UserContext(), q)
	if err != nil {
		return err
	}
	page := AuditPage{Items: make([]AuditEntryResponse, len(entries))}
	for i, e := range entries {
		page.Items[i] = toAuditEntryResponse(e)
	}
	if next != "" {
		page.NextBefore = &next
	}
	return c.JSON(page)
}
