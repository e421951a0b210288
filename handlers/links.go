package handlers

import (
	"github.com/gofiber/fiber/v2"
	"github.com/google/uuid"

	"github.com/panelsync/panelsync/models"
	"github.com/panelsync/panelsync/syncer"
)

type linkHandlers struct {
	store  *models.Store
	engine *syncer.Engine
}

// LinkOptionsResponse says what is kept in sync for a linked person.
type LinkOptionsResponse struct {
	Code       bool   `json:"code"`
	Schedule   bool   `json:"schedule"`
	Partitions bool   `json:"partitions"`
	Propagate  string `json:"propagate"`
}

// LinkResponse is the Link of the API contract.
type LinkResponse struct {
	ID         string              `json:"id"`
	LoginID    string              `json:"login_id"`
	LocationID string              `json:"location_id"`
	UserNumber int                 `json:"user_number"`
	State      string              `json:"state"`
	Options    LinkOptionsResponse `json:"options"`
}

// LinkPage is one page of links.
type LinkPage struct {
	Items      []LinkResponse `json:"items"`
	NextCursor *string        `json:"next_cursor"`
}

// LinkUserResponse is a panel user Auto Link could not link.
type LinkUserResponse struct {
	LocationID   string `json:"location_id"`
	LocationName string `json:"location_name"`
	UserNumber   int    `json:"user_number"`
	Name         string `json:"name"`
	Email        string `json:"email"`
}

// AmbiguousUserResponse is a panel user with more than one possible login.
type AmbiguousUserResponse struct {
	LinkUserResponse
	LoginIDs []string `json:"login_ids"`
	Reason   string   `json:"reason"`
}

// AutoLinkResponse answers Auto Link Users.
type AutoLinkResponse struct {
	Drafts    []LinkResponse          `json:"drafts"`
	Unmatched []LinkUserResponse      `json:"unmatched"`
	Ambiguous []AmbiguousUserResponse `json:"ambiguous"`
}

// LinkOptionsChangeResponse answers Save Users Options: the link, and the
// batch that puts the person on other locations when propagation starts.
type LinkOptionsChangeResponse struct {
	LinkResponse
	Propagation *BatchResponse `json:"propagation"`
}

func toLinkResponse(l models.Link) LinkResponse {
	return LinkResponse{
		ID: l.ID, LoginID: l.LoginID, LocationID: l.LocationID, UserNumber: l.UserNumber, State: l.State,
		Options: LinkOptionsResponse{Code: l.SyncCode, Schedule: l.SyncSchedule, Partitions: l.SyncPartitions, Propagate: l.Propagate},
	}
}

type locationIDsRequest struct {
	LocationIDs []string `json:"location_ids"`
}

// load reads the chosen locations' panel users fresh ("Load External
// Users"), as a users-sync batch.
func (h linkHandlers) load(c *fiber.Ctx) error {
	var req locationIDsRequest
	if err := decodeJSON(c, &req); err != nil {
		return err
	}
	st, err := h.engine.StartBatch(c.UserContext(), actor(c), syncer.BatchRequest{
		Kind: models.RunUsers, Scope: models.ScopeLocations, LocationIDs: req.LocationIDs, Trigger: trigger(c),
	})
	if err != nil {
		return err
	}
	return c.Status(fiber.StatusAccepted).JSON(BatchStartResponse{Batch: toBatchResponse(st), Message: "User sync process has been initiated"})
}

// auto proposes links by e-mail ("Auto Link Users").
func (h linkHandlers) auto(c *fiber.Ctx) error {
	var req locationIDsRequest
	if err := decodeJSON(c, &req); err != nil {
		return err
	}
	res, err := h.engine.AutoLink(c.UserContext(), actor(c), req.LocationIDs)
	if err != nil {
		return err
	}
	out := AutoLinkResponse{Drafts: []LinkResponse{}, Unmatched: []LinkUserResponse{}, Ambiguous: []AmbiguousUserResponse{}}
	for _, l := range res.Drafts {
		out.Drafts = append(out.Drafts, toLinkResponse(l))
	}
	for _, u := range res.Unmatched {
		out.Unmatched = append(out.Unmatched, toLinkUser(u))
	}
	for _, u := range res.Ambiguous {
		out.Ambiguous = append(out.Ambiguous, AmbiguousUserResponse{LinkUserResponse: toLinkUser(u.UnmatchedUser), LoginIDs: u.LoginIDs, Reason: u.Reason})
	}
	return c.JSON(out)
}

func toLinkUser(u syncer.UnmatchedUser) LinkUserResponse {
	return LinkUserResponse{LocationID: u.LocationID, LocationName: u.LocationName, UserNumber: u.UserNumber, Name: u.Name, Email: u.Email}
}

