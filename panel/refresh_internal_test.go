package panel

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/panelsync/panelsync/models"
)

// checkinEvents counts the panel.checkin events of the panel's location.
func checkinEvents(t *testing.T, l *Link, p models.Panel) int64 {
	t.Helper()
	var n int64
	err := l.store.DB().Model(&models.Event{}).Where("location_id = ? AND type = ?", p.LocationID, models.EventPanelCheckin).Count(&n).Error
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// waitCheckinEvents waits until the location has want panel.checkin
// events, and fails if it gets more.
func waitCheckinEvents(t *testing.T, l *Link, p models.Panel, want int64) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		got := checkinEvents(t, l, p)
		if got > want {
			t.Fatalf("%d panel.checkin events, want %d", got, want)
		}
		if got == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d panel.checkin events after 10s, want %d", got, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// A status that a REFRESH read from the panel and stored is what the next
// check-in is compared with, not the last status the panel checked in
// with: a panel that was armed at the refresh and disarmed again by the
// time it checks in has its disarmed status recorded.
func TestCheckin_AfterARefreshStoredAnotherStatus_IsComparedWithWhatIsStored(t *testing.T) {
	l, _, p := fakeBusLink(t)
	sock, _ := linkPanel(t, l, p)
	disarmed := `{"type":"checkin","status":{"partitions":[{"number":1,"armed_state":"disarmed","ready":true}],"ac_power":true,"battery":"ok"}}`
	sock.read <- []byte(disarmed)
	waitCheckinEvents(t, l, p, 1)

	// A REFRESH asks the panel for its status and stores the answer.
	answered := make(chan error, 1)
	go func() {
		_, err := l.Send(context.Background(), p.ID, CmdStatusGet, nil)
		answered <- err
	}()
	cmd := sock.nextFrame(t)
	sock.read <- fmt.Appendf(nil, `{"type":"result","id":%q,"ok":true,"data":{}}`, cmd.ID)
	if err := <-answered; err != nil {
		t.Fatal(err)
	}
	armed := `{"partitions":[{"number":1,"armed_state":"armed_away","ready":true}],"ac_power":true,"battery":"ok"}`
	if err := l.store.RecordPanelStatus(context.Background(), p.ID, armed, ArmAway, time.Now().UTC()); err != nil {
		t.Fatal(err)
	}

	// The panel checks in disarmed again: that differs from what is
	// stored, so it is recorded.
	sock.read <- []byte(disarmed)
	waitCheckinEvents(t, l, p, 2)
	stored, err := l.store.PanelByID(context.Background(), p.ID)
	if err != nil {
		t.Fatal(err)
	}
	if stored.ArmedState != ArmDisarmed {
		t.Fatalf("stored arm state %q after the check-in, want disarmed", stored.ArmedState)
	}
}

// A check-in recorded while a status.get is on its way to the panel does
// not leave its status as the one known to be stored: the REFRESH stores
// the panel's answer after it, and the next check-in must be compared with
// that.
func TestKnownStatus_LearnedAcrossAStatusGet_IsForgotten(t *testing.T) {
	sock := newFakeSocket()
	c := newDeviceConn("link-1234", panelIdentity{PanelID: "p"}, sock, 4, time.Second)
	t.Cleanup(func() { c.shutdown(1000, "test over") })

	_, generation := c.knownStatus()
	c.learnStatus(generation, 42)
	if known, _ := c.knownStatus(); known != 42 {
		t.Fatalf("known status %d after a check-in with no status.get between, want 42", known)
	}

	_, generation = c.knownStatus()
	c.submit(CmdStatusGet, nil, time.Minute, func(busReply) {})
	if known, _ := c.knownStatus(); known != 0 {
		t.Fatalf("known status %d once a status.get is sent, want 0 (not known)", known)
	}
	c.learnStatus(generation, 7)
	if known, _ := c.knownStatus(); known != 0 {
		t.Fatalf("known status %d after a check-in that began before the status.get, want 0 (not known)", known)
	}
	_, generation = c.knownStatus()
	c.learnStatus(generation, 9)
	if known, _ := c.knownStatus(); known != 9 {
		t.Fatalf("known status %d after a check-in that began after the status.get, want 9", known)
	}
}

// A link the database has not yet recorded counts as opening, which the
// panelsync_panel_links_opening gauge shows: an operator sees a backlog of
// links waiting for the database, and the count falls back to zero once
// the link is written.
func TestLink_WhileTheDatabaseHoldsTheLinksWrite_CountsAsOpening(t *testing.T) {
	l, _, p := fakeBusLink(t)
	held, release := make(chan struct{}), make(chan struct{})
	writeDone := make(chan error, 1)
	go func() {
		writeDone <- l.store.Tx(context.Background(), func(ctx context.Context) error {
			if err := l.store.TouchPanel(ctx, p.ID, time.Now().UTC()); err != nil {
				return err
			}
			close(held)
			<-release
			return nil
		})
	}()
	<-held

	linkPanel(t, l, p)
	if got := l.OpeningCount(); got != 1 {
		close(release)
		t.Fatalf("%d links opening while the database holds the panel's row, want 1", got)
	}
	close(release)
	if err := <-writeDone; err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for l.OpeningCount() != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%d links opening 10s after the database let the link be written, want 0", l.OpeningCount())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// A node whose database is behind with the links it took refuses more,
// 503 with a Retry-After, however much of its rate is left, and takes
// them again once the backlog is below the bound.
func TestAdmit_WhileLinksWaitForTheDatabase_RefusesMoreUntilTheyAreRecorded(t *testing.T) {
	l, _, _ := fakeBusLink(t)
	bound := l.admit.backlog()
	if bound < minBacklog {
		t.Fatalf("backlog bound %d, want at least %d", bound, minBacklog)
	}
	l.opening.Store(bound)
	err := l.Admit()
	var refusal *models.Error
	if !errors.As(err, &refusal) || refusal.Code != models.CodeServiceUnavailable || refusal.RetryAfter < time.Second {
		t.Fatalf("admit with %d links waiting for the database: %v, want 503 service_unavailable with a Retry-After of a second or more", bound, err)
	}
	l.opening.Store(bound - 1)
	if err := l.Admit(); err != nil {
		t.Fatalf("admit with %d links waiting, under the bound of %d: %v", bound-1, bound, err)
	}
}

// The wait asked of a link refused while the database is behind is sized
// by how fast the database records links, not by the rate the node would
// take them at, so that a slow database is not met with the fleet again a
// second later.
func TestAdmission_RefusalsWhileTheDatabaseIsBehind_AskForLongerWaits(t *testing.T) {
	a := newAdmission(100, 20)
	now := time.Now()
	a.linkRecorded(now)
	a.linkRecorded(now)
	for range 50 {
		if wait := a.refuse(now, false); wait != time.Second {
			t.Fatalf("Retry-After %s for 50 refusals at a rate of 100 a second, want 1s", wait)
		}
	}
	// 400 refusals in a second would be 4 s of links at the rate; the
	// database records 2 a second, and the wait is sized by a quarter of
	// the rate at the least.
	var longest time.Duration
	for range 350 {
		wait := a.refuse(now, true)
		if wait < time.Second || wait > 16*time.Second {
			t.Fatalf("Retry-After %s, want between 1s and 16s", wait)
		}
		longest = max(longest, wait)
	}
	if longest <= 4*time.Second {
		t.Fatalf("longest Retry-After %s while the database records 2 links a second, want longer than the 4s the rate alone asks", longest)
	}
}
