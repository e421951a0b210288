package syncer

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/panelsync/panelsync/models"
)

// maxLinkLocations bounds the locations one auto link or load looks at.
const maxLinkLocations = 1000

// UnmatchedUser is a panel user Auto Link found no login for.
type UnmatchedUser struct {
	LocationID   string
	LocationName string
	UserNumber   int
	Name         string
	Email        string
}

// AmbiguousUser is a panel user whose e-mail matches several logins, or
// whose login matches several users of its panel; no link is proposed.
type AmbiguousUser struct {
	UnmatchedUser
	LoginIDs []string
	Reason   string
}

// AutoLinkResult is what Auto Link proposed and what it could not.
type AutoLinkResult struct {
	Drafts    []models.Link
	Unmatched []UnmatchedUser
	Ambiguous []AmbiguousUser
}

// AutoLink proposes a draft link for every panel user at the locations
// whose e-mail (trimmed, ignoring case) is one login's, and reports the
// users with no match and those whose match is ambiguous. Users already
// linked or proposed, and logins already linked at the location, are left
// as they are. Drafts change nothing until they are saved.
func (e *Engine) AutoLink(ctx context.Context, actor models.Actor, locationIDs []string) (AutoLinkResult, error) {
	var out AutoLinkResult
	locs, err := e.linkLocations(ctx, actor.AccountID, locationIDs)
	if err != nil {
		return out, err
	}
	err = e.store.Tx(ctx, func(ctx context.Context) error {
		out = AutoLinkResult{}
		logins, err := e.store.LoginsByEmail(ctx, actor.AccountID)
		if err != nil {
			return err
		}
		existing, err := e.store.LinksAt(ctx, locationIDs)
		if err != nil {
			return err
		}
		slotTaken := map[string]bool{}
		loginTaken := map[string]bool{}
		for _, l := range existing {
			slotTaken[fmt.Sprintf("%s/%d", l.LocationID, l.UserNumber)] = true
			loginTaken[l.LocationID+"/"+l.LoginID] = true
		}
		for _, v := range locs {
			users, err := e.store.PanelUsers(ctx, v.Location.ID)
			if err != nil {
				return err
			}
			// A login matching several users of one panel is ambiguous.
			byLogin := map[string][]models.PanelUser{}
			for _, u := range users {
				if matches := logins[models.NormalizeEmail(u.Email)]; u.Email != "" && len(matches) == 1 {
					byLogin[matches[0].ID] = append(byLogin[matches[0].ID], u)
				}
			}
			for _, u := range users {
				if slotTaken[fmt.Sprintf("%s/%d", v.Location.ID, u.UserNumber)] {
					continue
				}
				who := UnmatchedUser{LocationID: v.Location.ID, LocationName: v.Location.Name, UserNumber: u.UserNumber, Name: u.Name, Email: u.Email}
				matches := logins[models.NormalizeEmail(u.Email)]
				switch {
				case u.Email == "" || len(matches) == 0:
					out.Unmatched = append(out.Unmatched, who)
				case len(matches) > 1:
					ids := make([]string, len(matches))
					for i, m := range matches {
						ids[i] = m.ID
					}
					out.Ambiguous = append(out.Ambiguous, AmbiguousUser{UnmatchedUser: who, LoginIDs: ids, Reason: "the e-mail matches several logins"})
				case len(byLogin[matches[0].ID]) > 1:
					out.Ambiguous = append(out.Ambiguous, AmbiguousUser{UnmatchedUser: who, LoginIDs: []string{matches[0].ID},
						Reason: fmt.Sprintf("%d users of this panel have the login's e-mail", len(byLogin[matches[0].ID]))})
				case loginTaken[v.Location.ID+"/"+matches[0].ID]:
					// The person is linked here already, to another slot.
				default:
					l := models.Link{
						AccountID: actor.AccountID, LoginID: matches[0].ID, LocationID: v.Location.ID, UserNumber: u.UserNumber,
						State: models.LinkDraft, SyncCode: true, SyncSchedule: true, SyncPartitions: true,
						Propagate: models.PropagateNone, CreatedBy: actor.Name,
					}
					if err := e.store.CreateLink(ctx, &l); err != nil {
						return err
					}
					loginTaken[v.Location.ID+"/"+l.LoginID] = true
					out.Drafts = append(out.Drafts, l)
				}
			}
		}
		acct, err := e.store.Account(ctx, actor.AccountID)
		if err != nil {
			return err
		}
		return e.store.Audit(ctx, actor, models.AuditChange{
			Action: "link.auto", Target: models.AuditTarget{Type: "account", ID: acct.ID, Name: acct.Name},
			After: map[string]any{"locations": len(locs), "drafts": len(out.Drafts), "unmatched": len(out.Unmatched), "ambiguous": len(out.Ambiguous)},
		})
	})
	return out, err
}

