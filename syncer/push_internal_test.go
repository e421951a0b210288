package syncer

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"github.com/panelsync/panelsync/models"
	"github.com/panelsync/panelsync/panel"
)

// pushFixture is a location whose record holds Ann (with a code), Bob,
// the protected installer Cy and Dee, and a list that keeps Ann without
// sending her code, renames Bob, adds Eve with a code and Fay, who should
// have a code the list cannot give, and leaves Dee out.
type pushFixture struct {
	engine   *Engine
	loc      models.Location
	want     UsersData
	codes    map[int]string
	existing []models.PanelUser
}

func newPushFixture() pushFixture {
	user := func(n int, name string, hasCode bool) panel.User {
		return panel.User{Number: n, Name: name, Authority: panel.AuthorityStandard, Partitions: []int{1}, HasCode: hasCode}
	}
	row := func(n int, name string, hasCode bool) models.PanelUser {
		digest := ""
		if hasCode {
			digest = "old-digest"
		}
		return models.PanelUser{LocationID: "loc", UserNumber: n, Name: name, Authority: panel.AuthorityStandard, Partitions: "1", HasCode: hasCode, CodeDigest: digest}
	}
	return pushFixture{
		engine: &Engine{cfg: Config{CodeKey: []byte("test key")}},
		loc:    models.Location{ID: "loc"},
		want: UsersData{Full: true, Protected: []int{3}, Users: []panel.User{
			user(1, "Ann", true), user(2, "Robert", false), user(5, "Eve", true), user(6, "Fay", true),
		}},
		codes:    map[int]string{5: "4321"},
		existing: []models.PanelUser{row(1, "Ann", true), row(2, "Bob", false), row(3, "Cy", true), row(4, "Dee", false)},
	}
}

func (f pushFixture) plan() pushPlan {
	return f.engine.planPush(f.loc, f.want, f.codes, f.existing, nil)
}

// readBack is a panel's answer to a full read, as readPanelUsers leaves it.
func readBack(digests map[int]string, users ...panel.User) panelUsers {
	p := panelUsers{users: users, digests: digests, byNumber: map[int]int{}}
	for i, u := range users {
		p.byNumber[u.Number] = i
	}
	return p
}

func TestPlanPush_WritesChangesRemovesUnlistedAndSparesTheProtected(t *testing.T) {
	f := newPushFixture()
	p := f.plan()
	if want := []int{2, 5, 6}; !slices.Equal(p.write, want) {
		t.Errorf("write %v, want %v: the renamed and the new users, not Ann who is as listed", p.write, want)
	}
	if want := []int{4}; !slices.Equal(p.remove, want) {
		t.Errorf("remove %v, want %v: the unlisted user, never the protected one", p.remove, want)
	}
	if want := []int{6}; !slices.Equal(p.codeMissing, want) {
		t.Errorf("code missing %v, want %v", p.codeMissing, want)
	}
	if want := []int{1, 2, 5, 6}; !slices.Equal(p.numbers, want) {
		t.Errorf("numbers %v, want %v", p.numbers, want)
	}
	if c := p.diff.counts; c != (counts{Added: 2, Updated: 1, Removed: 1, Unchanged: 1}) {
		t.Errorf("the threshold judges %+v", c)
	}
	ann, eve, fay := p.desired[1], p.desired[5], p.desired[6]
	if !ann.keepCode || ann.code != "" || !ann.user.HasCode {
		t.Errorf("Ann listed without her code must keep the panel's: %+v", ann)
	}
	if eve.code != "4321" || eve.digest != f.engine.codeDigest("loc", 5, "4321") || eve.user.Code != "" {
		t.Errorf("Eve's code is sent apart from the user and compared by digest: %+v", eve)
	}
	if fay.user.HasCode || fay.keepCode {
		t.Errorf("Fay has no code to send, so she is written without one: %+v", fay)
	}

	f.loc.ForceUpdateAll = true
	if p := f.plan(); !slices.Equal(p.write, []int{1, 2, 5, 6}) {
		t.Errorf("force update of all records writes %v, want every listed user", p.write)
	}

	f.loc.ForceUpdateAll = false
	f.want.Full = false
	if p := f.plan(); len(p.remove) != 0 {
		t.Errorf("a list of some users removes %v, want none", p.remove)
	}
}

func TestPlanPush_LinkedPersonWithoutCodeSync_KeepsThePanelsCodeScheduleAndPartitions(t *testing.T) {
	f := newPushFixture()
	f.existing[1].AccessSchedule, f.existing[1].Partitions = "weekdays", "1,2"
	f.want.Users[1].AccessSchedule, f.want.Users[1].Partitions = "always", []int{3}
	f.codes[2] = "9999"
	p := f.engine.planPush(f.loc, f.want, f.codes, f.existing, map[int]models.Link{2: {ID: "link"}})
	bob := p.desired[2]
	if bob.code != "" || !bob.keepCode {
		t.Errorf("a linked person whose code is not synced was sent a code: %+v", bob)
	}
	if bob.user.AccessSchedule != "weekdays" || !slices.Equal(bob.user.Partitions, []int{1, 2}) {
		t.Errorf("schedule %q and partitions %v, want the record's", bob.user.AccessSchedule, bob.user.Partitions)
	}
}

