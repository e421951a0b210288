package handlers

import (
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/panelsync/panelsync/models"
)

type staffHandlers struct {
	store *models.Store
	// revoked tells every node to close the login's live connections to
	// the account.
	revoked func(loginID, accountID string) error
}

type grantRequest struct {
	Email     *string    `json:"email"`
	ExpiresAt *time.Time `json:"expires_at"`
}

// StaffGrantResponse is one support login's access to the account, with
// whom it is for.
type StaffGrantResponse struct {
	ID         string `json:"id"`
	LoginID    string `json:"login_id"`
	LoginEmail string `json:"login_email"`
	LoginName  string `json:"login_name"`
	// Email repeats LoginEmail in the answer to a grant, where clients
	// have read it from the start.
	Email     string     `json:"email,omitempty"`
	ExpiresAt *time.Time `json:"expires_at"`
	CreatedAt time.Time  `json:"created_at"`
}

func toStaffGrantResponse(g models.StaffGrantView) StaffGrantResponse {
	return StaffGrantResponse{
		ID: g.ID, LoginID: g.LoginID, LoginEmail: g.LoginEmail, LoginName: g.LoginName,
		ExpiresAt: apiTimePtr(g.ExpiresAt), CreatedAt: apiTime(g.CreatedAt),
	}
}

func (h staffHandlers) grant(c *fiber.Ctx) error {
	var req grantRequest
	if err := decodeJSON(c, &req); err != nil {
		return err
	}
	if req.Email == nil || strings.TrimSpace(*req.Email) == "" {
		return models.FieldError("email", "email of the support login is required")
	}
	if req.ExpiresAt != nil && !req.ExpiresAt.After(time.Now()) {
		return models.FieldError("expires_at", "expires_at must be in the future")
	}
	g, login, err := h.store.GrantStaff(c.UserContext(), actor(c), *req.Email, req.ExpiresAt)
	if err != nil {
		return err
	}
	out := toStaffGrantResponse(models.StaffGrantView{StaffGrant: g, LoginEmail: login.Email, LoginName: login.Name})
	out.Email = login.Email
	return c.Status(fiber.StatusCreated).JSON(out)
}

func (h staffHandlers) list(c *fiber.Ctx) error {
	if err := allowQuery(c); err != nil {
		return err
	}
	grants, err := h.store.StaffGrants(c.UserContext(), principal(c).AccountID)
	if err != nil {
		return err
	}
	out := struct {
		Items []StaffGrantResponse `json:"items"`
	}{Items: make([]StaffGrantResponse, len(grants))}
	for i, g := range grants {
		out.Items[i] = toStaffGrantResponse(g)
	}
	return c.JSON(out)
}

func (h staffHandlers) revoke(c *fiber.Ctx) error {
	g, err := h.store.RevokeStaffGrant(c.UserContext(), actor(c), c.Params("id"))
	if err != nil {
		return err
	}
	if err := h.revoked(g.LoginID, g.AccountID); err != nil {
		return err
	}
	return c.SendStatus(fiber.StatusNoContent)
}