// linkLocations checks and loads the locations a link action names.
func (e *Engine) linkLocations(ctx context.Context, accountID string, ids []string) ([]models.LocationView, error) {
	if len(ids) == 0 || len(ids) > maxLinkLocations {
		return nil, models.FieldError("location_ids", "location_ids must list 1 to %d locations", maxLinkLocations)
	}
	if _, err := e.validateScope(ctx, accountID, models.ScopeLocations, "", ids); err != nil {
		return nil, err
	}
	return e.scopeLocations(ctx, accountID, ImportRequest{Scope: models.ScopeLocations, LocationIDs: ids})
}

// ProposeLink records a draft link of a login to a user slot by hand
// ("Link User"). The user must be on the location's record.
func (e *Engine) ProposeLink(ctx context.Context, actor models.Actor, loginID, locationID string, number int) (models.Link, error) {
	var l models.Link
	err := e.store.Tx(ctx, func(ctx context.Context) error {
		login, err := e.store.LoginInAccount(ctx, actor.AccountID, loginID, false)
		if err != nil {
			return &models.Error{Code: models.CodeNotFound, Field: "login_id", Message: "login not found"}
		}
		if login.DisabledAt != nil {
			return models.Errorf(models.CodeInvalidState, "the login is deactivated; reactivate it before linking it")
		}
		if _, err := e.store.Location(ctx, actor.AccountID, locationID); err != nil {
			return &models.Error{Code: models.CodeNotFound, Field: "location_id", Message: "location not found"}
		}
		users, err := e.store.PanelUsers(ctx, locationID)
		if err != nil {
			return err
		}
		if !slices.ContainsFunc(users, func(u models.PanelUser) bool { return u.UserNumber == number }) {
			return models.FieldError("user_number", "the location's panel has no user %d on record; load its users first", number)
		}
		l = models.Link{
			AccountID: actor.AccountID, LoginID: loginID, LocationID: locationID, UserNumber: number,
			State: models.LinkDraft, SyncCode: true, SyncSchedule: true, SyncPartitions: true,
			Propagate: models.PropagateNone, CreatedBy: actor.Name,
		}
		if err := e.store.CreateLink(ctx, &l); err != nil {
			return err
		}
		target, err := e.store.LinkAuditTarget(ctx, l)
		if err != nil {
			return err
		}
		return e.store.Audit(ctx, actor, models.AuditChange{Action: "link.propose", Target: target, After: linkAudit(l)})
	})
	return l, err
}

