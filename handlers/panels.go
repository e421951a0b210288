package handlers

import (
	"encoding/json"
	"strconv"
	"strings"

	"github.com/gofiber/fiber/v2"

	"github.com/panelsync/panelsync/models"
	"github.com/panelsync/panelsync/panel"
)

// panelHandlers serve the remote copy of a location's panel: its users,
// configuration and last known status.
type panelHandlers struct {
	store *models.Store
}

func (h panelHandlers) users(c *fiber.Ctx) error {
	if err := allowQuery(c); err != nil {
		return err
	}
	v, err := h.store.Location(c.UserContext(), principal(c).AccountID, c.Params("id"))
	if err != nil {
		return err
	}
	users, err := h.store.PanelUsers(c.UserContext(), v.Location.ID)
	if err != nil {
		return err
	}
	out := PanelUsersResponse{Items: make([]PanelUserResponse, len(users)), SyncedAt: apiTimePtr(v.Location.UsersSyncedAt)}
	for i, u := range users {
		out.Items[i] = PanelUserResponse{
			Number:         u.UserNumber,
			Name:           u.Name,
			Email:          u.Email,
			Authority:      u.Authority,
			Partitions:     splitInts(u.Partitions),
			AccessSchedule: u.AccessSchedule,
			HasCode:        u.HasCode,
			LoginID:        u.LoginID,
			UpdatedAt:      apiTime(u.UpdatedAt),
		}
	}
	return c.JSON(out)
}

func (h panelHandlers) config(c *fiber.Ctx) error {
	if err := allowQuery(c); err != nil {
		return err
	}
	v, err := h.store.Location(c.UserContext(), principal(c).AccountID, c.Params("id"))
	if err != nil {
		return err
	}
	items, err := h.store.PanelConfigItems(c.UserContext(), v.Location.ID)
	if err != nil {
		return err
	}
	out := PanelConfigResponse{
		Partitions: []panel.Partition{}, Zones: []panel.Zone{}, Devices: []panel.Device{},
		SyncedAt: apiTimePtr(v.Location.PanelSyncedAt),
	}
	for _, it := range items {
		switch it.Kind {
		case "partition":
			out.Partitions = append(out.Partitions, panel.Partition{Number: it.Number, Name: it.Name})
		case "zone":
			out.Zones = append(out.Zones, panel.Zone{Number: it.Number, Name: it.Name, Type: it.Type, Partition: it.Partition})
		case "device":
			out.Devices = append(out.Devices, panel.Device{Number: it.Number, Name: it.Name, Type: it.Type})
		}
	}
	return c.JSON(out)
}

func (h panelHandlers) status(c *fiber.Ctx) error {
	if err := allowQuery(c); err != nil {
		return err
	}
	v, err := h.store.Location(c.UserContext(), principal(c).AccountID, c.Params("id"))
	if err != nil {
		return err
	}
	out := PanelStatusResponse{
		Connection:  string(v.Panel.Connection),
		LastSeenAt:  apiTimePtr(v.Panel.LastSeenAt),
		ArmedState:  v.Panel.ArmedState,
		RefreshedAt: apiTimePtr(v.Location.RefreshedAt),
	}
	if v.Panel.StatusJSON != "" {
		var st panel.Status
		if err := json.Unmarshal([]byte(v.Panel.StatusJSON), &st); err == nil {
			out.Status = &st
		}
	}
	return c.JSON(out)
}

func splitInts(s string) []int {
	out := []int{}
	for _, p := range strings.Split(s, ",") {
		if n, err := strconv.Atoi(p); err == nil {
			out = append(out, n)
		}
	}
	return out
}
