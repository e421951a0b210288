package syncer_test

import (
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/panelsync/panelsync/app"
	"github.com/panelsync/panelsync/panel"
	"github.com/panelsync/panelsync/panel/sim"
)

// TestImport_HeldWithoutCodes_CodesLostAtThePanelBeforeApply_AreListedAsNeedingANewCode:
// a held import whose rows have no code keeps every code the panel holds.
// Users it lists unchanged that lost their code at the panel between the
// hold and the apply (two removed at the keypad, one whose code was
// deleted there) are on the panel without a code afterwards, as a row
// without a code keeps only a code the panel has: the record follows the
// panel, and the applied run says why it lists three updates more than
// its preview, each of those users needing a new code.
func TestImport_HeldWithoutCodes_CodesLostAtThePanelBeforeApply_AreListedAsNeedingANewCode(t *testing.T) {
	// The keypad changes must not start a users sync before the apply:
	// the record would learn of them first and the import would add the
	// removed users rather than find them gone.
	tweak := func(c *app.Config) { c.UserChangeDelay = time.Hour }
	forEachBackend(t, tweak, sim.Options{Users: 24, Seed: 31}, func(t *testing.T, tb *testBundle) {
		n, token, locID := tb.node, tb.token, tb.loc.Location.ID
		n.FirstSync(t, token, locID)
		settle(t, tb, map[string]any{"safety_threshold_percent": 20})

		before := tb.panel.Users()
		var withCode []panel.User
		for _, u := range before[1:] {
			if u.HasCode {
				withCode = append(withCode, u)
			}
		}
		if len(withCode) < 12 {
			t.Fatalf("the panel has %d users with a code after its master, want 12 to work with", len(withCode))
		}
		// Nine users renamed, the rest listed as they are: over 20% of the
		// twenty-four on record, so the import is held.
		listed := slices.Clone(before)
		renamed := map[int]bool{}
		for i := range listed {
			if len(renamed) < 9 && listed[i].Number != 1 && listed[i].HasCode {
				listed[i].Name += " Jr"
				renamed[listed[i].Number] = true
			}
		}
		held := importRun(t, tb, token, dataFile(fileOf(t, listed)), controlFile(`{"protected_user_numbers":[1]}`))
		if held.State != "awaiting_apply" || held.Changes.Updated != 9 || held.Changes.Added+held.Changes.Removed != 0 {
			t.Fatalf("held import %+v, want 9 updates awaiting apply", held)
		}

		// Between the hold and the apply, three users the file leaves as
		// they are lose their codes at the keypad.
		var lost []int
		for _, u := range withCode {
			if !renamed[u.Number] && len(lost) < 3 {
				lost = append(lost, u.Number)
			}
		}
		for _, number := range lost[:2] {
			if err := tb.panel.RemoveUser(number); err != nil {
				t.Fatal(err)
			}
		}
		stripped, _ := panelUser(tb.panel, lost[2])
		stripped.HasCode, stripped.Code = false, ""
		if err := tb.panel.PutUser(stripped); err != nil {
			t.Fatal(err)
		}

		if r := n.Do(t, "POST", "/v1/runs/"+held.ID+"/apply", token, nil); r.Status != http.StatusOK {
			t.Fatalf("apply: %d %s", r.Status, r.Body)
		}
		done := n.WaitRun(t, token, held.ID)
		if done.State != "succeeded" || done.Changes.Updated != 12 || done.Changes.Added+done.Changes.Removed != 0 {
			t.Fatalf("applied import %+v, want its 9 updates and the 3 users whose codes the panel lost", done)
		}

		// Every user the panel still held with a code keeps that code; the
		// three are back on the panel, as listed, without one.
		after := map[int]panel.User{}
		for _, u := range tb.panel.Users() {
			after[u.Number] = u
		}
		for _, u := range before {
			got, ok := after[u.Number]
			switch {
			case !ok:
				t.Fatalf("user %d is not on the panel after the import listed it", u.Number)
			case slices.Contains(lost, u.Number):
				if got.HasCode || got.Code != "" {
					t.Fatalf("user %d has a code on the panel, though it lost it before the apply and the file gives none", u.Number)
				}
			case got.Code != u.Code || got.HasCode != u.HasCode:
				t.Fatalf("user %d lost or changed its code in an import without codes", u.Number)
			case renamed[u.Number] && got.Name != u.Name+" Jr":
				t.Fatalf("user %d is named %q on the panel, want the file's name", u.Number, got.Name)
			}
		}
		var record struct {
			Items []struct {
				Number  int  `json:"number"`
				HasCode bool `json:"has_code"`
			} `json:"items"`
		}
		n.Do(t, "GET", "/v1/locations/"+locID+"/users", token, nil).JSON(t, &record)
		for _, u := range record.Items {
			if want := after[u.Number].HasCode; u.HasCode != want {
				t.Fatalf("the record says user %d has_code %v, the panel %v", u.Number, u.HasCode, want)
			}
		}

		var needCode []int
		for _, c := range changesOf(t, tb, held.ID) {
			if c["action"] != "code_missing" {
				continue
			}
			number := int(c["number"].(float64))
			needCode = append(needCode, number)
			if msg, _ := c["message"].(string); !strings.Contains(msg, "removed at the panel since the last sync") {
				t.Fatalf("user %d needs a new code, explained as %q", number, msg)
			}
		}
		if !slices.Equal(needCode, lost) {
			t.Fatalf("users listed as needing a new code %v, want those that lost theirs at the panel %v", needCode, lost)
		}
		ev := eventOfRun(t, n.Events(t, token, locID), held.ID, "sync.succeeded")
		if !strings.HasSuffix(ev.Message, "12 updated; 3 users need a new code: the panel no longer had the codes on record") {
			t.Fatalf("success message %q, want it to say why three users more were updated than held", ev.Message)
		}
		var data struct {
			CodeMissing int `json:"code_missing"`
		}
		if err := json.Unmarshal(ev.Data, &data); err != nil || data.CodeMissing != 3 {
			t.Fatalf("success data %s, want code_missing 3", ev.Data)
		}
	})
}
