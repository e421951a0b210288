package syncer_test

import (
	"bytes"
	"encoding/csv"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/panelsync/panelsync/app/apptest"
	"github.com/panelsync/panelsync/models"
	"github.com/panelsync/panelsync/panel"
	"github.com/panelsync/panelsync/panel/sim"
)

type linkResult struct {
	ID         string `json:"id"`
	LoginID    string `json:"login_id"`
	LocationID string `json:"location_id"`
	UserNumber int    `json:"user_number"`
	State      string `json:"state"`
	Options    struct {
		Code       bool   `json:"code"`
		Schedule   bool   `json:"schedule"`
		Partitions bool   `json:"partitions"`
		Propagate  string `json:"propagate"`
	} `json:"options"`
}

type autoLinkResult struct {
	Drafts    []linkResult `json:"drafts"`
	Unmatched []struct {
		UserNumber int    `json:"user_number"`
		Email      string `json:"email"`
	} `json:"unmatched"`
	Ambiguous []struct {
		UserNumber int      `json:"user_number"`
		LoginIDs   []string `json:"login_ids"`
		Reason     string   `json:"reason"`
	} `json:"ambiguous"`
}

// panelWithPartitions adds a location whose simulated panel has a number
// of partitions that fits, and links it; RunPanel waits for its first
// sync.
func panelWithPartitions(t *testing.T, n *apptest.Node, accountID, name string, fits func(int) bool) (models.LocationView, *sim.Panel) {
	t.Helper()
	loc, cred := n.Location(t, accountID, name)
	for seed := int64(1); seed < 500; seed++ {
		p := sim.NewPanel(cred, sim.Options{Users: 3, Seed: seed})
		if fits(len(p.Config().Partitions)) {
			n.RunPanel(t, p)
			return loc, p
		}
	}
	t.Fatalf("no simulated panel for %s has a fitting number of partitions", name)
	return loc, nil
}

// invite makes a login with the given e-mail and returns its id.
func invite(t *testing.T, tb *testBundle, email string) string {
	t.Helper()
	r := tb.node.Do(t, "POST", "/v1/logins", tb.token, map[string]string{"email": email, "name": "Person " + email, "role": "member"})
	if r.Status != http.StatusCreated {
		t.Fatalf("invite %s: %d %s", email, r.Status, r.Body)
	}
	var out struct {
		Login struct {
			ID string `json:"id"`
		} `json:"login"`
	}
	r.JSON(t, &out)
	return out.Login.ID
}

// lookupLinked reads whether the lookup shows the location's user as
// linked, and to which login.
func lookupLinked(t *testing.T, tb *testBundle, query string, number int) (bool, string) {
	t.Helper()
	var out struct {
		Items []struct {
			LoginID   *string `json:"login_id"`
			Locations []struct {
				LocationID string `json:"location_id"`
				UserNumber int    `json:"user_number"`
				Linked     bool   `json:"linked"`
			} `json:"locations"`
		} `json:"items"`
	}
	tb.node.Do(t, "GET", "/v1/people?q="+url.QueryEscape(query), tb.token, nil).JSON(t, &out)
	for _, p := range out.Items {
		for _, l := range p.Locations {
			if l.LocationID == tb.loc.Location.ID && l.UserNumber == number {
				login := ""
				if p.LoginID != nil {
					login = *p.LoginID
				}
				return l.Linked, login
			}
		}
	}
	t.Fatalf("lookup %q does not list user %d", query, number)
	return false, ""
}

