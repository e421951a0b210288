package handlers

import (
	"github.com/gofiber/fiber/v2"

	"github.com/panelsync/panelsync/auth"
	"github.com/panelsync/panelsync/models"
)

type authHandlers struct {
	svc *auth.Service
}

type loginRequest struct {
	Email    *string `json:"email"`
	Password *string `json:"password"`
}

type refreshRequest struct {
	RefreshToken *string `json:"refresh_token"`
}

func (h authHandlers) login(c *fiber.Ctx) error {
	var req loginRequest
	if err := decodeJSON(c, &req); err != nil {
		return err
	}
	if req.Email == nil || *req.Email == "" {
		return models.FieldError("email", "email is required")
	}
	if req.Password == nil || *req.Password == "" {
		return models.FieldError("password", "password is required")
	}
	tokens, err := h.svc.Login(c.UserContext(), *req.Email, *req.Password, c.IP())
	if err != nil {
		return err
	}
	c.Set(fiber.HeaderCacheControl, "no-store")
	return c.JSON(toTokenResponse(tokens))
}

func (h authHandlers) refresh(c *fiber.Ctx) error {
	var req refreshRequest
	if err := decodeJSON(c, &req); err != nil {
		return err
	}
	if req.RefreshToken == nil || *req.RefreshToken == "" {
		return models.FieldError("refresh_token", "refresh_token is required")
	}
	tokens, err := h.svc.Refresh(c.UserContext(), *req.RefreshToken)
	if err != nil {
		return err
	}
	c.Set(fiber.HeaderCacheControl, "no-store")
	return c.JSON(toTokenResponse(tokens))
}

func (h authHandlers) logout(c *fiber.Ctx) error {
	if err := h.svc.Logout(c.UserContext(), principal(c)); err != nil {
		return err
	}
	return c.SendStatus(fiber.StatusNoContent)
}

func (h authHandlers) me(c *fiber.Ctx) error {
	if err := allowQuery(c); err != nil {
		return err
	}
	return c.JSON(toMeResponse(principal(c)))
}