func TestResidual_ListsWhatThePanelStillLacks_LeavingRefusedAndProtectedAlone(t *testing.T) {
	f := newPushFixture()
	p := f.plan()
	eveDigest := p.desired[5].digest
	ok := func(n int, name string, hasCode bool) panel.User {
		return panel.User{Number: n, Name: name, Authority: panel.AuthorityStandard, Partitions: []int{1}, HasCode: hasCode}
	}
	back := readBack(map[int]string{5: eveDigest},
		ok(1, "Ann", false), ok(2, "Bob", false), ok(3, "Cy", true), ok(5, "Eve", true), ok(7, "Gus", false), ok(8, "Hal", false))
	refused := map[int]panel.UserPutResult{6: {Number: 6, Code: panel.RefusedFull}, 8: {Number: 8, Code: panel.RefusedProtected}}

	write, remove := p.residual(back, refused)
	// Ann keeps whatever code the panel has; Bob was not renamed; Fay was
	// refused; Gus is not listed; Hal's removal was refused; Cy is
	// protected.
	if !slices.Equal(write, []int{2}) || !slices.Equal(remove, []int{7}) {
		t.Errorf("residual write %v remove %v, want [2] and [7]", write, remove)
	}

	back.digests[5] = "another code"
	if write, _ := p.residual(back, refused); !slices.Equal(write, []int{2, 5}) {
		t.Errorf("a panel holding another code than the one sent: write %v, want [2 5]", write)
	}

	f.want.Full = false
	if _, remove := f.plan().residual(back, refused); len(remove) != 0 {
		t.Errorf("a partial list removes %v", remove)
	}
}

func TestCodesLost_UsersKeepingACodeThePanelNoLongerHas(t *testing.T) {
	p := newPushFixture().plan()
	user := func(n int, hasCode bool) panel.User { return panel.User{Number: n, HasCode: hasCode} }
	back := readBack(nil, user(1, false), user(2, false), user(5, true), user(6, false))
	if lost := p.codesLost(back, nil, nil); !slices.Equal(lost, []int{1}) {
		t.Errorf("lost %v, want [1]: Ann was to keep her code and came back without one", lost)
	}
	if lost := p.codesLost(back, map[int]panel.UserPutResult{1: {Code: panel.RefusedInvalid}}, nil); len(lost) != 0 {
		t.Errorf("a refused user is reported failed, not as a lost code: %v", lost)
	}
	if lost := p.codesLost(back, nil, []int{1}); len(lost) != 0 {
		t.Errorf("an unconfirmed user is reported failed, not as a lost code: %v", lost)
	}
	if lost := p.codesLost(readBack(nil, user(1, true)), nil, nil); len(lost) != 0 {
		t.Errorf("a code the panel kept is not lost: %v", lost)
	}
}

func TestFinish_ReportsRefusedUnconfirmedAndCodeMissingUsers(t *testing.T) {
	p := newPushFixture().plan()
	base, _ := json.Marshal(Changes{Counts: counts{Added: 1}, Changes: []Change{{Action: "added", Number: 5, Name: "Eve"}}})
	res := applied{counts: counts{Added: 1}, changes: base, summary: "1 added"}

	got, err := p.finish(res, map[int]panel.UserPutResult{5: {Number: 5, Code: "pin_rejected"}}, []int{2}, []int{1})
	if err != nil {
		t.Fatal(err)
	}
	if got.failed == nil || got.failed.code != FailUsersRefused || !got.failed.permanent {
		t.Fatalf("failed %+v, want a permanent %s", got.failed, FailUsersRefused)
	}
	if want := "the panel did not take 2 users (user 5: pin_rejected, user 2: not confirmed); the rest were applied"; got.failed.message != want {
		t.Errorf("message %q, want %q", got.failed.message, want)
	}
	if want := "1 added; 2 users need a new code (1 because the panel no longer had the code on record)"; got.summary != want {
		t.Errorf("summary %q, want %q", got.summary, want)
	}
	if got.note["code_missing"] != 2 || got.note["failed_users"] != 2 {
		t.Errorf("note %v", got.note)
	}
	var out Changes
	if err := json.Unmarshal(got.changes, &out); err != nil {
		t.Fatal(err)
	}
	var listed []string
	for _, c := range out.Changes {
		listed = append(listed, c.Action+" "+c.Name+" "+c.Code)
		if c.Action == changeFailed && c.Number == 5 && c.Message != "the panel refused the user (pin_rejected)" {
			t.Errorf("a refusal without a message says %q", c.Message)
		}
	}
	want := []string{"added Eve ", "failed Eve pin_rejected", "failed Robert not_confirmed", "code_missing Fay ", "code_missing Ann "}
	if !slices.Equal(listed, want) {
		t.Errorf("changes\n%s\nwant\n%s", strings.Join(listed, "\n"), strings.Join(want, "\n"))
	}

	clean, err := newPushFixture().plan().finish(res, nil, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if clean.failed != nil || clean.note["failed_users"] != nil {
		t.Errorf("a push the panel took whole failed: %+v", clean.failed)
	}
	if clean.summary != "1 added; 1 user needs a new code" {
		t.Errorf("summary %q", clean.summary)
	}
}
