package syncer

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"

	"github.com/panelsync/panelsync/models"
	"github.com/panelsync/panelsync/panel"
)

// propagate puts a linked person on every location of the link's scope
// that lacks them, in the transaction carried by ctx: a saved link at a
// free user number of each such panel, and an import run that adds the
// person there, held or applied as any import. A location lacks the person
// when the login is linked nowhere there and no user of its panel has the
// person's e-mail. The user numbers the location's latest upload
// protected are never chosen. It returns the batch, or a zero one when
// every location has the person already.
func (e *Engine) propagate(ctx context.Context, actor models.Actor, origin models.Link) (BatchStatus, error) {
	src, err := e.store.LocationByID(ctx, origin.LocationID)
	if err != nil {
		return BatchStatus{}, err
	}
	scope, group := scopeForPropagation(origin, src.Location.GroupName)
	if scope == models.ScopeGroup && group == "" {
		return BatchStatus{}, models.FieldError("options.propagate", "the link's location belongs to no group; propagate to all locations instead")
	}
	users, err := e.store.PanelUsers(ctx, origin.LocationID)
	if err != nil {
		return BatchStatus{}, err
	}
	i := slices.IndexFunc(users, func(u models.PanelUser) bool { return u.UserNumber == origin.UserNumber })
	if i < 0 {
		return BatchStatus{}, models.Errorf(models.CodeInvalidState, "user %d is no longer on the location's record; load its users first", origin.UserNumber)
	}
	person := users[i]
	locs, err := e.scopeLocations(ctx, actor.AccountID, ImportRequest{Scope: scope, Group: group})
	if err != nil {
		return BatchStatus{}, err
	}
	have, err := e.store.SavedLinksOfLogin(ctx, origin.LoginID)
	if err != nil {
		return BatchStatus{}, err
	}
	linkedAt := map[string]bool{}
	for _, l := range have {
		linkedAt[l.LocationID] = true
	}
	var items []pushItem
	for _, v := range locs {
		if linkedAt[v.Location.ID] {
			continue
		}
		item, ok, err := e.propagationTo(ctx, actor, origin, person, v)
		if err != nil {
			return BatchStatus{}, err
		}
		if ok {
			items = append(items, item)
		}
	}
	if len(items) == 0 {
		return BatchStatus{}, nil
	}
	b := models.Batch{
		ID: models.NewID(), AccountID: actor.AccountID, Kind: models.RunImport, Scope: scope, GroupName: group,
		LocationIDs: "[]", RequestedBy: actor.Name, TriggerSource: models.TriggerApp, Total: len(items),
		State: models.BatchRunning, Expanded: true,
	}
	if err := e.store.CreateBatch(ctx, &b); err != nil {
		return BatchStatus{}, err
	}
	if err := e.enqueuePushes(ctx, actor, b, models.TriggerApp, items); err != nil {
		return BatchStatus{}, err
	}
	batchID := b.ID
	models.AfterCommit(ctx, func() { e.noteBatch(batchID) })
	return BatchStatus{Batch: b, Queued: len(items)}, nil
}

