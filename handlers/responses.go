package handlers

import (
	"time"

	"github.com/panelsync/panelsync/auth"
	"github.com/panelsync/panelsync/models"
)

// The types below are what clients receive. They are built from the
// storage rows by the converters that follow, which pick each field a
// client may see; a row is never serialized directly.

// TokenResponse answers login and refresh.
type TokenResponse struct {
	AccessToken  string `json:"access_token"`
	RefreshToken string `json:"refresh_token"`
	TokenType    string `json:"token_type"`
	ExpiresIn    int    `json:"expires_in"`
}

// MeResponse describes the signed-in login.
type MeResponse struct {
	ID        string `json:"id"`
	Email     string `json:"email"`
	Name      string `json:"name"`
	Role      string `json:"role"`
	AccountID string `json:"account_id"`
}

// LocationResponse is the Location of the API contract, with its settings.
type LocationResponse struct {
	ID        string                   `json:"id"`
	Name      string                   `json:"name"`
	Group     string                   `json:"group"`
	Panel     PanelSummary             `json:"panel"`
	Sync      SyncSummary              `json:"sync"`
	Settings  LocationSettingsResponse `json:"settings"`
	CreatedAt time.Time                `json:"created_at"`
	UpdatedAt time.Time                `json:"updated_at"`
}

// PanelSummary is the panel block of a location.
type PanelSummary struct {
	Serial     string     `json:"serial"`
	Connection string     `json:"connection"`
	LastSeenAt *time.Time `json:"last_seen_at"`
	ArmedState string     `json:"armed_state"`
}

// SyncSummary is the sync block of a location.
type SyncSummary struct {
	Status          string     `json:"status"`
	UsersSyncedAt   *time.Time `json:"users_synced_at"`
	PanelSyncedAt   *time.Time `json:"panel_synced_at"`
	RefreshedAt     *time.Time `json:"refreshed_at"`
	ForcePending    bool       `json:"force_pending"`
	NextScheduledAt *time.Time `json:"next_scheduled_at"`
}

// LocationSettingsResponse holds the per-location sync options.
type LocationSettingsResponse struct {
	SyncIntervalMinutes    int      `json:"sync_interval_minutes"`
	AutoApply              bool     `json:"auto_apply"`
	ForceUpdateAll         bool     `json:"force_update_all"`
	SafetyThresholdPercent int      `json:"safety_threshold_percent"`
	ReportEmails           []string `json:"report_emails"`
}

// CreatedLocationResponse answers a location's creation. The device secret
// appears here once and is never shown again.
type CreatedLocationResponse struct {
	Location     LocationResponse `json:"location"`
	DeviceSecret string           `json:"device_secret"`
}

// LocationPage is one page of locations.
type LocationPage struct {
	Items      []LocationResponse `json:"items"`
	NextCursor *string            `json:"next_cursor"`
}

// HealthResponse answers /healthz and /readyz.
type HealthResponse struct {
	Status string            `json:"status"`
	Checks map[string]string `json:"checks,omitempty"`
}

func toTokenResponse(t auth.Tokens) TokenResponse {
	return TokenResponse{
		AccessToken:  t.AccessToken,
		RefreshToken: t.RefreshToken,
		TokenType:    "Bearer",
		ExpiresIn:    int(t.ExpiresIn.Seconds()),
	}
}

func toMeResponse(p auth.Principal) MeResponse {
	return MeResponse{ID: p.LoginID, Email: p.Email, Name: p.Name, Role: string(p.Role), AccountID: p.AccountID}
}

func toLocationResponse(v models.LocationView) LocationResponse {
	l, p := v.Location, v.Panel
	return LocationResponse{
		ID:    l.ID,
		Name:  l.Name,
		Group: l.GroupName,
		Panel: PanelSummary{
			Serial:     p.Serial,
			Connection: string(p.Connection),
			LastSeenAt: apiTimePtr(p.LastSeenAt),
			ArmedState: p.ArmedState,
		},
		Sync: SyncSummary{
			Status:          string(l.SyncStatus),
			UsersSyncedAt:   apiTimePtr(l.UsersSyncedAt),
			PanelSyncedAt:   apiTimePtr(l.PanelSyncedAt),
			RefreshedAt:     apiTimePtr(l.RefreshedAt),
			ForcePending:    l.ForcePending,
			NextScheduledAt: apiTimePtr(l.NextScheduledAt),
		},
		Settings: LocationSettingsResponse{
			SyncIntervalMinutes:    l.SyncIntervalMinutes,
			AutoApply:              l.AutoApply,
			ForceUpdateAll:         l.ForceUpdateAll,
			SafetyThresholdPercent: l.SafetyThresholdPercent,
			ReportEmails:           l.ReportEmailList(),
		},
		CreatedAt: apiTime(l.CreatedAt),
		UpdatedAt: apiTime(l.UpdatedAt),
	}
}

// apiTime renders times in UTC at millisecond precision, the precision
// both databases keep, so a value reads the same before and after a round
// trip through storage.
func apiTime(t time.Time) time.Time { return t.UTC().Truncate(time.Millisecond) }

func apiTimePtr(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	v := apiTime(*t)
	return &v
}
