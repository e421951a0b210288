package syncer

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/panelsync/panelsync/models"
	"github.com/panelsync/panelsync/panel"
)

// Bounds on what a panel may send for its users.
const (
	maxPanelUsers  = 10000
	maxUserNumber  = 9999
	maxPartitionNo = 64
)

// UsersData is the user list a run keeps, never with codes: what a panel
// sent for a users run, or what an import or re-apply pushes.
type UsersData struct {
	Full      bool         `json:"full"`
	Watermark string       `json:"watermark,omitempty"`
	Users     []panel.User `json:"users"`
	Removed   []int        `json:"removed,omitempty"`
	// ExternalIDs are the integrator's ids of the users an import lists,
	// by user number. A user it does not name keeps the id on record:
	// panels know nothing of them.
	ExternalIDs map[int]string `json:"external_ids,omitempty"`
	// Protected are user numbers a push never writes or removes.
	Protected []int `json:"protected_user_numbers,omitempty"`
	// KeepUnsetCodes says that a user listed without a code keeps the code
	// it has, as a data file row without a code means; otherwise has_code
	// says whether the user should have one.
	KeepUnsetCodes bool `json:"keep_unset_codes,omitempty"`
}

// Change is one record a run added, updated or removed.
type Change struct {
	Action string        `json:"action"`
	Kind   string        `json:"kind,omitempty"`
	Number int           `json:"number"`
	Name   string        `json:"name"`
	Fields []FieldChange `json:"fields,omitempty"`
	// Code and Message say why the panel did not take a user a push sent
	// (action "failed"), or why a user needs a new code.
	Code    string `json:"code,omitempty"`
	Message string `json:"message,omitempty"`
}

// FieldChange is one field of an updated record. A user code's change is
// listed by name only: neither value is ever shown.
type FieldChange struct {
	Field string `json:"field"`
	From  any    `json:"from,omitempty"`
	To    any    `json:"to,omitempty"`
}

// Changes is what a run's changes download holds.
type Changes struct {
	Counts  counts   `json:"counts"`
	Changes []Change `json:"changes"`
}

func (e *Engine) syncUsers(ctx context.Context, r models.Run, loc models.LocationView) (attemptOutcome, error) {
	args := panel.UsersGetArgs{Full: r.Mode == models.ModeFull}
	if !args.Full {
		args.Since = loc.Panel.UsersWatermark
	}
	raw, err := e.send(ctx, loc.Panel.ID, panel.CmdUsersGet, args)
	if err != nil {
		return attemptOutcome{}, err
	}
	var res panel.UsersGetResult
	if err := json.Unmarshal(raw, &res); err != nil {
		return attemptOutcome{}, invalidAnswer("users", err)
	}
	if err := validateUsers(res); err != nil {
		return attemptOutcome{}, invalidAnswer("users", err)
	}
	mode := r.Mode
	if res.Full {
		// A panel that no longer knows the watermark answers in full.
		mode = models.ModeFull
	}
	digests := make(map[int]string, len(res.Users))
	kept := UsersData{Full: res.Full, Watermark: res.Watermark, Removed: res.Removed, Users: make([]panel.User, len(res.Users))}
	for i, u := range res.Users {
		if u.Code != "" {
			digests[u.Number] = e.codeDigest(loc.Location.ID, u.Number, u.Code)
			u.HasCode = true
		}
		// The code is dropped here, before anything is stored or logged.
		u.Code = ""
		u.Email = models.NormalizeEmail(u.Email)
		u.Name = strings.TrimSpace(u.Name)
		kept.Users[i] = u
	}
	data, _ := json.Marshal(kept)
	return attemptOutcome{
		mode: mode,
		data: data,
		apply: func(ctx context.Context) (applied, error) {
			existing, err := e.store.PanelUsers(ctx, loc.Location.ID)
			if err != nil {
				return applied{}, err
			}
			d := diffUsers(loc.Location.ID, existing, kept, digests)
			if reason := holdReason(loc.Location, len(existing), d.counts); reason != "" {
				pending, _ := json.Marshal(heldUsers{Digests: digests})
				changes, _ := json.Marshal(Changes{Counts: d.counts, Changes: d.changes})
				return applied{counts: d.counts, changes: changes, summary: d.counts.String(), hold: reason, pending: pending}, nil
			}
			res, err := e.applyUsers(ctx, loc, r.ID, mode, kept, digests, existing)
			res.summary = usersSummary(res.counts, len(existing), kept.Full)
			return res, err
		},
	}, nil
}

