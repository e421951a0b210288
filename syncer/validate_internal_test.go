package syncer

import (
	"strings"
	"testing"

	"github.com/panelsync/panelsync/panel"
)

func TestConfigItems_ControlCharactersInANameOrType_RefusedNamingTheItem(t *testing.T) {
	cases := map[string]struct {
		cfg  panel.Config
		want string
	}{
		"partition name": {panel.Config{Partitions: []panel.Partition{{Number: 1, Name: "Home\nAlarm in zone 9"}}}, "partition 1: name"},
		"zone name":      {panel.Config{Zones: []panel.Zone{{Number: 4, Name: "Front\x1b[2JDoor", Type: "entry", Partition: 1}}}, "zone 4: name"},
		"zone type":      {panel.Config{Zones: []panel.Zone{{Number: 5, Name: "Back", Type: "entry\x00", Partition: 1}}}, "zone 5: type"},
		"device name":    {panel.Config{Devices: []panel.Device{{Number: 2, Name: "Keypad\x7f", Type: "keypad"}}}, "device 2: name"},
	}
	for name, tc := range cases {
		_, err := configItems("loc", tc.cfg)
		if err == nil || !strings.Contains(err.Error(), tc.want+" must not contain control characters") {
			t.Errorf("%s: %v, want a refusal starting %q", name, err, tc.want)
		}
	}
	clean := panel.Config{
		Partitions: []panel.Partition{{Number: 1, Name: "Maison — étage"}},
		Zones:      []panel.Zone{{Number: 1, Name: "Porte d'entrée", Type: "entry", Partition: 1}},
	}
	if items, err := configItems("loc", clean); err != nil || len(items) != 2 {
		t.Fatalf("a clean configuration: %d items, %v", len(items), err)
	}
}

func TestValidateUsers_ControlCharactersInText_RefusedNamingTheUser(t *testing.T) {
	user := func(mod func(*panel.User)) panel.UsersGetResult {
		u := panel.User{Number: 7, Name: "Ann", Authority: panel.AuthorityStandard, Partitions: []int{1}}
		mod(&u)
		return panel.UsersGetResult{Full: true, Users: []panel.User{u}}
	}
	cases := map[string]panel.UsersGetResult{
		"user 7: name":            user(func(u *panel.User) { u.Name = "Ann\u0085\nSmith" }),
		"user 7: email":           user(func(u *panel.User) { u.Email = "ann@example.com\r\nBcc: x@example.com" }),
		"user 7: access_schedule": user(func(u *panel.User) { u.AccessSchedule = "weekdays\t9-5" }),
	}
	for want, res := range cases {
		if err := validateUsers(res); err == nil || !strings.Contains(err.Error(), want+" must not contain control characters") {
			t.Errorf("%v, want a refusal starting %q", err, want)
		}
	}
	if err := validateUsers(user(func(u *panel.User) { u.Name = "Zoë Ångström" })); err != nil {
		t.Fatalf("a clean user: %v", err)
	}
}
