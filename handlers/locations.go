package handlers

import (
	"net/url"
	"strconv"

	"github.com/gofiber/fiber/v2"

	"github.com/panelsync/panelsync/auth"
	"github.com/panelsync/panelsync/models"
)

type locationHandlers struct {
	store *models.Store
}

type locationSettingsRequest struct {
	SyncIntervalMinutes    *int      `json:"sync_interval_minutes"`
	AutoApply              *bool     `json:"auto_apply"`
	ForceUpdateAll         *bool     `json:"force_update_all"`
	SafetyThresholdPercent *int      `json:"safety_threshold_percent"`
	SafetyThresholdCount   *int      `json:"safety_threshold_count"`
	ReportEmails           *[]string `json:"report_emails"`
}

type createLocationRequest struct {
	Name        *string                  `json:"name"`
	Group       *string                  `json:"group"`
	PanelSerial *string                  `json:"panel_serial"`
	Settings    *locationSettingsRequest `json:"settings"`
}

type updateLocationRequest struct {
	Name     *string                  `json:"name"`
	Group    *string                  `json:"group"`
	Rank     *int                     `json:"rank"`
	Settings *locationSettingsRequest `json:"settings"`
}

type groupRankRequest struct {
	Rank *int `json:"rank"`
}

func settingsFrom(name, group *string, s *locationSettingsRequest) models.LocationSettings {
	out := models.LocationSettings{Name: name, Group: group}
	if s != nil {
		out.SyncIntervalMinutes = s.SyncIntervalMinutes
		out.AutoApply = s.AutoApply
		out.ForceUpdateAll = s.ForceUpdateAll
		out.SafetyThresholdPercent = s.SafetyThresholdPercent
		out.SafetyThresholdCount = s.SafetyThresholdCount
		out.ReportEmails = s.ReportEmails
	}
	return out
}

func (h locationHandlers) list(c *fiber.Ctx) error {
	if err := allowQuery(c, "cursor", "limit", "group"); err != nil {
		return err
	}
	limit, err := queryLimit(c, models.DefaultLocationPageSize, models.MaxLocationPageSize)
	if err != nil {
		return err
	}
	q := models.LocationQuery{AccountID: principal(c).AccountID, Cursor: c.Query("cursor"), Limit: limit}
	if c.Request().URI().QueryArgs().Has("group") {
		g, err := models.Label("group", c.Query("group"), models.MaxGroupRunes, false)
		if err != nil {
			return err
		}
		q.Group = &g
	}
	views, next, err := h.store.ListLocations(c.UserContext(), q)
	if err != nil {
		return err
	}
	items, err := locationResponses(c.UserContext(), h.store, views)
	if err != nil {
		return err
	}
	page := LocationPage{Items: items}
	if next != "" {
		page.NextCursor = &next
	}
	return c.JSON(page)
}

func (h locationHandlers) get(c *fiber.Ctx) error {
	if err := allowQuery(c); err != nil {
		return err
	}
	v, err := h.store.Location(c.UserContext(), principal(c).AccountID, c.Params("id"))
	if err != nil {
		return err
	}
	return h.respond(c, v)
}

func (h locationHandlers) create(c *fiber.Ctx) error {
	var req createLocationRequest
	if err := decodeJSON(c, &req); err != nil {
		return err
	}
	if req.PanelSerial == nil {
		return models.FieldError("panel_serial", "panel_serial is required")
	}
	secret, secretDigest := auth.NewDeviceSecret()
	v, err := h.store.CreateLocation(c.UserContext(), actor(c), models.NewLocation{
		Settings:    settingsFrom(req.Name, req.Group, req.Settings),
		PanelSerial: *req.PanelSerial,
		SecretHash:  secretDigest,
	})
	if err != nil {
		return err
	}
	c.Set(fiber.HeaderCacheControl, "no-store")
	c.Location("/v1/locations/" + v.Location.ID)
	// A new location has synced nothing yet: its status points at no run.
	return c.Status(fiber.StatusCreated).JSON(CreatedLocationResponse{Location: toLocationResponse(v, models.SyncCause{}), DeviceSecret: secret})
}

func (h locationHandlers) update(c *fiber.Ctx) error {
	var req updateLocationRequest
	if err := decodeJSON(c, &req); err != nil {
		return err
	}
	if req.Name == nil && req.Group == nil && req.Rank == nil && req.Settings == nil {
		return models.Errorf(models.CodeInvalidRequest, "nothing to update: send name, group, rank or settings")
	}
	set := settingsFrom(req.Name, req.Group, req.Settings)
	set.Rank = req.Rank
	v, err := h.store.UpdateLocation(c.UserContext(), actor(c), c.Params("id"), set)
	if err != nil {
		return err
	}
	return h.respond(c, v)
}

// respond answers with the location as it stands.
func (h locationHandlers) respond(c *fiber.Ctx, v models.LocationView) error {
	resp, err := locationResponse(c.UserContext(), h.store, v)
	if err != nil {
		return err
	}
	return c.JSON(resp)
}

// setGroupRank gives every location of a group one rank.
func (h locationHandlers) setGroupRank(c *fiber.Ctx) error {
	var req groupRankRequest
	if err := decodeJSON(c, &req); err != nil {
		return err
	}
	if req.Rank == nil {
		return models.FieldError("rank", "rank is required")
	}
	// The group is a path segment: a name with spaces or slashes arrives
	// escaped.
	group, err := url.PathUnescape(c.Params("name"))
	if err != nil {
		return models.FieldError("name", "the group name in the path is not validly escaped")
	}
	n, err := h.store.SetGroupRank(c.UserContext(), actor(c), group, *req.Rank)
	if err != nil {
		return err
	}
	return c.JSON(GroupRankResponse{Group: group, Rank: *req.Rank, Locations: n})
}

// queryLimit reads ?limit=, defaulting and bounding it.
func queryLimit(c *fiber.Ctx, def, maxLimit int) (int, error) {
	raw := c.Query("limit")
	if raw == "" {
		return def, nil
	}
	n, err := strconv.Atoi(raw)
	if err != nil || n < 1 || n > maxLimit {
		return 0, models.FieldError("limit", "limit must be an integer from 1 to %d", maxLimit)
	}
	return n, nil
}