// propagationTo prepares the person's run at one location, and links the
// login to the user number chosen there; ok is false when the location
// has the person already or no free number.
func (e *Engine) propagationTo(ctx context.Context, actor models.Actor, origin models.Link, person models.PanelUser, v models.LocationView) (pushItem, bool, error) {
	users, err := e.store.PanelUsers(ctx, v.Location.ID)
	if err != nil {
		return pushItem{}, false, err
	}
	taken := map[int]bool{}
	for _, u := range users {
		if person.Email != "" && u.Email == person.Email {
			return pushItem{}, false, nil
		}
		taken[u.UserNumber] = true
	}
	var protected []int
	if raw, err := e.store.LatestImportData(ctx, v.Location.ID); err != nil {
		return pushItem{}, false, err
	} else if raw != nil {
		var last UsersData
		if json.Unmarshal(raw, &last) == nil {
			protected = last.Protected
		}
	}
	links, err := e.store.LinksAt(ctx, []string{v.Location.ID})
	if err != nil {
		return pushItem{}, false, err
	}
	for _, l := range links {
		taken[l.UserNumber] = true
	}
	// Slot 1 is the panel's master code on every panel this product
	// knows; a person is never put there.
	number := 0
	for n := 2; n <= maxUserNumber; n++ {
		if !taken[n] && !slices.Contains(protected, n) {
			number = n
			break
		}
	}
	if number == 0 {
		return pushItem{}, false, nil
	}
	link := models.Link{
		AccountID: origin.AccountID, LoginID: origin.LoginID, LocationID: v.Location.ID, UserNumber: number,
		State: models.LinkSaved, SyncCode: origin.SyncCode, SyncSchedule: origin.SyncSchedule, SyncPartitions: origin.SyncPartitions,
		Propagate: models.PropagateNone, CreatedBy: actor.Name, SavedAt: pointer(e.now()),
	}
	if err := e.store.CreateLink(ctx, &link); err != nil {
		return pushItem{}, false, err
	}
	if _, err := e.events.Append(ctx, models.NewEvent{
		AccountID: link.AccountID, LocationID: link.LocationID, Type: models.EventLinkSaved, Severity: models.SeverityInfo,
		Message: propagatedMessage(person.Name, number, e.loginEmail(ctx, origin.LoginID), actor.Name),
		Data:    map[string]any{"link_id": link.ID, "login_id": link.LoginID, "user_number": number, "propagated_from": origin.ID},
	}); err != nil {
		return pushItem{}, false, err
	}
	partitions, err := e.fittingPartitions(ctx, v.Location.ID, splitInts(person.Partitions))
	if err != nil {
		return pushItem{}, false, err
	}
	data, err := json.Marshal(UsersData{
		Users: []panel.User{{
			Number: number, Name: person.Name, Email: person.Email, Authority: person.Authority,
			Partitions: partitions, AccessSchedule: person.AccessSchedule,
		}},
		ExternalIDs: map[int]string{number: person.ExternalID}, Protected: protected, KeepUnsetCodes: true,
	})
	if err != nil {
		return pushItem{}, false, err
	}
	return pushItem{loc: v, push: &pushPayload{data: data}}, true, nil
}

// pointer returns a pointer to a copy of v.
func pointer[T any](v T) *T { return &v }

// fittingPartitions keeps the person's partitions that the location's
// panel has, as its last panel sync recorded them: a panel refuses a user
// with a partition it lacks. A person none of whose partitions exist there
// gets the panel's first partition. Without a recorded configuration only
// partition 1 is sure to exist, as every panel numbers its partitions
// from 1, so the person gets that one; a panel sync there first lets the
// others through.
func (e *Engine) fittingPartitions(ctx context.Context, locationID string, want []int) ([]int, error) {
	items, err := e.store.PanelConfigItems(ctx, locationID)
	if err != nil {
		return nil, err
	}
	var have []int
	for _, it := range items {
		if it.Kind == itemPartition {
			have = append(have, it.Number)
		}
	}
	if len(have) == 0 {
		have = []int{1}
	}
	slices.Sort(have)
	var out []int
	for _, p := range want {
		if slices.Contains(have, p) {
			out = append(out, p)
		}
	}
	if len(out) == 0 {
		out = []int{have[0]}
	}
	return out, nil
}

// propagatedMessage is the link.saved event's message at a location a
// person is propagated to: the import run that adds them follows it.
func propagatedMessage(name string, number int, loginEmail, by string) string {
	who := name
	if who == "" {
		who = "The person"
	}
	return fmt.Sprintf("%s is being added here as user %d, linked to the login %s: propagated by %s", who, number, loginEmail, by)
}

// loginEmail is a login's e-mail for a message, or a plain description
// when the login cannot be loaded.
func (e *Engine) loginEmail(ctx context.Context, loginID string) string {
	if l, err := e.store.LoginByID(ctx, loginID); err == nil {
		return l.Email
	}
	return "of the person"
}
