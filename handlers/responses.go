package handlers

import (
	"context"
	"encoding/json"
	"time"

	"github.com/panelsync/panelsync/auth"
	"github.com/panelsync/panelsync/models"
	"github.com/panelsync/panelsync/panel"
	"github.com/panelsync/panelsync/realtime"
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

// MeResponse describes who the token speaks for: a signed-in login, or an
// API key with its scopes.
type MeResponse struct {
	ID        string `json:"id"`
	Email     string `json:"email"`
	Name      string `json:"name"`
	Role      string `json:"role"`
	AccountID string `json:"account_id"`
	// AccountName names the account the request acts on, so a person
	// sees which customer account a login belongs to.
	AccountName string   `json:"account_name"`
	Kind        string   `json:"kind"`
	Scopes      []string `json:"scopes,omitempty"`
	// HomeAccountID and Grants are for support logins: the staff account
	// they belong to, and the customer accounts they may act on now (with
	// the X-Account-Id header).
	HomeAccountID string         `json:"home_account_id,omitempty"`
	Grants        *[]GrantedToMe `json:"grants,omitempty"`
}

// GrantedToMe is a customer account a support login may act on.
type GrantedToMe struct {
	AccountID   string     `json:"account_id"`
	AccountName string     `json:"account_name"`
	ExpiresAt   *time.Time `json:"expires_at"`
}

// APIKeyResponse describes an API key. Neither its secret nor the digest
// stored for it is ever part of it.
type APIKeyResponse struct {
	ID         string     `json:"id"`
	Name       string     `json:"name"`
	Prefix     string     `json:"prefix"`
	Scopes     []string   `json:"scopes"`
	CreatedBy  string     `json:"created_by"`
	Creator    LoginRef   `json:"creator"`
	CreatedAt  time.Time  `json:"created_at"`
	LastUsedAt *time.Time `json:"last_used_at"`
	ExpiresAt  *time.Time `json:"expires_at"`
	RevokedAt  *time.Time `json:"revoked_at"`
}

// LoginRef names a login for people: who created an API key.
type LoginRef struct {
	ID    string `json:"id"`
	Name  string `json:"name"`
	Email string `json:"email"`
}

// CreatedAPIKeyResponse answers a key's creation. The secret appears here
// once and is never shown again.
type CreatedAPIKeyResponse struct {
	APIKey APIKeyResponse `json:"api_key"`
	Secret string         `json:"secret"`
}

// APIKeyList lists an account's keys, newest first.
type APIKeyList struct {
	Items []APIKeyResponse `json:"items"`
}

// LocationResponse is the Location of the API contract, with its settings.
type LocationResponse struct {
	ID        string                   `json:"id"`
	Name      string                   `json:"name"`
	Group     string                   `json:"group"`
	Rank      int                      `json:"rank"`
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
	// LastFailure is the failed run behind sync_failure; HeldRunID the
	// run awaiting Apply behind held. Each is null in any other status.
	LastFailure *SyncFailureResponse `json:"last_failure"`
	HeldRunID   *string              `json:"held_run_id"`
}

// SyncFailureResponse is the failed run that put a location in
// sync_failure.
type SyncFailureResponse struct {
	RunID   string    `json:"run_id"`
	Code    string    `json:"code"`
	Message string    `json:"message"`
	At      time.Time `json:"at"`
}

// LocationSettingsResponse holds the per-location sync options.
type LocationSettingsResponse struct {
	SyncIntervalMinutes    int      `json:"sync_interval_minutes"`
	AutoApply              bool     `json:"auto_apply"`
	ForceUpdateAll         bool     `json:"force_update_all"`
	SafetyThresholdPercent int      `json:"safety_threshold_percent"`
	SafetyThresholdCount   int      `json:"safety_threshold_count"`
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

// GroupRankResponse answers PUT /v1/groups/{name}/rank.
type GroupRankResponse struct {
	Group     string `json:"group"`
	Rank      int    `json:"rank"`
	Locations int    `json:"locations"`
}

// HealthResponse answers /healthz and /readyz.
type HealthResponse struct {
	Status string            `json:"status"`
	Checks map[string]string `json:"checks,omitempty"`
	// StrandedRanks lists the ranks whose runs wait with no running node
	// to serve them. They leave this node ready: the remedy is a node of
	// that rank, not traffic taken from this one.
	StrandedRanks []StrandedRankResponse `json:"stranded_ranks,omitempty"`
}

// StrandedRankResponse is one rank's queued runs, all accounts together,
// that no running node serves.
type StrandedRankResponse struct {
	Rank   int `json:"rank"`
	Queued int `json:"queued"`
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
	if p.IsAPIKey() {
		return MeResponse{ID: p.APIKeyID, Name: p.Name, Role: string(p.Role), AccountID: p.AccountID, Kind: "api_key", Scopes: p.Scopes.Strings()}
	}
	return MeResponse{ID: p.LoginID, Email: p.Email, Name: p.Name, Role: string(p.Role), AccountID: p.AccountID, Kind: "login"}
}

func toAPIKeyResponse(v models.APIKeyView) APIKeyResponse {
	k := v.APIKey
	return APIKeyResponse{
		ID:         k.ID,
		Name:       k.Name,
		Prefix:     k.Prefix,
		Scopes:     auth.StoredScopes(k).Strings(),
		CreatedBy:  k.CreatedBy,
		Creator:    LoginRef{ID: v.Creator.ID, Name: v.Creator.Name, Email: v.Creator.Email},
		CreatedAt:  apiTime(k.CreatedAt),
		LastUsedAt: apiTimePtr(k.LastUsedAt),
		ExpiresAt:  apiTimePtr(k.ExpiresAt),
		RevokedAt:  apiTimePtr(k.RevokedAt),
	}
}

// toLocationResponse converts a location; cause is the run its sync status
// points at (models.Store.SyncCauses), zero for a status that points at
// none.
func toLocationResponse(v models.LocationView, cause models.SyncCause) LocationResponse {
	l, p := v.Location, v.Panel
	out := LocationResponse{
		ID:    l.ID,
		Name:  l.Name,
		Group: l.GroupName,
		Rank:  l.WorkerRank,
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
			SafetyThresholdCount:   l.SafetyThresholdCount,
			ReportEmails:           l.ReportEmailList(),
		},
		CreatedAt: apiTime(l.CreatedAt),
		UpdatedAt: apiTime(l.UpdatedAt),
	}
	if f := cause.LastFailure; f != nil && l.SyncStatus == models.SyncFailure {
		out.Sync.LastFailure = &SyncFailureResponse{RunID: f.RunID, Code: f.Code, Message: f.Message, At: apiTime(f.At)}
	}
	if cause.HeldRunID != "" && l.SyncStatus == models.SyncHeld {
		out.Sync.HeldRunID = &cause.HeldRunID
	}
	return out
}

// locationResponses converts a page of locations, finding the runs their
// sync statuses point at with one query for the whole page.
func locationResponses(ctx context.Context, store *models.Store, views []models.LocationView) ([]LocationResponse, error) {
	locs := make([]models.Location, len(views))
	for i, v := range views {
		locs[i] = v.Location
	}
	causes, err := store.SyncCauses(ctx, locs)
	if err != nil {
		return nil, err
	}
	out := make([]LocationResponse, len(views))
	for i, v := range views {
		out[i] = toLocationResponse(v, causes[v.Location.ID])
	}
	return out, nil
}

// locationResponse converts one location with the run its sync status
// points at.
func locationResponse(ctx context.Context, store *models.Store, v models.LocationView) (LocationResponse, error) {
	out, err := locationResponses(ctx, store, []models.LocationView{v})
	if err != nil {
		return LocationResponse{}, err
	}
	return out[0], nil
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

// RunResponse is the Run of the API contract.
type RunResponse struct {
	ID          string       `json:"id"`
	LocationID  string       `json:"location_id"`
	BatchID     *string      `json:"batch_id"`
	Kind        string       `json:"kind"`
	Mode        string       `json:"mode"`
	Trigger     string       `json:"trigger"`
	State       string       `json:"state"`
	RequestedBy string       `json:"requested_by"`
	Attempt     int          `json:"attempt"`
	CreatedAt   time.Time    `json:"created_at"`
	StartedAt   *time.Time   `json:"started_at"`
	FinishedAt  *time.Time   `json:"finished_at"`
	Changes     ChangeCounts `json:"changes"`
	Error       *RunError    `json:"error"`
	// ReappliedFrom names the run a re-apply restores; ImportID the upload
	// an import run came from.
	ReappliedFrom *string `json:"reapplied_from"`
	ImportID      *string `json:"import_id"`
}

// ChangeCounts counts what a run changed.
type ChangeCounts struct {
	Added     int `json:"added"`
	Updated   int `json:"updated"`
	Removed   int `json:"removed"`
	Unchanged int `json:"unchanged"`
}

// RunError is why a run failed, or why its last attempt did.
type RunError struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// SyncResponse answers a sync request.
type SyncResponse struct {
	Run          RunResponse `json:"run"`
	Message      string      `json:"message"`
	Deduplicated bool        `json:"deduplicated,omitempty"`
}

// RunPage is one page of runs, newest first.
type RunPage struct {
	Items      []RunResponse `json:"items"`
	NextCursor *string       `json:"next_cursor"`
}

// ChangesResponse is what a run changed, record by record.
type ChangesResponse struct {
	Counts  ChangeCounts      `json:"counts"`
	Changes []json.RawMessage `json:"changes"`
}

// EventPage is one page of the Event Log.
type EventPage struct {
	Items      []realtime.Event `json:"items"`
	NextAfter  *int64           `json:"next_after,omitempty"`
	NextBefore *int64           `json:"next_before,omitempty"`
}

// PanelUserResponse is one user of the remote copy. The code itself is
// never stored; has_code says whether the slot has one.
type PanelUserResponse struct {
	Number         int       `json:"number"`
	Name           string    `json:"name"`
	Email          string    `json:"email"`
	Authority      string    `json:"authority"`
	Partitions     []int     `json:"partitions"`
	AccessSchedule string    `json:"access_schedule"`
	HasCode        bool      `json:"has_code"`
	LoginID        *string   `json:"login_id"`
	UpdatedAt      time.Time `json:"updated_at"`
}

// PanelUsersResponse lists a location's panel users.
type PanelUsersResponse struct {
	Items    []PanelUserResponse `json:"items"`
	SyncedAt *time.Time          `json:"synced_at"`
}

// PanelConfigResponse is the remote copy of a panel's configuration.
type PanelConfigResponse struct {
	Partitions []panel.Partition `json:"partitions"`
	Zones      []panel.Zone      `json:"zones"`
	Devices    []panel.Device    `json:"devices"`
	SyncedAt   *time.Time        `json:"synced_at"`
}

// PanelStatusResponse is a panel's link and last known status.
type PanelStatusResponse struct {
	Connection  string        `json:"connection"`
	LastSeenAt  *time.Time    `json:"last_seen_at"`
	ArmedState  string        `json:"armed_state"`
	Status      *panel.Status `json:"status"`
	RefreshedAt *time.Time    `json:"refreshed_at"`
}

func toRunResponse(r models.Run) RunResponse {
	out := RunResponse{
		ID:            r.ID,
		LocationID:    r.LocationID,
		BatchID:       r.BatchID,
		Kind:          string(r.Kind),
		Mode:          string(r.Mode),
		Trigger:       string(r.TriggerSource),
		State:         string(r.State),
		RequestedBy:   r.RequestedBy,
		Attempt:       r.Attempt,
		CreatedAt:     apiTime(r.CreatedAt),
		StartedAt:     apiTimePtr(r.StartedAt),
		FinishedAt:    apiTimePtr(r.FinishedAt),
		Changes:       ChangeCounts{Added: r.Added, Updated: r.Updated, Removed: r.Removed, Unchanged: r.Unchanged},
		ReappliedFrom: r.ReappliedFrom,
		ImportID:      r.ImportID,
	}
	if r.ErrorCode != "" {
		out.Error = &RunError{Code: r.ErrorCode, Message: r.ErrorMessage}
	}
	return out
}