// applyUsers reconciles the remote copy with the users run runID received,
// in the transaction carried by ctx: the changes, the receipt of every user
// the run received, the watermark, and the forced sync that a full sync
// fulfils. A held run is stamped when it is applied, as that is when the
// record takes its users; the run id leads to when the panel sent them.
// It writes the panel's row (the watermark) before the run itself is
// finished, so the transaction takes the panel's lock before it frees the
// run's place in the queue; the first sync at a panel's link relies on
// that order (models.LockPanelLocation).
func (e *Engine) applyUsers(ctx context.Context, loc models.LocationView, runID string, mode models.RunMode, kept UsersData, digests map[int]string, existing []models.PanelUser) (applied, error) {
	d := diffUsers(loc.Location.ID, existing, kept, digests)
	received := models.UsersReceipt{RunID: runID, At: e.now(), Numbers: make([]int, len(kept.Users))}
	for i, u := range kept.Users {
		received.Numbers[i] = u.Number
	}
	if err := e.store.ApplyPanelUsers(ctx, loc.Location.ID, d.insert, d.update, d.remove, received); err != nil {
		return applied{}, err
	}
	if err := e.store.SetUsersWatermark(ctx, loc.Panel.ID, kept.Watermark); err != nil {
		return applied{}, err
	}
	if mode == models.ModeFull {
		// A forced sync is done once a full one has succeeded.
		if err := e.store.ClearForcePending(ctx, loc.Location.ID); err != nil {
			return applied{}, err
		}
	}
	changes, _ := json.Marshal(Changes{Counts: d.counts, Changes: d.changes})
	return applied{counts: d.counts, changes: changes, summary: d.counts.String()}, nil
}

// send runs one command with the engine's per-command timeout.
func (e *Engine) send(ctx context.Context, panelID, name string, args any) (json.RawMessage, error) {
	ctx, cancel := context.WithTimeout(ctx, e.cfg.CommandTimeout)
	defer cancel()
	return e.link.Send(ctx, panelID, name, args)
}

// codeDigest stands in for a user code: equal codes give equal digests, so
// a changed code is noticed, but the key keeps a stolen digest from being
// tried against the 10,000 four-digit codes.
func (e *Engine) codeDigest(locationID string, number int, code string) string {
	m := hmac.New(sha256.New, e.cfg.CodeKey)
	m.Write([]byte(locationID + ":" + strconv.Itoa(number) + ":" + code))
	return hex.EncodeToString(m.Sum(nil))
}

func invalidAnswer(what string, err error) error {
	return &runError{code: panel.FailPanelError, message: fmt.Sprintf("the panel sent invalid %s data: %s", what, err.Error()), permanent: true}
}

func validateUsers(res panel.UsersGetResult) error {
	if len(res.Users) > maxPanelUsers {
		return fmt.Errorf("%d users is more than a panel holds", len(res.Users))
	}
	if len(res.Watermark) > 64 {
		return fmt.Errorf("watermark is longer than 64 characters")
	}
	seen := make(map[int]bool, len(res.Users))
	for _, u := range res.Users {
		switch {
		case u.Number < 1 || u.Number > maxUserNumber:
			return fmt.Errorf("user number %d is outside 1..%d", u.Number, maxUserNumber)
		case seen[u.Number]:
			return fmt.Errorf("user number %d appears twice", u.Number)
		case len(u.Email) > 254:
			return fmt.Errorf("user %d: e-mail is longer than 254 characters", u.Number)
		case len(u.AccessSchedule) > 200:
			return fmt.Errorf("user %d: access schedule is longer than 200 characters", u.Number)
		case len(u.Code) > 16:
			return fmt.Errorf("user %d: code is longer than 16 characters", u.Number)
		case len(u.Partitions) > maxPartitionNo:
			return fmt.Errorf("user %d: too many partitions", u.Number)
		}
		for _, text := range []struct {
			field, value string
			max          int
		}{{"name", u.Name, panel.MaxTextRunes}, {"email", u.Email, 254}, {"access_schedule", u.AccessSchedule, 200}} {
			if err := panel.CheckText(text.field, text.value, text.max); err != nil {
				return fmt.Errorf("user %d: %w", u.Number, err)
			}
		}
		switch u.Authority {
		case panel.AuthorityMaster, panel.AuthorityStandard, panel.AuthorityArmOnly, panel.AuthorityGuest, panel.AuthorityDuress:
		default:
			return fmt.Errorf("user %d: unknown authority %q", u.Number, u.Authority)
		}
		for _, p := range u.Partitions {
			if p < 1 || p > maxPartitionNo {
				return fmt.Errorf("user %d: partition %d is outside 1..%d", u.Number, p, maxPartitionNo)
			}
		}
		seen[u.Number] = true
	}
	for _, n := range res.Removed {
		if n < 1 || n > maxUserNumber {
			return fmt.Errorf("removed user number %d is outside 1..%d", n, maxUserNumber)
		}
	}
	return nil
}

