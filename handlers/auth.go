package handlers

import (
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/panelsync/panelsync/auth"
	"github.com/panelsync/panelsync/models"
)

type authHandlers struct {
	svc   *auth.Service
	store *models.Store
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
	p := principal(c)
	out := toMeResponse(p)
	acct, err := h.store.Account(c.UserContext(), p.AccountID)
	if err != nil {
		return err
	}
	out.AccountName = acct.Name
	if p.Role == models.RoleSupport && !p.IsAPIKey() {
		grants, err := h.store.GrantedAccounts(c.UserContext(), p.LoginID, time.Now().UTC())
		if err != nil {
			return err
		}
		out.HomeAccountID = p.HomeAccountID
		if out.HomeAccountID == "" {
			out.HomeAccountID = p.AccountID
		}
		list := make([]GrantedToMe, len(grants))
		for i, g := range grants {
			list[i] = GrantedToMe{AccountID: g.AccountID, AccountName: g.AccountName, ExpiresAt: apiTimePtr(g.ExpiresAt)}
		}
		out.Grants = &list
	}
	return c.JSON(out)
}

type acceptInvitationRequest struct {
	Token    *string `json:"token"`
	Password *string `json:"password"`
}

// acceptInvitation sets an invited login's password and answers the token
// pair, as a sign-in does.
func (h authHandlers) acceptInvitation(c *fiber.Ctx) error {
	var req acceptInvitationRequest
	if err := decodeJSON(c, &req); err != nil {
		return err
	}
	if err := required("token", req.Token); err != nil {
		return err
	}
	if err := required("password", req.Password); err != nil {
		return err
	}
	tokens, err := h.svc.AcceptInvitation(c.UserContext(), *req.Token, *req.Password)
	if err != nil {
		return err
	}
	c.Set(fiber.HeaderCacheControl, "no-store")
	return c.JSON(toTokenResponse(tokens))
}

type changePasswordRequest struct {
	CurrentPassword *string `json:"current_password"`
	NewPassword     *string `json:"new_password"`
}

func (h authHandlers) changePassword(c *fiber.Ctx) error {
	var req changePasswordRequest
	if err := decodeJSON(c, &req); err != nil {
		return err
	}
	if err := required("current_password", req.CurrentPassword); err != nil {
		return err
	}
	if err := required("new_password", req.NewPassword); err != nil {
		return err
	}
	if err := h.svc.ChangePassword(c.UserContext(), principal(c), c.IP(), *req.CurrentPassword, *req.NewPassword); err != nil {
		return err
	}
	return c.SendStatus(fiber.StatusNoContent)
}

type passwordResetRequest struct {
	Email *string `json:"email"`
}

// MessageResponse is an answer that only says what happens next.
type MessageResponse struct {
	Message string `json:"message"`
}

// requestPasswordReset answers the same for every well-formed e-mail, so
// it does not tell which ones have logins.
func (h authHandlers) requestPasswordReset(c *fiber.Ctx) error {
	var req passwordResetRequest
	if err := decodeJSON(c, &req); err != nil {
		return err
	}
	if err := required("email", req.Email); err != nil {
		return err
	}
	if err := h.svc.RequestPasswordReset(c.UserContext(), *req.Email); err != nil {
		return err
	}
	return c.Status(fiber.StatusAccepted).JSON(MessageResponse{
		Message: "If a login has that e-mail, a link to choose a new password is on its way",
	})
}

type confirmPasswordResetRequest struct {
	Token       *string `json:"token"`
	NewPassword *string `json:"new_password"`
}

func (h authHandlers) confirmPasswordReset(c *fiber.Ctx) error {
	var req confirmPasswordResetRequest
	if err := decodeJSON(c, &req); err != nil {
		return err
	}
	if err := required("token", req.Token); err != nil {
		return err
	}
	if err := required("new_password", req.NewPassword); err != nil {
		return err
	}
	if err := h.svc.ResetPassword(c.UserContext(), *req.Token, *req.NewPassword); err != nil {
		return err
	}
	return c.SendStatus(fiber.StatusNoContent)
}

// required refuses a missing or empty string field.
func required(field string, v *string) error {
	if v == nil || *v == "" {
		return models.FieldError(field, "%s is required", field)
	}
	return nil
}