func TestLinks_AutoLink_MatchedUnmatchedAmbiguous_DraftsChangeNothingUntilSaved(t *testing.T) {
	forEachBackend(t, nil, sim.Options{Users: 6, Seed: 31}, func(t *testing.T, tb *testBundle) {
		n, token, locID := tb.node, tb.token, tb.loc.Location.ID
		// Two users of the panel share an e-mail: their login is ambiguous.
		shared := panel.User{Number: 40, Name: "Shared One", Email: "shared@example.com", Authority: panel.AuthorityStandard, Partitions: []int{1}}
		if err := tb.panel.PutUser(shared); err != nil {
			t.Fatal(err)
		}
		shared.Number, shared.Name = 41, "Shared Two"
		if err := tb.panel.PutUser(shared); err != nil {
			t.Fatal(err)
		}
		n.FirstSync(t, token, locID)
		syncUsers(t, tb)
		var target panel.User
		for _, u := range tb.panel.Users() {
			if u.Email != "" && u.Email != "shared@example.com" {
				target = u
				break
			}
		}
		if target.Email == "" {
			t.Fatal("the simulated panel has no user with an e-mail; pick another seed")
		}
		// The login's e-mail differs in case and spaces only.
		loginID := invite(t, tb, "  "+strings.ToUpper(target.Email)+" ")
		sharedLogin := invite(t, tb, "shared@example.com")

		r := n.Do(t, "POST", "/v1/links/auto", token, map[string]any{"location_ids": []string{locID}})
		if r.Status != http.StatusOK {
			t.Fatalf("auto link: %d %s", r.Status, r.Body)
		}
		var res autoLinkResult
		r.JSON(t, &res)
		if len(res.Drafts) != 1 || res.Drafts[0].LoginID != loginID || res.Drafts[0].UserNumber != target.Number || res.Drafts[0].State != "draft" {
			t.Fatalf("drafts %+v, want one for user %d and login %s", res.Drafts, target.Number, loginID)
		}
		if len(res.Ambiguous) != 2 || res.Ambiguous[0].LoginIDs[0] != sharedLogin || !strings.Contains(res.Ambiguous[0].Reason, "2 users of this panel") {
			t.Fatalf("ambiguous %+v, want users 40 and 41", res.Ambiguous)
		}
		if want := len(tb.panel.Users()) - 3; len(res.Unmatched) != want {
			t.Fatalf("%d unmatched, want %d (every user but the matched and the two ambiguous)", len(res.Unmatched), want)
		}

		// A draft changes nothing.
		if linked, _ := lookupLinked(t, tb, target.Name, target.Number); linked {
			t.Fatal("a draft link shows as linked")
		}
		var saved struct {
			Items []linkResult `json:"items"`
		}
		n.Do(t, "GET", "/v1/links?state=saved", token, nil).JSON(t, &saved)
		if len(saved.Items) != 0 {
			t.Fatalf("saved links before saving: %+v", saved.Items)
		}
		// Auto link again proposes nothing new.
		var again autoLinkResult
		n.Do(t, "POST", "/v1/links/auto", token, map[string]any{"location_ids": []string{locID}}).JSON(t, &again)
		if len(again.Drafts) != 0 {
			t.Fatalf("a second auto link proposed %+v", again.Drafts)
		}

		r = n.Do(t, "POST", "/v1/links/save", token, map[string]any{"ids": []string{res.Drafts[0].ID}})
		if r.Status != http.StatusOK || !strings.Contains(string(r.Body), `"state":"saved"`) {
			t.Fatalf("save: %d %s", r.Status, r.Body)
		}
		if linked, login := lookupLinked(t, tb, target.Name, target.Number); !linked || login != loginID {
			t.Fatalf("after saving, the lookup shows linked %v to %q", linked, login)
		}
		if r := n.Do(t, "POST", "/v1/links/save", token, map[string]any{"ids": []string{res.Drafts[0].ID}}); r.Status != http.StatusConflict {
			t.Fatalf("saving twice: %d %s", r.Status, r.Body)
		}
		events := n.Events(t, token, locID)
		if last := events[len(events)-1]; last.Type != "link.saved" {
			t.Fatalf("last event %+v, want link.saved", last)
		}
		// The person's user keeps its login through a sync that reads it
		// again, and loses it when the link is removed.
		syncUsers(t, tb)
		if linked, _ := lookupLinked(t, tb, target.Name, target.Number); !linked {
			t.Fatal("a users sync dropped the link")
		}
		if r := n.Do(t, "DELETE", "/v1/links/"+res.Drafts[0].ID, token, nil); r.Status != http.StatusNoContent {
			t.Fatalf("remove: %d %s", r.Status, r.Body)
		}
		if linked, _ := lookupLinked(t, tb, target.Name, target.Number); linked {
			t.Fatal("a removed link still shows")
		}
		events = n.Events(t, token, locID)
		if last := events[len(events)-1]; last.Type != "link.removed" {
			t.Fatalf("last event %+v, want link.removed", last)
		}
		var audit []models.AuditEntry
		n.Store.DB().Where("account_id = ? AND action IN ?", tb.acct.ID, []string{"link.auto", "link.save", "link.remove"}).Find(&audit)
		if len(audit) != 4 {
			t.Fatalf("%d link actions audited, want 4 (two auto links, a save, a removal)", len(audit))
		}

		// Link User by hand: the user must be on record, and a slot takes
		// one link.
		cases := []struct {
			body   map[string]any
			status int
		}{
			{map[string]any{"login_id": loginID, "location_id": locID, "user_number": 9000}, 400},
			{map[string]any{"login_id": models.NewID(), "location_id": locID, "user_number": target.Number}, 404},
			{map[string]any{"login_id": loginID, "location_id": locID}, 400},
			{map[string]any{"login_id": loginID, "location_id": locID, "user_number": target.Number}, 201},
			{map[string]any{"login_id": sharedLogin, "location_id": locID, "user_number": target.Number}, 409},
		}
		for _, tc := range cases {
			if r := n.Do(t, "POST", "/v1/links", token, tc.body); r.Status != tc.status {
				t.Errorf("link %v: %d %s, want %d", tc.body, r.Status, r.Body, tc.status)
			}
		}
	})
}