// SaveLinks saves draft links ("Save Added Users"): each panel user is
// then the login's person, and each location's Event Log says so. Every
// id must be a draft of the account; otherwise nothing is saved.
func (e *Engine) SaveLinks(ctx context.Context, actor models.Actor, ids []string) ([]models.Link, error) {
	if len(ids) == 0 || len(ids) > maxLinkLocations {
		return nil, models.FieldError("ids", "ids must list 1 to %d links", maxLinkLocations)
	}
	var saved []models.Link
	err := e.store.Tx(ctx, func(ctx context.Context) error {
		saved = nil
		links, err := e.store.LinksByIDs(ctx, actor.AccountID, ids)
		if err != nil {
			return err
		}
		found := map[string]models.Link{}
		for _, l := range links {
			found[l.ID] = l
		}
		for _, id := range ids {
			l, ok := found[id]
			if !ok {
				return &models.Error{Code: models.CodeNotFound, Field: "ids", Message: fmt.Sprintf("link %s not found", id)}
			}
			if l.State != models.LinkDraft {
				return models.Errorf(models.CodeInvalidState, "link %s is already saved", id)
			}
		}
		targets, err := e.store.LinkAuditTargets(ctx, actor.AccountID, links)
		if err != nil {
			return err
		}
		now := e.now()
		events := make([]models.NewEvent, 0, len(links))
		changes := make([]models.AuditChange, 0, len(links))
		for i, l := range links {
			if err := e.store.SaveLink(ctx, l, now); err != nil {
				return err
			}
			before := linkAudit(l)
			l.State, l.SavedAt = models.LinkSaved, &now
			saved = append(saved, l)
			user, login := e.linkNames(ctx, l)
			events = append(events, models.NewEvent{
				AccountID: l.AccountID, LocationID: l.LocationID, Type: models.EventLinkSaved, Severity: models.SeverityInfo, OccurredAt: now,
				Message: fmt.Sprintf("%s linked to the login %s by %s", user, login, actor.Name),
				Data:    map[string]any{"link_id": l.ID, "login_id": l.LoginID, "user_number": l.UserNumber},
			})
			changes = append(changes, models.AuditChange{Action: "link.save", Target: targets[i], Before: before, After: linkAudit(l)})
		}
		if _, err := e.events.Append(ctx, events...); err != nil {
			return err
		}
		return e.store.AuditAll(ctx, actor, changes)
	})
	return saved, err
}

// RemoveLink deletes a link ("Remove Selected Users"). A saved link's panel
// user stays on the panel; it is simply no longer the login's person.
func (e *Engine) RemoveLink(ctx context.Context, actor models.Actor, id string) error {
	return e.store.Tx(ctx, func(ctx context.Context) error {
		l, err := e.lockedLink(ctx, actor.AccountID, id)
		if err != nil {
			return err
		}
		target, err := e.store.LinkAuditTarget(ctx, l)
		if err != nil {
			return err
		}
		if err := e.store.DeleteLink(ctx, l); err != nil {
			return err
		}
		if l.State == models.LinkSaved {
			user, login := e.linkNames(ctx, l)
			if _, err := e.events.Append(ctx, models.NewEvent{
				AccountID: l.AccountID, LocationID: l.LocationID, Type: models.EventLinkRemoved, Severity: models.SeverityInfo,
				Message: fmt.Sprintf("%s is no longer linked to the login %s: unlinked by %s", user, login, actor.Name),
				Data:    map[string]any{"link_id": l.ID, "login_id": l.LoginID, "user_number": l.UserNumber},
			}); err != nil {
				return err
			}
		}
		return e.store.Audit(ctx, actor, models.AuditChange{Action: "link.remove", Target: target, Before: linkAudit(l)})
	})
}

// LinkOptions is a change of a link's options; nil leaves one as it is.
type LinkOptions struct {
	Code, Schedule, Partitions *bool
	Propagate                  *string
}

