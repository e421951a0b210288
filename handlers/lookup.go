package handlers

import (
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/panelsync/panelsync/models"
)

// lookupHandlers find people across an account's locations.
type lookupHandlers struct {
	store *models.Store
}

// PersonResponse is one person of a user lookup: the panel users that are
// the same person, at each location. login_id and external_id are null
// when the person has none; email is "" when none of their users has one.
type PersonResponse struct {
	Name       string                   `json:"name"`
	Email      string                   `json:"email"`
	ExternalID *string                  `json:"external_id"`
	LoginID    *string                  `json:"login_id"`
	Locations  []PersonLocationResponse `json:"locations"`
	// LocationsTruncated says the person has more users than one page
	// holds; locations lists the first of them.
	LocationsTruncated bool `json:"locations_truncated"`
}

// PersonLocationResponse is what a location's panel last sent for a
// person: the user slot, as the record holds it, and the run that last
// received it. Neither the code nor its digest is part of it.
type PersonLocationResponse struct {
	LocationID     string     `json:"location_id"`
	LocationName   string     `json:"location_name"`
	UserNumber     int        `json:"user_number"`
	Name           string     `json:"name"`
	Email          string     `json:"email"`
	Authority      string     `json:"authority"`
	Partitions     []int      `json:"partitions"`
	HasCode        bool       `json:"has_code"`
	Linked         bool       `json:"linked"`
	LastReceivedAt *time.Time `json:"last_received_at"`
	RunID          *string    `json:"run_id"`
}

// PeoplePage is one page of a user lookup.
type PeoplePage struct {
	Items      []PersonResponse `json:"items"`
	NextCursor *string          `json:"next_cursor"`
}

func toPersonResponse(p models.Person) PersonResponse {
	out := PersonResponse{
		Name: p.Name, Email: p.Email, ExternalID: p.ExternalID, LoginID: p.LoginID,
		Locations: make([]PersonLocationResponse, len(p.Users)), LocationsTruncated: p.UsersTruncated,
	}
	for i, u := range p.Users {
		out.Locations[i] = PersonLocationResponse{
			LocationID: u.LocationID, LocationName: u.LocationName, UserNumber: u.UserNumber,
			Name: u.Name, Email: u.Email, Authority: u.Authority, Partitions: splitInts(u.Partitions),
			HasCode: u.HasCode, Linked: u.LoginID != nil,
			LastReceivedAt: apiTimePtr(u.ReceivedAt), RunID: u.ReceivedRunID,
		}
	}
	return out
}

// lookup answers GET /v1/people. It reads what GET /v1/locations/{id}/users
// shows, across the account, so whoever may read those (read keys and
// support staff under a grant included) may look people up.
func (h lookupHandlers) lookup(c *fiber.Ctx) error {
	if err := allowQuery(c, "q", "limit", "cursor"); err != nil {
		return err
	}
	if !c.Request().URI().QueryArgs().Has("q") {
		return models.FieldError("q", "q is required: a part of a name or e-mail, an external id or a user number")
	}
	text, err := models.Label("q", c.Query("q"), models.MaxPeopleQueryRunes, true)
	if err != nil {
		return err
	}
	limit, err := queryLimit(c, models.DefaultPeoplePageSize, models.MaxPeoplePageSize)
	if err != nil {
		return err
	}
	people, next, err := h.store.LookupPeople(c.UserContext(), models.PeopleQuery{
		AccountID: principal(c).AccountID, Text: text, Cursor: c.Query("cursor"), Limit: limit,
	})
	if err != nil {
		return err
	}
	page := PeoplePage{Items: make([]PersonResponse, len(people))}
	for i, p := range people {
		page.Items[i] = toPersonResponse(p)
	}
	if next != "" {
		page.NextCursor = &next
	}
	return c.JSON(page)
}