func TestLinks_PropagateToAllLocations_OneHeldByItsThreshold_ThenForceSync(t *testing.T) {
	forEachBackend(t, nil, sim.Options{Users: 4, Seed: 41}, func(t *testing.T, tb *testBundle) {
		n, token := tb.node, tb.token
		// The person's home panel has several partitions, and the person
		// uses them all; the branches' panels have one. Propagation gives
		// each branch only the partitions its panel has, as its panel
		// sync recorded them, since a panel refuses a partition it lacks.
		home, homePanel := panelWithPartitions(t, n, tb.acct.ID, "Head Office", func(k int) bool { return k >= 2 })
		locID := home.Location.ID
		var all []int
		for _, p := range homePanel.Config().Partitions {
			all = append(all, p.Number)
		}
		person := panel.User{Number: 30, Name: "Pat Person", Email: "pat@example.com", Authority: panel.AuthorityStandard, Partitions: all, AccessSchedule: "always"}
		if err := homePanel.PutUser(person); err != nil {
			t.Fatal(err)
		}
		if r := n.WaitRun(t, token, n.Sync(t, token, locID, "users").Run.ID); r.State != "succeeded" {
			t.Fatalf("users sync at home %+v", r)
		}
		loginID := invite(t, tb, person.Email)
		// The five other locations: Main Street and four branches.
		others := []string{tb.loc.Location.ID}
		for i := range 4 {
			loc, _ := panelWithPartitions(t, n, tb.acct.ID, fmt.Sprintf("Branch %d", i+1), func(k int) bool { return k == 1 })
			others = append(others, loc.Location.ID)
		}
		for _, id := range others {
			if r := n.WaitRun(t, token, n.Sync(t, token, id, "panel").Run.ID); r.State != "succeeded" {
				t.Fatalf("panel sync %+v", r)
			}
		}
		// One branch applies nothing by itself.
		if r := n.Do(t, "PATCH", "/v1/locations/"+others[2], token, map[string]any{"settings": map[string]any{"auto_apply": false}}); r.Status != http.StatusOK {
			t.Fatal(string(r.Body))
		}
		var auto autoLinkResult
		n.Do(t, "POST", "/v1/links/auto", token, map[string]any{"location_ids": []string{locID}}).JSON(t, &auto)
		if len(auto.Drafts) != 1 {
			t.Fatalf("drafts %+v", auto.Drafts)
		}
		link := auto.Drafts[0]
		if r := n.Do(t, "PATCH", "/v1/links/"+link.ID, token, map[string]any{"options": map[string]any{"propagate": "all"}}); r.Status != http.StatusConflict {
			t.Fatalf("propagating a draft: %d %s", r.Status, r.Body)
		}
		n.Do(t, "POST", "/v1/links/save", token, map[string]any{"ids": []string{link.ID}})
		r := n.Do(t, "PATCH", "/v1/links/"+link.ID, token, map[string]any{"options": map[string]any{"propagate": "all", "partitions": false}})
		if r.Status != http.StatusOK {
			t.Fatalf("propagate: %d %s", r.Status, r.Body)
		}
		var changed struct {
			linkResult
			Propagation *struct {
				ID    string `json:"id"`
				Total int    `json:"total"`
			} `json:"propagation"`
		}
		r.JSON(t, &changed)
		if changed.Options.Propagate != "all" || changed.Options.Partitions || changed.Propagation == nil || changed.Propagation.Total != 5 {
			t.Fatalf("options answer %s, want propagation to the 5 other locations", r.Body)
		}
		apptest.Eventually(t, 20*time.Second, func() (bool, string) {
			var b struct {
				Queued, Running, Succeeded int
			}
			n.Do(t, "GET", "/v1/batches/"+changed.Propagation.ID, token, nil).JSON(t, &b)
			var runs []models.Run
			n.Store.DB().Omit("data", "changes", "pending", "codes").Where("batch_id = ?", changed.Propagation.ID).Find(&runs)
			states := ""
			for _, r := range runs {
				states += fmt.Sprintf(" %s(%s %s)", r.State, r.ErrorCode, r.ErrorMessage)
			}
			return b.Queued == 0 && b.Succeeded == 4 && b.Running == 1, fmt.Sprintf("%+v:%s", b, states)
		})
		var links struct {
			Items []linkResult `json:"items"`
		}
		n.Do(t, "GET", "/v1/links?state=saved&login_id="+loginID, token, nil).JSON(t, &links)
		if len(links.Items) != 6 {
			t.Fatalf("%d saved links of the person, want one at each of the 6 locations", len(links.Items))
		}
		heldRuns := 0
		for _, l := range links.Items {
			if l.LocationID == locID {
				continue
			}
			var users struct {
				Items []struct {
					Number  int     `json:"number"`
					Name    string  `json:"name"`
					LoginID *string `json:"login_id"`
				} `json:"items"`
			}
			n.Do(t, "GET", "/v1/locations/"+l.LocationID+"/users", token, nil).JSON(t, &users)
			found := false
			for _, u := range users.Items {
				if u.Number == l.UserNumber && u.Name == person.Name && u.LoginID != nil && *u.LoginID == loginID {
					found = true
				}
			}
			if l.LocationID == others[2] {
				if found {
					t.Fatal("the person reached a location that applies nothing by itself")
				}
				heldRuns++
				continue
			}
			if !found || l.UserNumber < 2 {
				t.Fatalf("location %s's record lacks the person linked at user %d: %+v", l.LocationID, l.UserNumber, users.Items)
			}
		}
		if heldRuns != 1 {
			t.Fatalf("%d held locations, want 1", heldRuns)
		}

		// Force sync of the person flags every location they are linked at.
		r = n.Do(t, "POST", "/v1/logins/"+loginID+"/force-sync", token, nil)
		if r.Status != http.StatusAccepted || !strings.Contains(string(r.Body), "User will sync on next check-in") {
			t.Fatalf("force sync: %d %s", r.Status, r.Body)
		}
		var flagged int64
		n.Store.DB().Model(&models.Location{}).Where("account_id = ? AND force_pending = ?", tb.acct.ID, true).Count(&flagged)
		if flagged != 6 {
			t.Fatalf("%d locations flagged, want the person's 6", flagged)
		}
		var audit []models.AuditEntry
		n.Store.DB().Where("account_id = ? AND action = ?", tb.acct.ID, "login.force_sync").Find(&audit)
		if len(audit) != 1 || audit[0].TargetID != loginID {
			t.Fatalf("force sync audited as %+v", audit)
		}
		lonely := invite(t, tb, "nobody@example.com")
		if r := n.Do(t, "POST", "/v1/logins/"+lonely+"/force-sync", token, nil); r.Status != http.StatusConflict {
			t.Fatalf("force sync of a login linked nowhere: %d %s", r.Status, r.Body)
		}
	})
}

