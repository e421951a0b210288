package handlers

import (
	"strconv"

	"github.com/gofiber/fiber/v2"

	"github.com/panelsync/panelsync/models"
	"github.com/panelsync/panelsync/realtime"
)

type eventHandlers struct {
	store *models.Store
}

// list pages the Event Log: with after, oldest first from the offset after
// it (a client catching up); with before, or with order=newest, newest
// first (a person scrolling back from the latest entry).
func (h eventHandlers) list(c *fiber.Ctx) error {
	if err := allowQuery(c, "location_id", "type", "after", "before", "order", "limit"); err != nil {
		return err
	}
	limit, err := queryLimit(c, 100, 1000)
	if err != nil {
		return err
	}
	p := principal(c)
	q := models.EventQuery{AccountID: p.AccountID, LocationID: c.Query("location_id"), Type: c.Query("type"), Limit: limit}
	after, err := queryOffset(c, "after")
	if err != nil {
		return err
	}
	before, err := queryOffset(c, "before")
	if err != nil {
		return err
	}
	if after != nil && before != nil {
		return models.FieldError("before", "give after or before, not both")
	}
	switch order := c.Query("order"); order {
	case "":
	case "newest":
		if after != nil {
			return models.FieldError("order", "order=newest pages back from the latest entry and cannot start after an offset; leave after out, or page with before")
		}
		q.Newest = true
	case "oldest":
		if before != nil {
			return models.FieldError("order", "before pages newest first; leave order out or send order=newest with it")
		}
	default:
		return models.FieldError("order", "order must be newest or oldest")
	}
	if after == nil && before == nil && !q.Newest {
		zero := int64(0)
		after = &zero
	}
	q.After, q.Before = after, before
	if q.LocationID != "" {
		if _, err := h.store.Location(c.UserContext(), p.AccountID, q.LocationID); err != nil {
			return err
		}
	}
	events, err := h.store.ListEvents(c.UserContext(), q)
	if err != nil {
		return err
	}
	page := EventPage{Items: make([]realtime.Event, len(events))}
	for i, e := range events {
		page.Items[i] = realtime.NewEvent(e)
	}
	if after != nil {
		next := *after
		if len(events) > 0 {
			next = events[len(events)-1].Offset
		}
		page.NextAfter = &next
	} else if len(events) == limit {
		next := events[len(events)-1].Offset
		page.NextBefore = &next
	}
	return c.JSON(page)
}

func queryOffset(c *fiber.Ctx, name string) (*int64, error) {
	raw := c.Query(name)
	if raw == "" {
		return nil, nil
	}
	n, err := strconv.ParseInt(raw, 10, 64)
	if err != nil || n < 0 {
		return nil, models.FieldError(name, "%s must be a non-negative event offset", name)
	}
	return &n, nil
}
