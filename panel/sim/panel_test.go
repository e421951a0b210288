package sim

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/panelsync/panelsync/panel"
)

func TestUsersGetFullThenIncremental(t *testing.T) {
	t.Parallel()
	p, link, _ := linkedPanel(t, "SN-INCR", Options{Users: 12, Seed: 7})

	var full panel.UsersGetResult
	link.callOK(t, panel.CmdUsersGet, panel.UsersGetArgs{Full: true}, &full)
	if !full.Full || len(full.Users) != 12 || full.Watermark == "" {
		t.Fatalf("full users.get = full %v, %d users, watermark %q; want full, 12 users, a watermark", full.Full, len(full.Users), full.Watermark)
	}
	if !slices.EqualFunc(full.Users, p.Users(), usersEqual) {
		t.Fatal("full users.get differs from Users()")
	}
	withCode := 0
	for _, u := range full.Users {
		if u.HasCode && u.Code != "" {
			withCode++
		}
	}
	if withCode == 0 {
		t.Fatal("no user in users.get carries a code; the server could not prove it strips them")
	}

	// Nothing changed: an incremental read is empty.
	var none panel.UsersGetResult
	link.callOK(t, panel.CmdUsersGet, panel.UsersGetArgs{Since: full.Watermark}, &none)
	if none.Full || len(none.Users) != 0 || len(none.Removed) != 0 || none.Watermark != full.Watermark {
		t.Fatalf("unchanged incremental = %+v, want empty with the same watermark", none)
	}

	// Change one user and delete another at the keypad.
	changed := full.Users[2]
	changed.Name = "Renamed Person"
	if err := p.PutUser(changed); err != nil {
		t.Fatal(err)
	}
	removed := full.Users[5].Number
	if err := p.RemoveUser(removed); err != nil {
		t.Fatal(err)
	}
	for _, want := range []int{changed.Number, removed} {
		ev := link.awaitEvent(t, 2*time.Second)
		if ev.Kind != panel.EventUserChanged || ev.UserNumber != want || ev.At.IsZero() {
			t.Fatalf("event = %+v, want user_changed for user %d", ev, want)
		}
	}

	var incr panel.UsersGetResult
	link.callOK(t, panel.CmdUsersGet, panel.UsersGetArgs{Since: full.Watermark}, &incr)
	if incr.Full {
		t.Fatal("incremental read answered in full")
	}
	if len(incr.Users) != 1 || incr.Users[0].Number != changed.Number || incr.Users[0].Name != "Renamed Person" {
		t.Fatalf("changed users = %+v, want only user %d renamed", incr.Users, changed.Number)
	}
	if !slices.Equal(incr.Removed, []int{removed}) {
		t.Fatalf("removed = %v, want [%d]", incr.Removed, removed)
	}
	if incr.Watermark == full.Watermark || incr.Watermark != p.Watermark() {
		t.Fatalf("watermark = %q, want the panel's new watermark %q", incr.Watermark, p.Watermark())
	}

	// Watermarks the panel does not know are answered in full.
	for _, foreign := range []string{"another-epoch:3", "garbage", full.Watermark + "0000"} {
		var res panel.UsersGetResult
		link.callOK(t, panel.CmdUsersGet, panel.UsersGetArgs{Since: foreign}, &res)
		if !res.Full || len(res.Users) != 11 || len(res.Removed) != 0 {
			t.Fatalf("since %q = full %v, %d users; want a full answer of 11 users", foreign, res.Full, len(res.Users))
		}
	}
	// No arguments at all means a full read.
	var noArgs panel.UsersGetResult
	link.callOK(t, panel.CmdUsersGet, nil, &noArgs)
	if !noArgs.Full || len(noArgs.Users) != 11 {
		t.Fatalf("users.get without args = full %v, %d users; want full, 11", noArgs.Full, len(noArgs.Users))
	}
}

