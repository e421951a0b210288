package sim

import (
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/panelsync/panelsync/panel"
)

func TestGenerationIsDeterministic(t *testing.T) {
	t.Parallel()
	a := NewPanel(Credentials{Serial: "SN-1", Secret: "x"}, Options{Seed: 42})
	b := NewPanel(Credentials{Serial: "SN-1", Secret: "y"}, Options{Seed: 42})
	if !reflect.DeepEqual(a.Users(), b.Users()) || !reflect.DeepEqual(a.Config(), b.Config()) || !reflect.DeepEqual(a.Status(), b.Status()) {
		t.Fatal("same serial and seed generated different panels")
	}
	if a.Watermark() == b.Watermark() {
		t.Fatal("two runs share a watermark epoch; a stale watermark would be trusted")
	}
	c := NewPanel(Credentials{Serial: "SN-2", Secret: "x"}, Options{Seed: 42})
	d := NewPanel(Credentials{Serial: "SN-1", Secret: "x"}, Options{Seed: 43})
	if reflect.DeepEqual(a.Users(), c.Users()) || reflect.DeepEqual(a.Users(), d.Users()) {
		t.Fatal("another serial or seed generated the same users")
	}
}

func TestGeneratedStateIsRealistic(t *testing.T) {
	t.Parallel()
	authorities := map[string]int{}
	partitionCounts := map[int]int{}
	for i := range 200 {
		users := 1 + i%40
		p := NewPanel(Credentials{Serial: fmt.Sprintf("SN-%04d", i), Secret: "x"}, Options{Users: users, Seed: 1})
		cfg, st, us := p.Config(), p.Status(), p.Users()
		if err := checkConfig(cfg); err != nil {
			t.Fatalf("panel %d: %v", i, err)
		}
		partitionCounts[len(cfg.Partitions)]++
		if len(st.Partitions) != len(cfg.Partitions) || st.ArmedState() != panel.ArmDisarmed || !st.ACPower || st.Battery != "ok" || len(st.Troubles) != 0 || len(st.ZoneFaults) != 0 {
			t.Fatalf("panel %d: status %+v is not a healthy disarmed panel", i, st)
		}
		if err := checkUsers(us, users, cfg); err != nil {
			t.Fatalf("panel %d: %v", i, err)
		}
		for _, u := range us {
			authorities[u.Authority]++
		}
	}
	for _, a := range []string{panel.AuthorityMaster, panel.AuthorityStandard, panel.AuthorityArmOnly, panel.AuthorityGuest, panel.AuthorityDuress} {
		if authorities[a] == 0 {
			t.Errorf("no %s user on any of 200 panels", a)
		}
	}
	for n := 1; n <= 4; n++ {
		if partitionCounts[n] == 0 {
			t.Errorf("no panel with %d partitions among 200", n)
		}
	}
}

func checkConfig(cfg panel.Config) error {
	if n := len(cfg.Partitions); n < 1 || n > 4 {
		return fmt.Errorf("%d partitions, want 1 to 4", n)
	}
	if n := len(cfg.Zones); n < 8 || n > 64 {
		return fmt.Errorf("%d zones, want 8 to 64", n)
	}
	names := map[string]bool{}
	used := map[int]bool{}
	for i, z := range cfg.Zones {
		if z.Number != i+1 || z.Name == "" || names[z.Name] || z.Partition < 1 || z.Partition > len(cfg.Partitions) {
			return fmt.Errorf("bad zone %+v", z)
		}
		if !slices.Contains([]string{"door", "window", "motion", "smoke", "glassbreak", "co", "water", "panic"}, z.Type) {
			return fmt.Errorf("zone %d has type %q", z.Number, z.Type)
		}
		names[z.Name] = true
		used[z.Partition] = true
	}
	if len(used) != len(cfg.Partitions) {
		return fmt.Errorf("a partition has no zones")
	}
	types := map[string]int{}
	for _, d := range cfg.Devices {
		types[d.Type]++
	}
	if types[deviceKeypad] == 0 || types[deviceSiren] == 0 || types[deviceCommunicator] != 1 {
		return fmt.Errorf("devices %+v lack a keypad, a siren or the communicator", cfg.Devices)
	}
	if want := (len(cfg.Zones) - 1) / 8; types[deviceZoneExpander] != want {
		return fmt.Errorf("%d zones on %d expanders, want %d", len(cfg.Zones), types[deviceZoneExpander], want)
	}
	return nil
}

func checkUsers(users []panel.User, want int, cfg panel.Config) error {
	if len(users) != want {
		return fmt.Errorf("%d users, want %d", len(users), want)
	}
	if users[0].Number != 1 || users[0].Authority != panel.AuthorityMaster {
		return fmt.Errorf("user 1 is %+v, want the master", users[0])
	}
	codes := map[string]bool{}
	codeLength := 0
	for i, u := range users {
		if i > 0 && u.Number <= users[i-1].Number || u.Number > maxUserNumber {
			return fmt.Errorf("user numbers out of order or range at %d", u.Number)
		}
		if u.Name == "" || !isAuthority(u.Authority) || len(u.Partitions) == 0 {
			return fmt.Errorf("user %d is incomplete: %+v", u.Number, u)
		}
		for _, p := range u.Partitions {
			if p < 1 || p > len(cfg.Partitions) {
				return fmt.Errorf("user %d in partition %d", u.Number, p)
			}
		}
		if u.Email != "" && !strings.HasSuffix(u.Email, "@example.com") {
			return fmt.Errorf("user %d e-mail %q is not at example.com", u.Number, u.Email)
		}
		if u.HasCode != (u.Code != "") {
			return fmt.Errorf("user %d: has_code %v disagrees with its code", u.Number, u.HasCode)
		}
		if u.Code == "" {
			continue
		}
		if codeLength == 0 {
			codeLength = len(u.Code)
		}
		if len(u.Code) != codeLength || codeLength < 4 || codeLength > 6 || strings.Trim(u.Code, "0123456789") != "" || codes[u.Code] {
			return fmt.Errorf("user %d: code is not a unique %d-digit code", u.Number, codeLength)
		}
		codes[u.Code] = true
	}
	return nil
}

func TestKeypadChangesKeepStateValid(t *testing.T) {
	t.Parallel()
	p := NewPanel(Credentials{Serial: "SN-CHURN", Secret: "x"}, Options{Users: 5})
	for range 500 {
		before := p.Watermark()
		number, ok := p.state.keypadChange()
		if !ok || number < 1 {
			t.Fatalf("keypad change made nothing")
		}
		if p.Watermark() == before {
			t.Fatalf("keypad change to user %d did not move the watermark", number)
		}
	}
	users := p.Users()
	if len(users) == 0 {
		t.Fatal("keypad changes emptied the panel")
	}
	seen := map[string]bool{}
	for _, u := range users {
		if u.Code != "" && seen[u.Code] {
			t.Fatalf("two users share a code after keypad changes")
		}
		seen[u.Code] = u.Code != ""
	}
}

func TestOptionsValidate(t *testing.T) {
	t.Parallel()
	if err := (Options{}).Validate(); err != nil {
		t.Fatalf("zero options: %v", err)
	}
	bad := []Options{
		{Users: -1}, {Users: MaxUsers + 1}, {ErrorRate: -0.1}, {ErrorRate: 1.5}, {TimeoutRate: 2},
		{Latency: -1}, {FlapEvery: -1}, {ArmedState: panel.ArmPartially}, {ArmedState: "armed"},
	}
	for _, o := range bad {
		if err := o.Validate(); err == nil {
			t.Errorf("%+v passed validation", o)
		}
	}
}
