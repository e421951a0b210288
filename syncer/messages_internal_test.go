package syncer

import (
	"testing"
	"time"

	"github.com/panelsync/panelsync/models"
)

func TestUsersSummary_FirstReadRecordsTheUsers_LaterReadsCountChanges(t *testing.T) {
	for _, tc := range []struct {
		name     string
		c        counts
		onRecord int
		full     bool
		want     string
	}{
		{"first full read", counts{Added: 20}, 0, true, "recorded the panel's 20 users"},
		{"first read of one user", counts{Added: 1}, 0, true, "recorded the panel's 1 user"},
		{"first read of an empty panel", counts{}, 0, true, "the panel has no users"},
		{"later read", counts{Added: 1, Updated: 1, Removed: 1}, 12, true, "1 added, 1 updated, 1 removed"},
		{"incremental read onto an empty record", counts{Added: 2}, 0, false, "2 added"},
		{"nothing changed", counts{Unchanged: 20}, 20, false, "no changes"},
	} {
		if got := usersSummary(tc.c, tc.onRecord, tc.full); got != tc.want {
			t.Errorf("%s: %q, want %q", tc.name, got, tc.want)
		}
	}
}

func TestConfigSummary_SaysWhatWasReadByKind(t *testing.T) {
	item := func(kind string, n int, name string) models.PanelConfigItem {
		return models.PanelConfigItem{Kind: kind, Number: n, Name: name}
	}
	panel := []models.PanelConfigItem{
		item(itemPartition, 1, "House"), item(itemZone, 1, "Front Door"), item(itemZone, 2, "Hall Motion"), item(itemDevice, 1, "Keypad"),
	}
	first := diffConfig(nil, panel)
	if got, want := configSummary(first, 0, panel), "recorded the panel's 1 partition, 2 zones and 1 device"; got != want {
		t.Errorf("first read: %q, want %q", got, want)
	}
	existing := append([]models.PanelConfigItem(nil), first.insert...)
	renamed := append([]models.PanelConfigItem(nil), panel...)
	renamed[2].Name = "Landing Motion"
	renamed = append(renamed[:3], item(itemZone, 3, "Garage Door"))
	d := diffConfig(existing, renamed)
	if got, want := configSummary(d, len(existing), renamed), "1 zone added, 1 zone updated, 1 device removed (1 partition, 3 zones, 0 devices)"; got != want {
		t.Errorf("later read: %q, want %q", got, want)
	}
	same := diffConfig(existing, panel)
	if got, want := configSummary(same, len(existing), panel), "no changes (1 partition, 2 zones, 1 device)"; got != want {
		t.Errorf("unchanged: %q, want %q", got, want)
	}
}

func TestRequestMessages_SayWhoAskedOrWhatHappenedAtThePanel(t *testing.T) {
	person := models.Actor{Kind: "login", Name: "ana@example.com"}
	for _, tc := range []struct {
		actor models.Actor
		want  string
	}{
		{person, "User sync requested by ana@example.com"},
		{systemActor(actorSchedule, "a"), "Scheduled user sync"},
		{systemActor(actorFirstConnection, "a"), "The panel connected for the first time: reading all its users"},
		{systemActor(actorCheckin, "a"), "The panel checked in: running the full user sync requested for its next check-in"},
		{systemActor(actorKeypadChange, "a"), "Users were changed at the panel's keypad: reading the changes"},
	} {
		if got := requestedMessage(tc.actor, models.RunUsers, models.TriggerApp); got != tc.want {
			t.Errorf("%s: %q, want %q", tc.actor.Name, got, tc.want)
		}
	}
	if got, want := refusedMessage(systemActor(actorSchedule, "a"), models.RunUsers, models.TriggerSchedule, "the panel is not connected"),
		"Scheduled user sync could not start: the panel is not connected"; got != want {
		t.Errorf("refused schedule: %q, want %q", got, want)
	}
	for _, tc := range []struct {
		wait time.Duration
		want string
	}{
		{300 * time.Millisecond, "User sync: the panel did not answer in time; trying again in a moment (attempt 2 of 3)"},
		{20 * time.Second, "User sync: the panel did not answer in time; trying again in 20 s (attempt 2 of 3)"},
		{3 * time.Minute, "User sync: the panel did not answer in time; trying again in 3 min (attempt 2 of 3)"},
	} {
		if got := retryMessage(models.RunUsers, models.TriggerApp, "the panel did not answer in time", tc.wait, 2, 3); got != tc.want {
			t.Errorf("retry in %v: %q, want %q", tc.wait, got, tc.want)
		}
	}
}
