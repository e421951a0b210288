package models

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/mail"
	"regexp"
	"strings"
	"time"
)

// Location settings bounds and defaults.
const (
	DefaultSyncIntervalMinutes    = 24 * 60
	MinSyncIntervalMinutes        = 15
	MaxSyncIntervalMinutes        = 30 * 24 * 60
	DefaultSafetyThresholdPercent = 20
	// MaxSafetyThresholdCount is the largest count limit: more users than
	// a panel holds.
	MaxSafetyThresholdCount = 100000
	MaxReportEmails         = 20
	MaxLocationPageSize     = 200
	DefaultLocationPageSize = 50
	MaxLocationNameRunes    = 200
	MaxGroupRunes           = 100
)

var serialPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{3,63}$`)

// LocationView is a location together with its panel, the shape every
// location read returns.
type LocationView struct {
	Location Location
	Panel    Panel
}

// ReportEmailList decodes the location's report recipients.
func (l Location) ReportEmailList() []string {
	var out []string
	if l.ReportEmails != "" {
		_ = json.Unmarshal([]byte(l.ReportEmails), &out)
	}
	if out == nil {
		out = []string{}
	}
	return out
}

// LocationSettings are the fields a create or an update may set. A nil
// field is left as it is (or takes its default on create).
type LocationSettings struct {
	Name                   *string
	Group                  *string
	SyncIntervalMinutes    *int
	AutoApply              *bool
	ForceUpdateAll         *bool
	SafetyThresholdPercent *int
	SafetyThresholdCount   *int
	ReportEmails           *[]string
	// Rank is the rank of the nodes that run the location's syncs.
	Rank *int
}

// NewLocation is what creating a location needs. SecretHash is the digest
// of the device secret the caller generated and will show once.
type NewLocation struct {
	Settings    LocationSettings
	PanelSerial string
	SecretHash  string
}

// validate checks every set field and returns the first problem, naming
// the request field.
func (s LocationSettings) validate() error {
	if s.Name != nil {
		if _, err := Label("name", *s.Name, MaxLocationNameRunes, true); err != nil {
			return err
		}
	}
	if s.Group != nil {
		if _, err := Label("group", *s.Group, MaxGroupRunes, false); err != nil {
			return err
		}
	}
	if s.SyncIntervalMinutes != nil {
		v := *s.SyncIntervalMinutes
		if v < MinSyncIntervalMinutes || v > MaxSyncIntervalMinutes {
			return FieldError("settings.sync_interval_minutes", "sync_interval_minutes must be between %d and %d", MinSyncIntervalMinutes, MaxSyncIntervalMinutes)
		}
	}
	if s.SafetyThresholdPercent != nil {
		v := *s.SafetyThresholdPercent
		if v < 1 || v > 100 {
			return FieldError("settings.safety_threshold_percent", "safety_threshold_percent must be between 1 and 100")
		}
	}
	if s.SafetyThresholdCount != nil {
		if v := *s.SafetyThresholdCount; v < 0 || v > MaxSafetyThresholdCount {
			return FieldError("settings.safety_threshold_count", "safety_threshold_count must be between 0 (no count limit) and %d", MaxSafetyThresholdCount)
		}
	}
	if s.Rank != nil {
		if err := ValidateRank("rank", *s.Rank); err != nil {
			return err
		}
	}
	if s.ReportEmails != nil {
		if len(*s.ReportEmails) > MaxReportEmails {
			return FieldError("settings.report_emails", "at most %d report e-mail addresses", MaxReportEmails)
		}
		for _, e := range *s.ReportEmails {
			addr, err := mail.ParseAddress(e)
			if err != nil || addr.Address != strings.TrimSpace(e) {
				return FieldError("settings.report_emails", "%q is not a valid e-mail address", e)
			}
		}
	}
	return nil
}

// apply copies the set fields onto loc.
func (s LocationSettings) apply(loc *Location) {
	if s.Name != nil {
		loc.Name = strings.TrimSpace(*s.Name)
	}
	if s.Group != nil {
		loc.GroupName = strings.TrimSpace(*s.Group)
	}
	if s.SyncIntervalMinutes != nil {
		loc.SyncIntervalMinutes = *s.SyncIntervalMinutes
	}
	if s.AutoApply != nil {
		loc.AutoApply = *s.AutoApply
	}
	if s.ForceUpdateAll != nil {
		loc.ForceUpdateAll = *s.ForceUpdateAll
	}
	if s.SafetyThresholdPercent != nil {
		loc.SafetyThresholdPercent = *s.SafetyThresholdPercent
	}
	if s.SafetyThresholdCount != nil {
		loc.SafetyThresholdCount = *s.SafetyThresholdCount
	}
	if s.Rank != nil {
		loc.WorkerRank = *s.Rank
	}
	if s.ReportEmails != nil {
		emails := make([]string, 0, len(*s.ReportEmails))
		for _, e := range *s.ReportEmails {
			emails = append(emails, NormalizeEmail(e))
		}
		b, _ := json.Marshal(emails)
		loc.ReportEmails = string(b)
	}
}

// CreateLocation inserts a location and its panel, and audits it. A serial
// already registered answers conflict.
func (s *Store) CreateLocation(ctx context.Context, actor Actor, in NewLocation) (LocationView, error) {
	if in.Settings.Name == nil {
		return LocationView{}, FieldError("name", "name is required")
	}
	if err := in.Settings.validate(); err != nil {
		return LocationView{}, err
	}
	serial := strings.TrimSpace(in.PanelSerial)
	if !serialPattern.MatchString(serial) {
		return LocationView{}, FieldError("panel_serial", "panel_serial must be 4 to 64 letters, digits, '.', '_' or '-', starting with a letter or digit")
	}
	now := time.Now().UTC()
	loc := Location{
		ID:                     NewID(),
		AccountID:              actor.AccountID,
		SyncIntervalMinutes:    DefaultSyncIntervalMinutes,
		AutoApply:              true,
		SafetyThresholdPercent: DefaultSafetyThresholdPercent,
		ReportEmails:           "[]",
		SyncStatus:             SyncNever,
	}
	in.Settings.apply(&loc)
	// The first scheduled sync falls anywhere in the first interval, so
	// locations created together (an import, a seed) do not all sync at
	// the same moment ever after.
	interval := time.Duration(loc.SyncIntervalMinutes) * time.Minute
	next := now.Add(time.Duration(rand.Int64N(int64(interval))) + time.Minute)
	loc.NextScheduledAt = &next
	panel := Panel{
		ID:         NewID(),
		AccountID:  actor.AccountID,
		LocationID: loc.ID,
		Serial:     serial,
		SecretHash: in.SecretHash,
		Connection: PanelDisconnected,
		ArmedState: "unknown",
	}
	err := s.Tx(ctx, func(ctx context.Context) error {
		db := s.conn(ctx)
		if err := db.Create(&loc).Error; err != nil {
			return fmt.Errorf("create location: %w", err)
		}
		if err := db.Create(&panel).Error; err != nil {
			if isDuplicate(err) {
				return &Error{Code: CodeConflict, Field: "panel_serial", Message: fmt.Sprintf("a panel with serial %s is already registered", serial)}
			}
			return fmt.Errorf("create panel: %w", err)
		}
		return s.Audit(ctx, actor, AuditChange{
			Action: "location.create", Target: AuditTarget{Type: "location", ID: loc.ID, Name: loc.Name},
			After: locationAuditValues(loc, serial),
		})
	})
	if err != nil {
		return LocationView{}, err
	}
	return LocationView{Location: loc, Panel: panel}, nil
}

// UpdateLocation changes a location's settings and audits what changed.
func (s *Store) UpdateLocation(ctx context.Context, actor Actor, id string, set LocationSettings) (LocationView, error) {
	if err := set.validate(); err != nil {
		return LocationView{}, err
	}
	var view LocationView
	err := s.Tx(ctx, func(ctx context.Context) error {
		v, err := s.location(ctx, actor.AccountID, id, true)
		if err != nil {
			return err
		}
		before := v.Location
		set.apply(&v.Location)
		if v.Location.SyncIntervalMinutes != before.SyncIntervalMinutes {
			// A new interval takes effect from now rather than waiting out
			// the old one.
			next := time.Now().UTC().Add(time.Duration(v.Location.SyncIntervalMinutes) * time.Minute)
			v.Location.NextScheduledAt = &next
		}
		if err := s.conn(ctx).Save(&v.Location).Error; err != nil {
			return fmt.Errorf("update location: %w", err)
		}
		if v.Location.WorkerRank != before.WorkerRank {
			if err := s.setOpenRunsRank(ctx, []string{id}, v.Location.WorkerRank); err != nil {
				return err
			}
		}
		oldValues, newValues := settingsDiff(before, v.Location)
		if err := s.Audit(ctx, actor, AuditChange{
			Action: "location.update", Target: AuditTarget{Type: "location", ID: id, Name: v.Location.Name},
			Before: oldValues, After: newValues,
		}); err != nil {
			return err
		}
		view = v
		return nil
	})
	return view, err
}

// settingsDiff returns the settings that changed, as they were and as they
// are, for the audit log.
func settingsDiff(before, after Location) (old, new map[string]any) {
	was, is := locationAuditValues(before, ""), locationAuditValues(after, "")
	old, new = map[string]any{}, map[string]any{}
	for name, v := range is {
		if fmt.Sprint(was[name]) != fmt.Sprint(v) {
			old[name], new[name] = was[name], v
		}
	}
	return old, new
}

// locationAuditValues is what the audit log keeps of a location's
// settings; serial is included when set.
func locationAuditValues(loc Location, serial string) map[string]any {
	v := map[string]any{
		"name":                     loc.Name,
		"group":                    loc.GroupName,
		"sync_interval_minutes":    loc.SyncIntervalMinutes,
		"auto_apply":               loc.AutoApply,
		"force_update_all":         loc.ForceUpdateAll,
		"safety_threshold_percent": loc.SafetyThresholdPercent,
		"safety_threshold_count":   loc.SafetyThresholdCount,
		"report_emails":            loc.ReportEmailList(),
		"rank":                     loc.WorkerRank,
	}
	if serial != "" {
		v["panel_serial"] = serial
	}
	return v
}

// Location loads one location of the account with its panel. Another
// account's location is not found.
func (s *Store) Location(ctx context.Context, accountID, id string) (LocationView, error) {
	return s.location(ctx, accountID, id, false)
}

func (s *Store) location(ctx context.Context, accountID, id string, forUpdate bool) (LocationView, error) {
	var v LocationView
	db := s.conn(ctx)
	if forUpdate {
		db = lockForUpdate(db)
	}
	if err := db.Where("id = ? AND account_id = ?", id, accountID).Take(&v.Location).Error; err != nil {
		return LocationView{}, notFound(err, "location")
	}
	if err := s.conn(ctx).Where("location_id = ?", id).Take(&v.Panel).Error; err != nil {
		return LocationView{}, notFound(err, "panel")
	}
	return v, nil
}

// LocationQuery selects a page of an account's locations, ordered by name.
type LocationQuery struct {
	AccountID string
	Group     *string
	Cursor    string
	Limit     int
}

type locationCursor struct {
	Name string `json:"n"`
	ID   string `json:"i"`
}

// ListLocations returns a page of locations and the cursor of the next
// page, empty on the last one.
func (s *Store) ListLocations(ctx context.Context, q LocationQuery) ([]LocationView, string, error) {
	db := s.conn(ctx).Where("account_id = ?", q.AccountID)
	if q.Group != nil {
		db = db.Where("group_name = ?", *q.Group)
	}
	if q.Cursor != "" {
		cur, err := decodeCursor(q.Cursor, func(c locationCursor) bool { return c.ID != "" })
		if err != nil {
			return nil, "", err
		}
		db = db.Where("(name > ? OR (name = ? AND id > ?))", cur.Name, cur.Name, cur.ID)
	}
	limit := q.Limit
	var locs []Location
	if err := db.Order("name, id").Limit(limit + 1).Find(&locs).Error; err != nil {
		return nil, "", fmt.Errorf("list locations: %w", err)
	}
	next := ""
	if len(locs) > limit {
		locs = locs[:limit]
		last := locs[len(locs)-1]
		next = encodeCursor(locationCursor{Name: last.Name, ID: last.ID})
	}
	views, err := s.withPanels(ctx, locs)
	return views, next, err
}

func (s *Store) withPanels(ctx context.Context, locs []Location) ([]LocationView, error) {
	if len(locs) == 0 {
		return []LocationView{}, nil
	}
	ids := make([]string, len(locs))
	for i, l := range locs {
		ids[i] = l.ID
	}
	var panels []Panel
	if err := s.conn(ctx).Where("location_id IN ?", ids).Find(&panels).Error; err != nil {
		return nil, fmt.Errorf("load panels: %w", err)
	}
	byLocation := make(map[string]Panel, len(panels))
	for _, p := range panels {
		byLocation[p.LocationID] = p
	}
	views := make([]LocationView, len(locs))
	for i, l := range locs {
		views[i] = LocationView{Location: l, Panel: byLocation[l.ID]}
	}
	return views, nil
}

// encodeCursor turns the position a page ended at into the opaque cursor
// a client passes back for the next page.
func encodeCursor[T any](c T) string {
	b, _ := json.Marshal(c)
	return base64.RawURLEncoding.EncodeToString(b)
}

// decodeCursor reads a cursor encodeCursor made; valid tells a complete
// position from what a client made up.
func decodeCursor[T any](s string, valid func(T) bool) (T, error) {
	var c T
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err == nil {
		err = json.Unmarshal(b, &c)
	}
	if err != nil || !valid(c) {
		var zero T
		return zero, FieldError("cursor", "cursor is not one this server issued")
	}
	return c, nil
}

// PanelBySerial finds a panel by its serial, across accounts: the device
// link identifies a panel by serial alone.
func (s *Store) PanelBySerial(ctx context.Context, serial string) (Panel, error) {
	var p Panel
	if err := s.conn(ctx).Where("serial = ?", serial).Take(&p).Error; err != nil {
		return Panel{}, notFound(err, "panel")
	}
	return p, nil
}