type usersDiff struct {
	insert  []models.PanelUser
	update  []models.PanelUser
	remove  []int
	counts  counts
	changes []Change
}

// diffUsers reconciles the remote copy with a panel's answer. In full mode
// every user the panel did not send is removed; in incremental mode only
// those it says were removed.
func diffUsers(locationID string, existing []models.PanelUser, got UsersData, digests map[int]string) usersDiff {
	var d usersDiff
	byNumber := make(map[int]models.PanelUser, len(existing))
	for _, u := range existing {
		byNumber[u.UserNumber] = u
	}
	sent := make(map[int]bool, len(got.Users))
	for _, u := range got.Users {
		sent[u.Number] = true
		row := models.PanelUser{
			LocationID:     locationID,
			UserNumber:     u.Number,
			Name:           u.Name,
			Email:          u.Email,
			ExternalID:     got.ExternalIDs[u.Number],
			Authority:      u.Authority,
			Partitions:     joinInts(u.Partitions),
			AccessSchedule: u.AccessSchedule,
			HasCode:        u.HasCode,
			CodeDigest:     digests[u.Number],
		}
		old, ok := byNumber[u.Number]
		if !ok {
			row.ID = models.NewID()
			d.insert = append(d.insert, row)
			d.counts.Added++
			d.changes = append(d.changes, Change{Action: "added", Number: u.Number, Name: u.Name})
			continue
		}
		if _, named := got.ExternalIDs[u.Number]; !named {
			row.ExternalID = old.ExternalID
		}
		if row.HasCode && row.CodeDigest == "" {
			// The panel says there is a code without disclosing it: keep
			// the digest we know.
			row.CodeDigest = old.CodeDigest
		}
		fields := userFieldChanges(old, row)
		if len(fields) == 0 {
			d.counts.Unchanged++
			continue
		}
		row.ID = old.ID
		d.update = append(d.update, row)
		d.counts.Updated++
		d.changes = append(d.changes, Change{Action: "updated", Number: u.Number, Name: u.Name, Fields: fields})
	}
	var gone []int
	if got.Full {
		for n := range byNumber {
			if !sent[n] {
				gone = append(gone, n)
			}
		}
	} else {
		for _, n := range got.Removed {
			if _, ok := byNumber[n]; ok && !sent[n] {
				gone = append(gone, n)
			}
		}
	}
	slices.Sort(gone)
	gone = slices.Compact(gone)
	for _, n := range gone {
		d.remove = append(d.remove, n)
		d.counts.Removed++
		d.changes = append(d.changes, Change{Action: "removed", Number: n, Name: byNumber[n].Name})
	}
	return d
}

func userFieldChanges(old, row models.PanelUser) []FieldChange {
	var out []FieldChange
	add := func(field string, from, to any) {
		if from != to {
			out = append(out, FieldChange{Field: field, From: from, To: to})
		}
	}
	add("name", old.Name, row.Name)
	add("email", old.Email, row.Email)
	add("external_id", old.ExternalID, row.ExternalID)
	add("authority", old.Authority, row.Authority)
	if old.Partitions != row.Partitions {
		out = append(out, FieldChange{Field: "partitions", From: splitInts(old.Partitions), To: splitInts(row.Partitions)})
	}
	add("access_schedule", old.AccessSchedule, row.AccessSchedule)
	add("has_code", old.HasCode, row.HasCode)
	if old.CodeDigest != row.CodeDigest {
		out = append(out, FieldChange{Field: "code"})
	}
	return out
}

func joinInts(ns []int) string {
	sorted := slices.Clone(ns)
	slices.Sort(sorted)
	sorted = slices.Compact(sorted)
	parts := make([]string, len(sorted))
	for i, n := range sorted {
		parts[i] = strconv.Itoa(n)
	}
	return strings.Join(parts, ",")
}

// splitInts reads a stored partition list back into numbers.
func splitInts(s string) []int {
	out := []int{}
	for _, p := range strings.Split(s, ",") {
		if n, err := strconv.Atoi(p); err == nil {
			out = append(out, n)
		}
	}
	return out
}
