package syncer_test

import (
	"strings"
	"testing"

	"github.com/panelsync/panelsync/panel"
	"github.com/panelsync/panelsync/panel/sim"
)

// TestSyncUsers_ControlCharacterInAName_FailsNamingTheUserAndChangesNothing:
// a panel that sends a user name able to forge lines in the Event Log, CSV
// downloads and mails has its answer refused, as any invalid answer is.
func TestSyncUsers_ControlCharacterInAName_FailsNamingTheUserAndChangesNothing(t *testing.T) {
	forEachBackend(t, nil, sim.Options{Users: 5}, func(t *testing.T, tb *testBundle) {
		n, token, locID := tb.node, tb.token, tb.loc.Location.ID
		if run := n.FirstSync(t, token, locID); run.State != "succeeded" {
			t.Fatalf("first sync %+v", run)
		}
		forged := panel.User{Number: 50, Name: "Mallory\r\nBcc: everyone@example.com", Authority: panel.AuthorityStandard, Partitions: []int{1}}
		if err := tb.panel.PutUser(forged); err != nil {
			t.Fatal(err)
		}

		run := n.WaitRun(t, token, n.Sync(t, token, locID, "users").Run.ID)
		if run.State != "failed" || run.Error == nil || run.Error.Code != "panel_error" ||
			!strings.Contains(run.Error.Message, "user 50: name must not contain control characters") {
			t.Fatalf("sync of a forged name: %+v (error %+v)", run, run.Error)
		}
		users := n.Do(t, "GET", "/v1/locations/"+locID+"/users", token, nil)
		if strings.Contains(string(users.Body), "Mallory") || strings.Count(string(users.Body), `"number"`) != 5 {
			t.Fatalf("the refused answer changed the remote copy: %s", users.Body)
		}
	})
}