func TestLinks_OptionsLeavingFieldsOut_KeepThemOnEveryPush(t *testing.T) {
	forEachBackend(t, nil, sim.Options{Users: 3, Seed: 61}, func(t *testing.T, tb *testBundle) {
		n, token, locID := tb.node, tb.token, tb.loc.Location.ID
		n.FirstSync(t, token, locID)
		person := panel.User{Number: 30, Name: "Pat Person", Email: "pat@example.com", Authority: panel.AuthorityStandard, Partitions: []int{1}, AccessSchedule: "always", Code: "4455"}
		if err := tb.panel.PutUser(person); err != nil {
			t.Fatal(err)
		}
		syncUsers(t, tb)
		settle(t, tb, map[string]any{"safety_threshold_percent": 100})
		invite(t, tb, person.Email)
		var auto autoLinkResult
		n.Do(t, "POST", "/v1/links/auto", token, map[string]any{"location_ids": []string{locID}}).JSON(t, &auto)
		if len(auto.Drafts) != 1 {
			t.Fatalf("drafts %+v", auto.Drafts)
		}
		n.Do(t, "POST", "/v1/links/save", token, map[string]any{"ids": []string{auto.Drafts[0].ID}})
		if r := n.Do(t, "PATCH", "/v1/links/"+auto.Drafts[0].ID, token, map[string]any{"options": map[string]any{"code": false, "schedule": false}}); r.Status != http.StatusOK {
			t.Fatalf("options: %d %s", r.Status, r.Body)
		}
		if r := n.Do(t, "PATCH", "/v1/links/"+auto.Drafts[0].ID, token, map[string]any{"options": map[string]any{"propagate": "everywhere"}}); r.Status != http.StatusBadRequest {
			t.Fatalf("a bad propagate value: %d %s", r.Status, r.Body)
		}
		// The upload renames the person, moves their schedule and gives a
		// new code: only the name may change.
		rows, err := csv.NewReader(bytes.NewReader(fileOf(t, tb.panel.Users(), person.Number))).ReadAll()
		if err != nil {
			t.Fatal(err)
		}
		rows = append(rows, []string{fmt.Sprint(person.Number), "Pat Renamed", person.Email, "standard", "1", "weekends"})
		var buf bytes.Buffer
		w := csv.NewWriter(&buf)
		for i, row := range rows {
			code := ""
			switch {
			case i == 0:
				code = "code"
			case i == len(rows)-1:
				code = "99887766"
			}
			_ = w.Write(append(row, code))
		}
		w.Flush()
		file := buf.Bytes()
		run := importRun(t, tb, token, dataFile(file), controlFile(`{"protected_user_numbers":[1]}`))
		if run.State != "succeeded" {
			t.Fatalf("import %+v", run)
		}
		got, _ := panelUser(tb.panel, person.Number)
		if got.Name != "Pat Renamed" || got.AccessSchedule != "always" || got.Code != "4455" {
			t.Fatalf("the person on the panel %q, schedule %q, code kept %v; want the new name, the old schedule and code",
				got.Name, got.AccessSchedule, got.Code == "4455")
		}
	})
}