// UpdateLinkOptions changes what is kept in sync for a linked person and
// where they are propagated ("Save Users Options"). Turning propagation on
// for a saved link puts the person on every location in scope that lacks
// them, as an import run per location; turning it off removes no one.
func (e *Engine) UpdateLinkOptions(ctx context.Context, actor models.Actor, id string, opts LinkOptions) (models.Link, BatchStatus, error) {
	if opts.Propagate != nil {
		switch *opts.Propagate {
		case models.PropagateNone, models.PropagateGroup, models.PropagateAll:
		default:
			return models.Link{}, BatchStatus{}, models.FieldError("options.propagate", "propagate must be none, group or all")
		}
	}
	var (
		out   models.Link
		batch BatchStatus
	)
	err := e.store.Tx(ctx, func(ctx context.Context) error {
		out, batch = models.Link{}, BatchStatus{}
		l, err := e.lockedLink(ctx, actor.AccountID, id)
		if err != nil {
			return err
		}
		before := linkAudit(l)
		wasPropagating := l.Propagate
		for _, f := range []struct {
			to  *bool
			src *bool
		}{{&l.SyncCode, opts.Code}, {&l.SyncSchedule, opts.Schedule}, {&l.SyncPartitions, opts.Partitions}} {
			if f.src != nil {
				*f.to = *f.src
			}
		}
		if opts.Propagate != nil {
			l.Propagate = *opts.Propagate
		}
		if l.Propagate != models.PropagateNone && l.State != models.LinkSaved {
			return models.Errorf(models.CodeInvalidState, "save the link before propagating the person")
		}
		if err := e.store.UpdateLinkOptions(ctx, l); err != nil {
			return err
		}
		target, err := e.store.LinkAuditTarget(ctx, l)
		if err != nil {
			return err
		}
		if err := e.store.Audit(ctx, actor, models.AuditChange{Action: "link.options", Target: target, Before: before, After: linkAudit(l)}); err != nil {
			return err
		}
		out = l
		if l.Propagate != models.PropagateNone && l.Propagate != wasPropagating {
			batch, err = e.propagate(ctx, actor, l)
		}
		return err
	})
	return out, batch, err
}

// ForceSyncLogin flags every location a login is linked at for a full
// users sync on its panel's next check-in.
func (e *Engine) ForceSyncLogin(ctx context.Context, actor models.Actor, loginID string) (int, error) {
	login, err := e.store.LoginInAccount(ctx, actor.AccountID, loginID, false)
	if err != nil {
		return 0, err
	}
	links, err := e.store.SavedLinksOfLogin(ctx, loginID)
	if err != nil {
		return 0, err
	}
	if len(links) == 0 {
		return 0, models.Errorf(models.CodeConflict, "the login is linked to no panel user; link and save it first")
	}
	ids := make([]string, len(links))
	for i, l := range links {
		ids[i] = l.LocationID
	}
	n, err := e.ForceSync(ctx, actor, models.ScopeLocations, "", ids)
	if err != nil {
		return n, err
	}
	return n, e.store.Audit(ctx, actor, models.AuditChange{
		Action: "login.force_sync", Target: models.LoginTarget(login),
		After: map[string]any{"locations": len(ids), "flagged": n},
	})
}

// lockedLink loads one link of the account, locked for the change that
// follows in the transaction carried by ctx.
func (e *Engine) lockedLink(ctx context.Context, accountID, id string) (models.Link, error) {
	links, err := e.store.LinksByIDs(ctx, accountID, []string{id})
	if err != nil {
		return models.Link{}, err
	}
	if len(links) == 0 {
		return models.Link{}, models.NotFound("link")
	}
	return links[0], nil
}

// linkAudit is how the audit log shows a link.
func linkAudit(l models.Link) map[string]any {
	return map[string]any{
		"login_id": l.LoginID, "location_id": l.LocationID, "user_number": l.UserNumber, "state": l.State,
		"code": l.SyncCode, "schedule": l.SyncSchedule, "partitions": l.SyncPartitions, "propagate": l.Propagate,
	}
}

// scopeForPropagation is the scope a link's propagation covers.
func scopeForPropagation(l models.Link, group string) (string, string) {
	if l.Propagate == models.PropagateGroup {
		return models.ScopeGroup, strings.TrimSpace(group)
	}
	return models.ScopeAll, ""
}

// linkNames names a link's panel user, such as "Mary Harris (user 3)",
// and its login by e-mail, for the link's events. A name that cannot be
// loaded is left out, never the event.
func (e *Engine) linkNames(ctx context.Context, l models.Link) (user, login string) {
	user = fmt.Sprintf("User %d", l.UserNumber)
	if name, err := e.store.PanelUserName(ctx, l.LocationID, l.UserNumber); err == nil && name != "" {
		user = fmt.Sprintf("%s (user %d)", name, l.UserNumber)
	}
	return user, e.loginEmail(ctx, l.LoginID)
}
