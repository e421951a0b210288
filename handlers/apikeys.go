package handlers

import (
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/panelsync/panelsync/auth"
	"github.com/panelsync/panelsync/models"
)

type apiKeyHandlers struct {
	auth  *auth.Service
	store *models.Store
	// revoked, when set, tells every node to close the key's live
	// connections.
	revoked func(keyID, accountID string) error
}

type createAPIKeyRequest struct {
	Name      *string  `json:"name"`
	Scopes    []string `json:"scopes"`
	ExpiresAt *string  `json:"expires_at"`
}

func (h apiKeyHandlers) create(c *fiber.Ctx) error {
	var req createAPIKeyRequest
	if err := decodeJSON(c, &req); err != nil {
		return err
	}
	if req.Name == nil {
		return models.FieldError("name", "name is required")
	}
	if req.Scopes == nil {
		return models.FieldError("scopes", "scopes is required: one or more of read, sync and import")
	}
	in := auth.NewAPIKey{Name: *req.Name, Scopes: req.Scopes}
	if req.ExpiresAt != nil {
		t, err := time.Parse(time.RFC3339, *req.ExpiresAt)
		if err != nil {
			return models.FieldError("expires_at", "expires_at must be an RFC 3339 time such as 2030-01-31T00:00:00Z")
		}
		in.ExpiresAt = &t
	}
	k, secret, err := h.auth.CreateAPIKey(c.UserContext(), actor(c), in)
	if err != nil {
		return err
	}
	c.Set(fiber.HeaderCacheControl, "no-store")
	c.Location("/v1/api-keys/" + k.ID)
	// The creator is the login making this request.
	p := principal(c)
	creator := models.LoginRef{ID: k.CreatedBy, Name: p.Name, Email: p.Email}
	return c.Status(fiber.StatusCreated).JSON(CreatedAPIKeyResponse{APIKey: toAPIKeyResponse(models.APIKeyView{APIKey: k, Creator: creator}), Secret: secret})
}

func (h apiKeyHandlers) list(c *fiber.Ctx) error {
	if err := allowQuery(c); err != nil {
		return err
	}
	keys, err := h.store.APIKeys(c.UserContext(), principal(c).AccountID)
	if err != nil {
		return err
	}
	out := APIKeyList{Items: make([]APIKeyResponse, len(keys))}
	for i, k := range keys {
		out.Items[i] = toAPIKeyResponse(k)
	}
	return c.JSON(out)
}

func (h apiKeyHandlers) get(c *fiber.Ctx) error {
	if err := allowQuery(c); err != nil {
		return err
	}
	k, err := h.store.APIKey(c.UserContext(), principal(c).AccountID, c.Params("id"))
	if err != nil {
		return err
	}
	return c.JSON(toAPIKeyResponse(k))
}

func (h apiKeyHandlers) revoke(c *fiber.Ctx) error {
	k, err := h.auth.RevokeAPIKey(c.UserContext(), actor(c), c.Params("id"))
	if err != nil {
		return err
	}
	if h.revoked != nil {
		if err := h.revoked(k.ID, k.AccountID); err != nil {
			return err
		}
	}
	return c.SendStatus(fiber.StatusNoContent)
}