func TestConfigStatusAndUnknownCommand(t *testing.T) {
	t.Parallel()
	p, link, _ := linkedPanel(t, "SN-CFG", Options{ArmedState: panel.ArmStay})

	var cfg panel.Config
	link.callOK(t, panel.CmdConfigGet, nil, &cfg)
	want := p.Config()
	if !slices.Equal(cfg.Partitions, want.Partitions) || !slices.Equal(cfg.Zones, want.Zones) || !slices.Equal(cfg.Devices, want.Devices) {
		t.Fatalf("config.get = %+v, want %+v", cfg, want)
	}

	var st panel.Status
	link.callOK(t, panel.CmdStatusGet, nil, &st)
	if st.ArmedState() != panel.ArmStay || !st.ACPower || st.Battery != "ok" || len(st.Troubles) != 0 {
		t.Fatalf("status.get = %+v, want armed_stay, AC on, battery ok, no troubles", st)
	}
	if len(st.Partitions) != len(cfg.Partitions) {
		t.Fatalf("status has %d partitions, config %d", len(st.Partitions), len(cfg.Partitions))
	}

	if e := link.callErr(t, "reboot", nil); e.Code != "unknown_command" {
		t.Fatalf("unknown command: error = %+v, want unknown_command", e)
	}
	stats := p.Stats()
	if stats.Commands[panel.CmdConfigGet] != 1 || stats.Commands[panel.CmdStatusGet] != 1 || stats.Commands["unknown"] != 1 || stats.CommandErrors != 1 {
		t.Fatalf("stats = %+v, want one config.get, one status.get, one unknown, one error", stats)
	}
}

func TestErrorRate(t *testing.T) {
	t.Parallel()
	p, link, _ := linkedPanel(t, "SN-ERR", Options{ErrorRate: 1})
	for range 3 {
		e := link.callErr(t, panel.CmdStatusGet, nil)
		if e.Code != "panel_error" || e.Message != "panel reported an internal error" {
			t.Fatalf("error = %+v, want panel_error", e)
		}
	}
	p.SetErrorRate(0)
	link.callOK(t, panel.CmdStatusGet, nil, nil)
}

func TestUnresponsiveAndTimeoutRate(t *testing.T) {
	t.Parallel()
	p, link, _ := linkedPanel(t, "SN-MUTE", Options{})
	p.SetUnresponsive(true)
	id := link.sendCommand(t, panel.CmdStatusGet, nil)
	if f, ok := link.awaitResult(t, id, 200*time.Millisecond); ok {
		t.Fatalf("unresponsive panel answered: %+v", f)
	}
	p.SetUnresponsive(false)
	link.callOK(t, panel.CmdStatusGet, nil, nil)
	if got := p.Stats().Ignored; got != 1 {
		t.Fatalf("ignored = %d, want 1", got)
	}

	q, qlink, _ := linkedPanel(t, "SN-TIMEOUT", Options{TimeoutRate: 1})
	id = qlink.sendCommand(t, panel.CmdConfigGet, nil)
	if f, ok := qlink.awaitResult(t, id, 200*time.Millisecond); ok {
		t.Fatalf("panel with timeout rate 1 answered: %+v", f)
	}
	if got := q.Stats().Ignored; got != 1 {
		t.Fatalf("ignored = %d, want 1", got)
	}
}

func TestLatencyAndOneCommandAtATime(t *testing.T) {
	t.Parallel()
	_, link, _ := linkedPanel(t, "SN-SLOW", Options{Latency: 60 * time.Millisecond})
	start := time.Now()
	first := link.sendCommand(t, panel.CmdStatusGet, nil)
	second := link.sendCommand(t, panel.CmdConfigGet, nil)
	if _, ok := link.awaitResult(t, first, 5*time.Second); !ok {
		t.Fatal("no first result")
	}
	if d := time.Since(start); d < 60*time.Millisecond {
		t.Fatalf("first answer after %v, want at least the 60ms latency", d)
	}
	if _, ok := link.awaitResult(t, second, 5*time.Second); !ok {
		t.Fatal("no second result")
	}
	if d := time.Since(start); d < 120*time.Millisecond {
		t.Fatalf("second answer after %v; commands were answered concurrently", d)
	}
}

