package handlers

import (
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/panelsync/panelsync/auth"
	"github.com/panelsync/panelsync/models"
)

type loginHandlers struct {
	auth  *auth.Service
	store *models.Store
}

// LoginResponse is the Login of the API contract. The password hash never
// leaves the server.
type LoginResponse struct {
	ID          string     `json:"id"`
	Email       string     `json:"email"`
	Name        string     `json:"name"`
	Role        string     `json:"role"`
	State       string     `json:"state"`
	CreatedAt   time.Time  `json:"created_at"`
	LastLoginAt *time.Time `json:"last_login_at"`
}

func toLoginResponse(l models.Login) LoginResponse {
	return LoginResponse{
		ID: l.ID, Email: l.Email, Name: l.Name, Role: string(l.Role), State: string(l.State()),
		CreatedAt: apiTime(l.CreatedAt), LastLoginAt: apiTimePtr(l.LastLoginAt),
	}
}

// LoginPage is one page of an account's logins.
type LoginPage struct {
	Items      []LoginResponse `json:"items"`
	NextCursor *string         `json:"next_cursor"`
}

// InvitedLoginResponse answers an invitation.
type InvitedLoginResponse struct {
	Login   LoginResponse `json:"login"`
	Message string        `json:"message"`
}

func (h loginHandlers) list(c *fiber.Ctx) error {
	if err := allowQuery(c, "cursor", "limit"); err != nil {
		return err
	}
	limit, err := queryLimit(c, models.DefaultLoginPageSize, models.MaxLoginPageSize)
	if err != nil {
		return err
	}
	logins, next, err := h.store.ListLogins(c.UserContext(), principal(c).AccountID, c.Query("cursor"), limit)
	if err != nil {
		return err
	}
	page := LoginPage{Items: make([]LoginResponse, len(logins))}
	for i, l := range logins {
		page.Items[i] = toLoginResponse(l)
	}
	if next != "" {
		page.NextCursor = &next
	}
	return c.JSON(page)
}

func (h loginHandlers) get(c *fiber.Ctx) error {
	if err := allowQuery(c); err != nil {
		return err
	}
	l, err := h.store.LoginInAccount(c.UserContext(), principal(c).AccountID, c.Params("id"), false)
	if err != nil {
		return err
	}
	return c.JSON(toLoginResponse(l))
}

type inviteRequest struct {
	Email *string `json:"email"`
	Name  *string `json:"name"`
	Role  *string `json:"role"`
}

func (h loginHandlers) invite(c *fiber.Ctx) error {
	var req inviteRequest
	if err := decodeJSON(c, &req); err != nil {
		return err
	}
	if err := required("email", req.Email); err != nil {
		return err
	}
	if err := required("name", req.Name); err != nil {
		return err
	}
	if err := required("role", req.Role); err != nil {
		return err
	}
	issued, err := h.auth.Invite(c.UserContext(), actor(c), auth.Invitation{Email: *req.Email, Name: *req.Name, Role: models.Role(*req.Role)})
	if err != nil {
		return err
	}
	c.Location("/v1/logins/" + issued.Login.ID)
	return c.Status(fiber.StatusCreated).JSON(InvitedLoginResponse{
		Login: toLoginResponse(issued.Login), Message: "Invitation sent to " + issued.Login.Email,
	})
}

func (h loginHandlers) resendInvitation(c *fiber.Ctx) error {
	issued, err := h.auth.ResendInvitation(c.UserContext(), actor(c), c.Params("id"))
	if err != nil {
		return err
	}
	return c.Status(fiber.StatusAccepted).JSON(InvitedLoginResponse{
		Login: toLoginResponse(issued.Login), Message: "Invitation sent to " + issued.Login.Email,
	})
}

type updateLoginRequest struct {
	Name *string `json:"name"`
	Role *string `json:"role"`
}

func (h loginHandlers) update(c *fiber.Ctx) error {
	var req updateLoginRequest
	if err := decodeJSON(c, &req); err != nil {
		return err
	}
	ch := auth.LoginChange{Name: req.Name}
	if req.Role != nil {
		role := models.Role(*req.Role)
		ch.Role = &role
	}
	l, err := h.auth.UpdateLogin(c.UserContext(), actor(c), c.Params("id"), ch)
	if err != nil {
		return err
	}
	return c.JSON(toLoginResponse(l))
}

func (h loginHandlers) deactivate(c *fiber.Ctx) error {
	l, err := h.auth.Deactivate(c.UserContext(), actor(c), c.Params("id"))
	if err != nil {
		return err
	}
	return c.JSON(toLoginResponse(l))
}

func (h loginHandlers) reactivate(c *fiber.Ctx) error {
	l, err := h.auth.Reactivate(c.UserContext(), actor(c), c.Params("id"))
	if err != nil {
		return err
	}
	return c.JSON(toLoginResponse(l))
}