// auditEntry is the part of an audit entry these tests read.
type auditEntry struct {
	Action string `json:"action"`
	Target struct {
		Type string `json:"type"`
		ID   string `json:"id"`
		Name string `json:"name"`
	} `json:"target"`
}

// auditLog reads the token's account's audit log, newest first.
func auditLog(t *testing.T, n *apptest.Node, token string) []auditEntry {
	t.Helper()
	r := n.Do(t, "GET", "/v1/audit?limit=200", token, nil)
	if r.Status != http.StatusOK {
		t.Fatalf("audit log: %d %s", r.Status, r.Body)
	}
	var page struct {
		Items []auditEntry `json:"items"`
	}
	r.JSON(t, &page)
	return page.Items
}

func TestAudit_LinkAndForceSyncEntries_NameThePersonAndThePlace(t *testing.T) {
	forEachBackend(t, nil, sim.Options{Users: 3, Seed: 71}, func(t *testing.T, tb *testBundle) {
		n, token, locID := tb.node, tb.token, tb.loc.Location.ID
		n.FirstSync(t, token, locID)
		person := panel.User{Number: 31, Name: "Robin Keyholder", Email: "robin@example.com", Authority: panel.AuthorityStandard, Partitions: []int{1}}
		if err := tb.panel.PutUser(person); err != nil {
			t.Fatal(err)
		}
		syncUsers(t, tb)
		loginID := invite(t, tb, person.Email)

		var auto autoLinkResult
		n.Do(t, "POST", "/v1/links/auto", token, map[string]any{"location_ids": []string{locID}}).JSON(t, &auto)
		if len(auto.Drafts) != 1 {
			t.Fatalf("drafts %+v", auto.Drafts)
		}
		linkID := auto.Drafts[0].ID
		steps := []struct {
			method, path string
			body         any
			status       int
		}{
			{"POST", "/v1/links/save", map[string]any{"ids": []string{linkID}}, http.StatusOK},
			{"PATCH", "/v1/links/" + linkID, map[string]any{"options": map[string]any{"code": false}}, http.StatusOK},
			{"POST", "/v1/logins/" + loginID + "/force-sync", nil, http.StatusAccepted},
			{"DELETE", "/v1/links/" + linkID, nil, http.StatusNoContent},
			{"POST", "/v1/links", map[string]any{"login_id": loginID, "location_id": locID, "user_number": person.Number}, http.StatusCreated},
		}
		for _, s := range steps {
			if r := n.Do(t, s.method, s.path, token, s.body); r.Status != s.status {
				t.Fatalf("%s %s: %d %s, want %d", s.method, s.path, r.Status, r.Body, s.status)
			}
		}

		link := fmt.Sprintf("Person robin@example.com at Main Street (user %d)", person.Number)
		want := map[string]string{
			"link.auto":           "Acme Alarms",
			"link.save":           link,
			"link.options":        link,
			"login.force_sync":    "robin@example.com",
			"location.force_sync": "Main Street",
			"link.remove":         link,
			"link.propose":        link,
		}
		log := auditLog(t, n, token)
		seen := map[string]bool{}
		for _, e := range log {
			// Whatever was done, a person can tell to what.
			if strings.TrimSpace(e.Target.Name) == "" {
				t.Errorf("%s on %s %s names no target", e.Action, e.Target.Type, e.Target.ID)
			}
			if name, ok := want[e.Action]; ok {
				seen[e.Action] = true
				if e.Target.Name != name {
					t.Errorf("%s names its target %q, want %q", e.Action, e.Target.Name, name)
				}
			}
		}
		for action := range want {
			if !seen[action] {
				t.Errorf("no %s entry in the audit log", action)
			}
		}
	})
}