func TestReconnectAfterDisconnect(t *testing.T) {
	t.Parallel()
	p, first, fs := linkedPanel(t, "SN-RECON", Options{})
	p.Disconnect()
	select {
	case <-first.closed:
	case <-time.After(2 * time.Second):
		t.Fatal("server still sees the dropped link")
	}
	second := fs.nextLink(t)
	second.awaitCheckin(t, 2*time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := p.WaitConnected(ctx); err != nil {
		t.Fatal(err)
	}
	second.callOK(t, panel.CmdStatusGet, nil, nil)
	if st := p.Stats(); st.Connects != 2 || st.Disconnects != 1 {
		t.Fatalf("connects %d, disconnects %d; want 2 and 1", st.Connects, st.Disconnects)
	}
}

func TestFlapEveryReconnects(t *testing.T) {
	t.Parallel()
	fs := newFakeServer(t, 1800)
	p := NewPanel(fs.addPanel("SN-FLAP"), Options{FlapEvery: 40 * time.Millisecond})
	runPanel(t, p, fs.srv.URL)
	for range 3 {
		fs.nextLink(t)
	}
}

func TestAuthRejected(t *testing.T) {
	t.Parallel()
	fs := newFakeServer(t, 1800)
	cred := fs.addPanel("SN-AUTH")
	cred.Secret = "wrong"
	p := NewPanel(cred, Options{})
	runPanel(t, p, fs.srv.URL)

	deadline := time.Now().Add(3 * time.Second)
	for p.State() != StateAuthRejected {
		if time.Now().After(deadline) {
			t.Fatalf("state = %v, want auth_rejected", p.State())
		}
		time.Sleep(5 * time.Millisecond)
	}
	if err := p.LastError(); !errors.Is(err, ErrAuthRejected) {
		t.Fatalf("last error = %v, want ErrAuthRejected", err)
	}
	if bytes.Contains([]byte(p.LastError().Error()), []byte("wrong")) {
		t.Fatal("the error message carries the secret")
	}
	// Slow backoff: no second attempt soon after.
	time.Sleep(300 * time.Millisecond)
	if n := fs.attempts.Load(); n != 1 {
		t.Fatalf("%d dial attempts after a rejection, want 1", n)
	}
	if p.Connected() || p.Stats().AuthRejections != 1 {
		t.Fatalf("connected %v, auth rejections %d; want false and 1", p.Connected(), p.Stats().AuthRejections)
	}
}

func TestCheckinsAtConfiguredInterval(t *testing.T) {
	t.Parallel()
	_, link, _ := linkedPanel(t, "SN-CHECKIN", Options{CheckinInterval: 50 * time.Millisecond})
	last := time.Now()
	for range 4 {
		f := link.awaitCheckin(t, 2*time.Second)
		if f.Status == nil || len(f.Status.Partitions) == 0 {
			t.Fatalf("check-in without status: %+v", f)
		}
		gap := time.Since(last)
		last = time.Now()
		if gap < 25*time.Millisecond {
			t.Fatalf("check-ins %v apart, want about 50ms", gap)
		}
	}
}

func TestCheckinIntervalFromHello(t *testing.T) {
	t.Parallel()
	fs := newFakeServer(t, 1) // one second
	p := NewPanel(fs.addPanel("SN-HELLO"), Options{})
	runPanel(t, p, fs.srv.URL)
	link := fs.nextLink(t)
	link.awaitCheckin(t, 2*time.Second) // on connect
	start := time.Now()
	link.awaitCheckin(t, 3*time.Second)
	if d := time.Since(start); d < 700*time.Millisecond {
		t.Fatalf("second check-in after %v, want the hello's 1s", d)
	}
	if err := p.SendCheckin(); err != nil {
		t.Fatal(err)
	}
	link.awaitCheckin(t, time.Second)
}

func TestKeypadChangeSendsUserChanged(t *testing.T) {
	t.Parallel()
	p, link, _ := linkedPanel(t, "SN-KEYPAD", Options{KeypadChangeEvery: 20 * time.Millisecond})
	start := p.Watermark()
	ev := link.awaitEvent(t, 2*time.Second)
	if ev.Kind != panel.EventUserChanged || ev.UserNumber <= 0 || ev.Validate() != nil {
		t.Fatalf("event = %+v, want a valid user_changed", ev)
	}
	var res panel.UsersGetResult
	link.callOK(t, panel.CmdUsersGet, panel.UsersGetArgs{Since: start}, &res)
	mentioned := slices.Contains(res.Removed, ev.UserNumber) ||
		slices.ContainsFunc(res.Users, func(u panel.User) bool { return u.Number == ev.UserNumber })
	if res.Full || !mentioned {
		t.Fatalf("changes since %q = %+v; want user %d among them", start, res, ev.UserNumber)
	}
}

func TestSetArmedSendsEventsAndUpdatesStatus(t *testing.T) {
	t.Parallel()
	p, link, _ := linkedPanel(t, "SN-ARM", Options{Seed: 3})
	if got := p.Status().ArmedState(); got != panel.ArmDisarmed {
		t.Fatalf("initial state = %s, want disarmed", got)
	}
	if err := p.SetArmed(1, panel.ArmAway); err != nil {
		t.Fatal(err)
	}
	ev := link.awaitEvent(t, 2*time.Second)
	if ev.Kind != panel.EventArmed || ev.Partition != 1 || ev.ArmedState != panel.ArmAway || ev.Validate() != nil {
		t.Fatalf("event = %+v, want armed away on partition 1", ev)
	}
	if err := p.SetArmed(0, panel.ArmAway); err != nil {
		t.Fatal(err)
	}
	if got := p.Status().ArmedState(); got != panel.ArmAway {
		t.Fatalf("state = %s, want armed_away", got)
	}
	for range len(p.Config().Partitions) - 1 {
		if ev := link.awaitEvent(t, 2*time.Second); ev.Kind != panel.EventArmed {
			t.Fatalf("event = %+v, want armed", ev)
		}
	}
	if err := p.SetArmed(0, panel.ArmDisarmed); err != nil {
		t.Fatal(err)
	}
	if ev := link.awaitEvent(t, 2*time.Second); ev.Kind != panel.EventDisarmed {
		t.Fatalf("event = %+v, want disarmed", ev)
	}
	var st panel.Status
	link.callOK(t, panel.CmdStatusGet, nil, &st)
	if st.ArmedState() != panel.ArmDisarmed {
		t.Fatalf("status.get says %s after disarming", st.ArmedState())
	}
	if err := p.SetArmed(1, panel.ArmPartially); err == nil {
		t.Fatal("SetArmed accepted partially_armed for one partition")
	}
	if err := p.SetArmed(42, panel.ArmStay); err == nil {
		t.Fatal("SetArmed accepted a partition the panel does not have")
	}
}

func TestRandomEventsAreValidAndConsistent(t *testing.T) {
	t.Parallel()
	p, link, _ := linkedPanel(t, "SN-EVENTS", Options{EventEvery: 5 * time.Millisecond})
	for range 8 {
		ev := link.awaitEvent(t, 2*time.Second)
		if err := ev.Validate(); err != nil {
			t.Fatalf("invalid event %+v: %v", ev, err)
		}
	}
	st := p.Status()
	for _, ps := range st.Partitions {
		if ps.ArmedState != panel.ArmDisarmed && !isSettableArmState(ps.ArmedState) {
			t.Fatalf("partition %d in state %q", ps.Number, ps.ArmedState)
		}
	}
}

func TestNoCodesOutsideUsersGet(t *testing.T) {
	t.Parallel()
	_, link, _ := linkedPanel(t, "SN-LEAK", Options{KeypadChangeEvery: 5 * time.Millisecond, EventEvery: 5 * time.Millisecond, CheckinInterval: 5 * time.Millisecond})
	for range 10 {
		link.awaitEvent(t, 2*time.Second)
	}
	link.callOK(t, panel.CmdStatusGet, nil, nil)
	link.callOK(t, panel.CmdConfigGet, nil, nil)
	for {
		select {
		case data := <-link.raw:
			if bytes.Contains(data, []byte(`"code"`)) {
				t.Fatalf("a frame other than a users.get result carries a code: %s", data)
			}
		default:
			return
		}
	}
}

func TestRunRejectsBadInput(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	good := Credentials{Serial: "S", Secret: "x"}
	if err := NewPanel(good, Options{ErrorRate: 2}).Run(ctx, "http://127.0.0.1:1"); err == nil {
		t.Error("Run accepted an error rate of 2")
	}
	for _, opts := range []Options{
		{PutFailureRate: -0.1},
		{PutFailureRate: 1.1},
		{ProtectedUsers: []int{0}},
		{ProtectedUsers: []int{10000}},
		{ProtectedUsers: []int{1, 1}},
	} {
		if err := NewPanel(good, opts).Run(ctx, "http://127.0.0.1:1"); err == nil {
			t.Errorf("Run accepted %+v", opts)
		}
	}
	if err := NewPanel(Credentials{Serial: "S"}, Options{}).Run(ctx, "http://127.0.0.1:1"); err == nil {
		t.Error("Run accepted credentials without a secret")
	}
	if err := NewPanel(good, Options{}).Run(ctx, "ftp://example.com"); err == nil {
		t.Error("Run accepted an ftp URL")
	}
}