type proposeLinkRequest struct {
	LoginID    *string `json:"login_id"`
	LocationID *string `json:"location_id"`
	UserNumber *int    `json:"user_number"`
}

// propose records a draft link by hand ("Link User").
func (h linkHandlers) propose(c *fiber.Ctx) error {
	var req proposeLinkRequest
	if err := decodeJSON(c, &req); err != nil {
		return err
	}
	switch {
	case req.LoginID == nil || *req.LoginID == "":
		return models.FieldError("login_id", "login_id is required")
	case req.LocationID == nil || *req.LocationID == "":
		return models.FieldError("location_id", "location_id is required")
	case req.UserNumber == nil:
		return models.FieldError("user_number", "user_number is required")
	case *req.UserNumber < 1 || *req.UserNumber > 9999:
		return models.FieldError("user_number", "user_number must be 1 to 9999")
	}
	l, err := h.engine.ProposeLink(c.UserContext(), actor(c), *req.LoginID, *req.LocationID, *req.UserNumber)
	if err != nil {
		return err
	}
	return c.Status(fiber.StatusCreated).JSON(toLinkResponse(l))
}

type saveLinksRequest struct {
	IDs []string `json:"ids"`
}

// save saves draft links ("Save Added Users").
func (h linkHandlers) save(c *fiber.Ctx) error {
	var req saveLinksRequest
	if err := decodeJSON(c, &req); err != nil {
		return err
	}
	links, err := h.engine.SaveLinks(c.UserContext(), actor(c), req.IDs)
	if err != nil {
		return err
	}
	out := LinkPage{Items: make([]LinkResponse, len(links))}
	for i, l := range links {
		out.Items[i] = toLinkResponse(l)
	}
	return c.JSON(out)
}

func (h linkHandlers) list(c *fiber.Ctx) error {
	if err := allowQuery(c, "state", "login_id", "location_id", "cursor", "limit"); err != nil {
		return err
	}
	limit, err := queryLimit(c, 100, 500)
	if err != nil {
		return err
	}
	q := models.LinkQuery{AccountID: principal(c).AccountID, LoginID: c.Query("login_id"), LocationID: c.Query("location_id"), After: c.Query("cursor"), Limit: limit}
	switch s := c.Query("state"); s {
	case "", models.LinkDraft, models.LinkSaved:
		q.State = s
	default:
		return models.FieldError("state", "state must be draft or saved")
	}
	if q.After != "" {
		if _, err := uuid.Parse(q.After); err != nil {
			return models.FieldError("cursor", "cursor is not one this server issued")
		}
	}
	links, next, err := h.store.ListLinks(c.UserContext(), q)
	if err != nil {
		return err
	}
	out := LinkPage{Items: make([]LinkResponse, len(links))}
	for i, l := range links {
		out.Items[i] = toLinkResponse(l)
	}
	if next != "" {
		out.NextCursor = &next
	}
	return c.JSON(out)
}

// remove deletes a link ("Remove Selected Users").
func (h linkHandlers) remove(c *fiber.Ctx) error {
	if err := h.engine.RemoveLink(c.UserContext(), actor(c), c.Params("id")); err != nil {
		return err
	}
	return c.SendStatus(fiber.StatusNoContent)
}

type linkOptionsRequest struct {
	Options *struct {
		Code       *bool   `json:"code"`
		Schedule   *bool   `json:"schedule"`
		Partitions *bool   `json:"partitions"`
		Propagate  *string `json:"propagate"`
	} `json:"options"`
}

// options changes a link's options ("Save Users Options").
func (h linkHandlers) options(c *fiber.Ctx) error {
	var req linkOptionsRequest
	if err := decodeJSON(c, &req); err != nil {
		return err
	}
	if req.Options == nil {
		return models.FieldError("options", "options is required: code, schedule, partitions and propagate")
	}
	o := req.Options
	l, batch, err := h.engine.UpdateLinkOptions(c.UserContext(), actor(c), c.Params("id"), syncer.LinkOptions{
		Code: o.Code, Schedule: o.Schedule, Partitions: o.Partitions, Propagate: o.Propagate,
	})
	if err != nil {
		return err
	}
	out := LinkOptionsChangeResponse{LinkResponse: toLinkResponse(l)}
	if batch.Batch.ID != "" {
		b := toBatchResponse(batch)
		out.Propagation = &b
	}
	return c.JSON(out)
}

// forceSync flags every location a login is linked at for a full users
// sync on its panel's next check-in.
func (h linkHandlers) forceSync(c *fiber.Ctx) error {
	n, err := h.engine.ForceSyncLogin(c.UserContext(), actor(c), c.Params("id"))
	if err != nil {
		return err
	}
	return c.Status(fiber.StatusAccepted).JSON(ForceSyncResponse{Message: "User will sync on next check-in", Flagged: &n})
}
