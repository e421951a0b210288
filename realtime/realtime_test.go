package realtime_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fasthttp/websocket"
	"github.com/golang-jwt/jwt/v5"

	"github.com/panelsync/panelsync/app"
	"github.com/panelsync/panelsync/app/apptest"
	"github.com/panelsync/panelsync/models"
	"github.com/panelsync/panelsync/models/dbtest"
)

const signingKey = "realtime-test-signing-key-0123456789abcdef"

// CloseForbiddenCode is the close a watcher gets when its access ends.
const CloseForbiddenCode = 4003

type testBundle struct {
	node  *apptest.Node
	acct  models.Account
	token string
	loc   models.LocationView
}

func forEachBackend(t *testing.T, tweak func(*app.Config), fn func(t *testing.T, tb *testBundle)) {
	t.Helper()
	for _, b := range dbtest.Backends(t) {
		t.Run(b.Name, func(t *testing.T) {
			cfg := apptest.Config(t, b)
			cfg.JWTSecret = signingKey
			// Every fan-out here is split over several writers, as it is
			// for thousands of clients in production.
			cfg.RealtimeWriterShare = 1
			if tweak != nil {
				tweak(&cfg)
			}
			node := apptest.Start(t, cfg)
			acct, token := node.Account(t, "Acme")
			loc, _ := node.Location(t, acct.ID, "HQ")
			fn(t, &testBundle{node: node, acct: acct, token: token, loc: loc})
		})
	}
}

type frame struct {
	Type    string `json:"type"`
	After   *int64 `json:"after"`
	Code    string `json:"code"`
	Message string `json:"message"`
	Offset  *int64 `json:"offset"`
	Event   *struct {
		Offset       int64   `json:"offset"`
		Type         string  `json:"type"`
		AccountID    string  `json:"account_id"`
		LocationID   *string `json:"location_id"`
		LocationName *string `json:"location_name"`
	} `json:"event"`
}

type wsClient struct {
	t    *testing.T
	conn *websocket.Conn
}

func wsURL(base string) string { return "ws" + strings.TrimPrefix(base, "http") + "/v1/realtime" }

// connect opens the realtime socket with a bearer token.
func connect(t *testing.T, base, token string) *wsClient {
	t.Helper()
	h := http.Header{}
	if token != "" {
		h.Set("Authorization", "Bearer "+token)
	}
	return dialWS(t, wsURL(base), h)
}

func dialWS(t *testing.T, url string, h http.Header) *wsClient {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	conn, _, err := websocket.DefaultDialer.DialContext(ctx, url, h)
	if err != nil {
		t.Fatalf("dial realtime: %v", err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return &wsClient{t: t, conn: conn}
}

func (c *wsClient) send(v any) {
	c.t.Helper()
	b, _ := json.Marshal(v)
	if err := c.conn.WriteMessage(websocket.TextMessage, b); err != nil {
		c.t.Fatalf("send: %v", err)
	}
}

// next reads one frame; a close is returned as an error carrying its code.
func (c *wsClient) next(timeout time.Duration) (frame, error) {
	_ = c.conn.SetReadDeadline(time.Now().Add(timeout))
	_, data, err := c.conn.ReadMessage()
	if err != nil {
		return frame{}, err
	}
	var f frame
	if err := json.Unmarshal(data, &f); err != nil {
		c.t.Fatalf("server sent %q", data)
	}
	return f, nil
}

func (c *wsClient) expect(typ string) frame {
	c.t.Helper()
	f, err := c.next(5 * time.Second)
	if err != nil || f.Type != typ {
		c.t.Fatalf("expected a %s frame, got %+v %v", typ, f, err)
	}
	return f
}

// closeCode reads until the server closes and returns the code.
func (c *wsClient) closeCode(within time.Duration) int {
	c.t.Helper()
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		_, err := c.next(time.Until(deadline))
		if err == nil {
			continue
		}
		var ce *websocket.CloseError
		if errors.As(err, &ce) {
			return ce.Code
		}
		c.t.Fatalf("connection ended without a close frame: %v", err)
	}
	c.t.Fatalf("no close within %v", within)
	return 0
}

// readUntilClose reads and discards frames until the server's close frame,
// and returns its code; it is safe to call off the test's goroutine.
func readUntilClose(conn *websocket.Conn, within time.Duration) (int, error) {
	_ = conn.SetReadDeadline(time.Now().Add(within))
	for {
		if _, _, err := conn.ReadMessage(); err != nil {
			var ce *websocket.CloseError
			if errors.As(err, &ce) {
				return ce.Code, nil
			}
			return 0, fmt.Errorf("connection ended without a close frame: %w", err)
		}
	}
}

func appendEvents(t *testing.T, node *apptest.Node, accountID, locationID string, n int, data any) {
	t.Helper()
	for i := range n {
		_, err := node.App.Events().Append(context.Background(), models.NewEvent{
			AccountID: accountID, LocationID: locationID, Type: "test.event", Message: fmt.Sprint(i), Data: data,
		})
		if err != nil {
			t.Error(err)
			return
		}
	}
}

func TestResume_FourWritersAndFiveDisconnects_DeliverEveryOffsetOnceInOrder(t *testing.T) {
	forEachBackend(t, nil, func(t *testing.T, tb *testBundle) {
		const writers, perWriter = 4, 250
		total := int64(writers * perWriter)
		var wg sync.WaitGroup
		start := make(chan struct{})
		for range writers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				appendEvents(t, tb.node, tb.acct.ID, tb.loc.Location.ID, perWriter, nil)
			}()
		}

		var got []int64
		last := int64(0)
		disconnects := 0
		close(start)
		for last < total {
			c := connect(t, tb.node.BaseURL, tb.token)
			c.send(map[string]any{"op": "subscribe", "after": last})
			if f := c.expect("subscribed"); f.After == nil || *f.After != last {
				t.Fatalf("subscribed at %v, asked after %d", f.After, last)
			}
			// Drop the connection after a stretch, five times over.
			budget := int(total)
			if disconnects < 5 {
				budget = 37 + disconnects*50
			}
			for i := 0; i < budget && last < total; i++ {
				f, err := c.next(10 * time.Second)
				var ce *websocket.CloseError
				if errors.As(err, &ce) && ce.Code == 4008 {
					// A client starved of CPU may fall behind and be told
					// to resume, as the contract says: it does.
					break
				}
				if err != nil {
					t.Fatalf("after offset %d: %v", last, err)
				}
				if f.Type != "event" {
					t.Fatalf("unexpected frame %+v", f)
				}
				got = append(got, f.Event.Offset)
				if f.Event.Offset != last+1 {
					t.Fatalf("after offset %d came %d: each offset once, in order", last, f.Event.Offset)
				}
				last = f.Event.Offset
			}
			_ = c.conn.Close()
			disconnects++
		}
		wg.Wait()
		if int64(len(got)) != total || disconnects < 6 {
			t.Fatalf("received %d events over %d connections", len(got), disconnects)
		}
	})
}

func TestSubscribe_OtherAccountsLocation_IsForbiddenAndDeliversNothing(t *testing.T) {
	forEachBackend(t, nil, func(t *testing.T, tb *testBundle) {
		other, _ := tb.node.Account(t, "Other")
		otherLoc, _ := tb.node.Location(t, other.ID, "Theirs")

		c := connect(t, tb.node.BaseURL, tb.token)
		c.send(map[string]any{"op": "subscribe", "location_ids": []string{otherLoc.Location.ID}})
		if f := c.expect("error"); f.Code != "forbidden" {
			t.Fatalf("got %+v", f)
		}
		c.send(map[string]any{"op": "subscribe", "account_id": other.ID})
		if f := c.expect("error"); f.Code != "forbidden" {
			t.Fatalf("subscribing to another account: %+v", f)
		}
		// Watch our own account, while the other account is busy.
		c.send(map[string]any{"op": "subscribe"})
		c.expect("subscribed")
		appendEvents(t, tb.node, other.ID, otherLoc.Location.ID, 20, nil)
		appendEvents(t, tb.node, tb.acct.ID, tb.loc.Location.ID, 1, nil)
		f := c.expect("event")
		if f.Event.AccountID != tb.acct.ID {
			t.Fatalf("received another account's event %+v", f.Event)
		}
		if f, err := c.next(300 * time.Millisecond); err == nil {
			t.Fatalf("unexpected frame %+v", f)
		}
	})
}

func TestSubscribe_Locations_FilterAndUnsubscribe(t *testing.T) {
	forEachBackend(t, nil, func(t *testing.T, tb *testBundle) {
		second, _ := tb.node.Location(t, tb.acct.ID, "Second")
		c := connect(t, tb.node.BaseURL, tb.token)
		c.send(map[string]any{"op": "subscribe", "location_ids": []string{second.Location.ID}})
		c.expect("subscribed")
		appendEvents(t, tb.node, tb.acct.ID, tb.loc.Location.ID, 3, nil)
		appendEvents(t, tb.node, tb.acct.ID, second.Location.ID, 1, nil)
		if f := c.expect("event"); *f.Event.LocationID != second.Location.ID {
			t.Fatalf("got an event of an unsubscribed location: %+v", f.Event)
		}
		c.send(map[string]any{"op": "unsubscribe", "location_ids": []string{second.Location.ID}})
		c.expect("unsubscribed")
		appendEvents(t, tb.node, tb.acct.ID, second.Location.ID, 1, nil)
		c.send(map[string]any{"op": "ping"})
		c.expect("pong")
	})
}

// TestEvents_CarryTheirLocationsName_LiveAndOnResume: a watcher reads an
// entry by its location's name, as it was when the entry was written,
// whether the entry arrives live or is replayed after a reconnect.
func TestEvents_CarryTheirLocationsName_LiveAndOnResume(t *testing.T) {
	forEachBackend(t, nil, func(t *testing.T, tb *testBundle) {
		ctx := context.Background()
		c := connect(t, tb.node.BaseURL, tb.token)
		c.send(map[string]any{"op": "subscribe", "after": 0})
		c.expect("subscribed")
		// One entry whose producer names the location, one the writer
		// names, and one account-wide.
		_, err := tb.node.App.Events().Append(ctx,
			models.NewEvent{AccountID: tb.acct.ID, LocationID: tb.loc.Location.ID, LocationName: "HQ", Type: "test.named", Message: "named"},
			models.NewEvent{AccountID: tb.acct.ID, LocationID: tb.loc.Location.ID, Type: "test.unnamed", Message: "looked up"},
			models.NewEvent{AccountID: tb.acct.ID, Type: "test.account", Message: "account-wide"},
		)
		if err != nil {
			t.Fatal(err)
		}
		check := func(how string, c *wsClient) {
			t.Helper()
			for _, want := range []*string{ptr("HQ"), ptr("HQ"), nil} {
				f := c.expect("event")
				got := f.Event.LocationName
				if (got == nil) != (want == nil) || (got != nil && *got != *want) {
					t.Errorf("%s, %s came with location_name %v, want %v", how, f.Event.Type, deref(got), deref(want))
				}
			}
		}
		check("live", c)

		// A rename changes what later entries say, not what was written.
		renamed := "Head Office"
		if _, err := tb.node.Store.UpdateLocation(ctx, models.SystemActor(tb.acct.ID, "test"), tb.loc.Location.ID, models.LocationSettings{Name: &renamed}); err != nil {
			t.Fatal(err)
		}
		resumed := connect(t, tb.node.BaseURL, tb.token)
		resumed.send(map[string]any{"op": "subscribe", "after": 0})
		resumed.expect("subscribed")
		check("replayed after a rename", resumed)
		appendEvents(t, tb.node, tb.acct.ID, tb.loc.Location.ID, 1, nil)
		if f := resumed.expect("event"); f.Event.LocationName == nil || *f.Event.LocationName != renamed {
			t.Errorf("an entry written after the rename came with location_name %v, want %q", deref(f.Event.LocationName), renamed)
		}
	})
}

func ptr(s string) *string { return &s }

func deref(s *string) any {
	if s == nil {
		return nil
	}
	return *s
}

func TestSlowClient_IsClosedWith4008WhileOthersReceiveEverything(t *testing.T) {
	forEachBackend(t, nil, func(t *testing.T, tb *testBundle) {
		// A small receive buffer stands for a phone on a slow network: its
		// socket fills after a few frames, not a few megabytes. (Much
		// smaller than a frame, and TCP's delayed acknowledgements slow
		// every frame to a crawl once it does read.)
		h := http.Header{}
		h.Set("Authorization", "Bearer "+tb.token)
		d := &websocket.Dialer{NetDialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			conn, err := (&net.Dialer{}).DialContext(ctx, network, addr)
			if err == nil {
				_ = conn.(*net.TCPConn).SetReadBuffer(64 << 10)
			}
			return conn, err
		}}
		slowConn, _, err := d.Dial(wsURL(tb.node.BaseURL), h)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = slowConn.Close() })
		slow := &wsClient{t: t, conn: slowConn}
		slow.send(map[string]any{"op": "subscribe"})
		slow.expect("subscribed")
		normal := connect(t, tb.node.BaseURL, tb.token)
		normal.send(map[string]any{"op": "subscribe"})
		normal.expect("subscribed")

		// Events fill the slow client's socket (the server caps its send
		// buffer at 256 KB, which the kernel doubles) and then its queue of 64
		// frames.
		const n = 300
		blob := map[string]string{"pad": strings.Repeat("x", 8<<10)}
		done := make(chan struct{})
		go func() {
			defer close(done)
			appendEvents(t, tb.node, tb.acct.ID, tb.loc.Location.ID, n, blob)
		}()
		// By the time the normal client has the 200th event, the slow
		// client's socket and queue (about 140 events) have overflowed and
		// the server has decided to close it. The slow client then starts
		// reading, as a phone whose network recovers would, so the close
		// frame queued behind what it has not read yet can reach it before
		// the server's write timeout gives up on it, however busy the
		// machine is while the rest of the events are written.
		const overflowed = 200
		type closed struct {
			code int
			err  error
		}
		slowClose := make(chan closed, 1)
		for i := int64(1); i <= n; i++ {
			f, err := normal.next(20 * time.Second)
			if err != nil || f.Type != "event" || f.Event.Offset != i {
				t.Fatalf("normal client at %d: %+v %v", i, f, err)
			}
			if i == overflowed {
				go func() {
					code, err := readUntilClose(slowConn, 30*time.Second)
					slowClose <- closed{code, err}
				}()
			}
		}
		<-done
		if got := <-slowClose; got.err != nil || got.code != 4008 {
			t.Fatalf("slow client closed with %d (%v), want 4008", got.code, got.err)
		}
	})
}

// forgeToken re-signs a real session's access token with a new expiry.
func forgeToken(t *testing.T, token string, exp time.Time) string {
	t.Helper()
	claims := jwt.MapClaims{}
	if _, _, err := jwt.NewParser().ParseUnverified(token, claims); err != nil {
		t.Fatal(err)
	}
	claims["exp"] = exp.Unix()
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString([]byte(signingKey))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestTokenExpiry_Closes4010(t *testing.T) {
	forEachBackend(t, nil, func(t *testing.T, tb *testBundle) {
		expired := forgeToken(t, tb.token, time.Now().Add(-time.Minute))
		if code := connect(t, tb.node.BaseURL, expired).closeCode(5 * time.Second); code != 4010 {
			t.Fatalf("expired token: close %d", code)
		}
		soon := forgeToken(t, tb.token, time.Now().Add(2*time.Second))
		c := connect(t, tb.node.BaseURL, soon)
		c.send(map[string]any{"op": "subscribe"})
		c.expect("subscribed")
		if code := c.closeCode(6 * time.Second); code != 4010 {
			t.Fatalf("token expiring while connected: close %d", code)
		}
		if code := connect(t, tb.node.BaseURL, "garbage").closeCode(5 * time.Second); code != 4001 {
			t.Fatalf("bad token: close %d", code)
		}
		if code := connect(t, tb.node.BaseURL, "").closeCode(5 * time.Second); code != 4001 {
			t.Fatalf("no token: close %d", code)
		}
	})
}

func TestTicket_OpensOneConnectionOnce(t *testing.T) {
	forEachBackend(t, nil, func(t *testing.T, tb *testBundle) {
		r := tb.node.Do(t, "POST", "/v1/realtime/tickets", tb.token, nil)
		var out struct {
			Ticket    string `json:"ticket"`
			ExpiresIn int    `json:"expires_in"`
		}
		r.JSON(t, &out)
		if r.Status != http.StatusCreated || !strings.HasPrefix(out.Ticket, "pst_") || out.ExpiresIn != 30 {
			t.Fatalf("ticket: %d %s", r.Status, r.Body)
		}
		url := wsURL(tb.node.BaseURL) + "?ticket=" + out.Ticket
		c := dialWS(t, url, nil)
		c.send(map[string]any{"op": "subscribe"})
		c.expect("subscribed")
		if code := dialWS(t, url, nil).closeCode(5 * time.Second); code != 4001 {
			t.Fatalf("reused ticket: close %d", code)
		}
		if r := tb.node.Do(t, "POST", "/v1/realtime/tickets", "", nil); r.Status != http.StatusUnauthorized {
			t.Fatalf("ticket without a token: %d", r.Status)
		}
	})
}

func TestBadFrames_GetErrorFrames(t *testing.T) {
	forEachBackend(t, nil, func(t *testing.T, tb *testBundle) {
		c := connect(t, tb.node.BaseURL, tb.token)
		cases := []struct {
			raw  string
			code string
		}{
			{`not json`, "invalid_frame"},
			{`{"op":"teleport"}`, "unknown_op"},
			{`{}`, "invalid_frame"},
			{`{"op":"subscribe","after":-3}`, "invalid_request"},
			{`{"op":"subscribe","location_ids":["nope"]}`, "forbidden"},
		}
		for _, tc := range cases {
			if err := c.conn.WriteMessage(websocket.TextMessage, []byte(tc.raw)); err != nil {
				t.Fatal(err)
			}
			if f := c.expect("error"); f.Code != tc.code {
				t.Fatalf("%s: got %+v, want %s", tc.raw, f, tc.code)
			}
		}
		c.send(map[string]any{"op": "subscribe"})
		c.expect("subscribed")
		c.send(map[string]any{"op": "subscribe", "after": 0})
		if f := c.expect("error"); f.Code != "invalid_request" {
			t.Fatalf("second subscribe with after: %+v", f)
		}
		_ = c.conn.WriteMessage(websocket.TextMessage, []byte(`{"op":"ping","pad":"`+strings.Repeat("x", 64<<10)+`"}`))
		if code := c.closeCode(5 * time.Second); code != websocket.CloseMessageTooBig {
			t.Fatalf("oversized frame: close %d", code)
		}
		if r := tb.node.Do(t, "GET", "/v1/realtime", tb.token, nil); r.Status != http.StatusBadRequest {
			t.Fatalf("plain GET: %d", r.Status)
		}
	})
}

func TestResume_FromBeforeRetention_SaysResumeExpired(t *testing.T) {
	forEachBackend(t, nil, func(t *testing.T, tb *testBundle) {
		appendEvents(t, tb.node, tb.acct.ID, tb.loc.Location.ID, 5, nil)
		// Retention removes the oldest events.
		if err := tb.node.Store.DB().Where("account_id = ? AND log_offset <= 3", tb.acct.ID).Delete(&models.Event{}).Error; err != nil {
			t.Fatal(err)
		}
		c := connect(t, tb.node.BaseURL, tb.token)
		c.send(map[string]any{"op": "subscribe", "after": 1})
		f := c.expect("error")
		if f.Code != "resume_expired" || f.Offset == nil || *f.Offset != 5 {
			t.Fatalf("got %+v", f)
		}
		c.send(map[string]any{"op": "subscribe", "after": 3})
		c.expect("subscribed")
		if f := c.expect("event"); f.Event.Offset != 4 {
			t.Fatalf("resumed at %d", f.Event.Offset)
		}
	})
}

func TestSupportStaff_WatchGrantedAccountsOnly(t *testing.T) {
	forEachBackend(t, nil, func(t *testing.T, tb *testBundle) {
		staffAcct, _ := tb.node.Account(t, "Platform Staff")
		staffToken := tb.node.Login(t, staffAcct.ID, models.RoleSupport)
		var me struct {
			Email string `json:"email"`
		}
		tb.node.Do(t, "GET", "/v1/me", staffToken, nil).JSON(t, &me)

		c := connect(t, tb.node.BaseURL, staffToken)
		c.send(map[string]any{"op": "subscribe", "account_id": tb.acct.ID})
		if f := c.expect("error"); f.Code != "forbidden" {
			t.Fatalf("without a grant: %+v", f)
		}
		r := tb.node.Do(t, "POST", "/v1/staff-grants", tb.token, map[string]string{"email": me.Email})
		if r.Status != http.StatusCreated {
			t.Fatalf("grant: %d %s", r.Status, r.Body)
		}
		c.send(map[string]any{"op": "subscribe", "account_id": tb.acct.ID})
		c.expect("subscribed")
		appendEvents(t, tb.node, tb.acct.ID, tb.loc.Location.ID, 1, nil)
		if f := c.expect("event"); f.Event.AccountID != tb.acct.ID {
			t.Fatalf("event %+v", f.Event)
		}
		// Read-only: support staff cannot start a sync.
		if r := tb.node.Do(t, "POST", "/v1/locations/"+tb.loc.Location.ID+"/sync", staffToken, map[string]string{"kind": "users"}); r.Status != http.StatusForbidden && r.Status != http.StatusNotFound {
			t.Fatalf("support sync: %d", r.Status)
		}
		if r := tb.node.Do(t, "POST", "/v1/staff-grants", tb.token, map[string]string{"email": "nobody@nowhere.test"}); r.Status != http.StatusNotFound {
			t.Fatalf("grant to an unknown e-mail: %d", r.Status)
		}
		// Revoking the grant cuts the live connection off.
		var grant struct {
			ID string `json:"id"`
		}
		r.JSON(t, &grant)
		if r := tb.node.Do(t, "DELETE", "/v1/staff-grants/"+grant.ID, tb.token, nil); r.Status != http.StatusNoContent {
			t.Fatalf("revoke: %d %s", r.Status, r.Body)
		}
		if code := c.closeCode(5 * time.Second); code != CloseForbiddenCode {
			t.Fatalf("revoked watcher closed with %d, want 4003", code)
		}
	})
}

// A staff grant that runs out ends the support login's watch at that
// moment, on the node's own clock: events before it arrive, an event that
// happens after it never does, the connection closes with 4003, and
// subscribing again is refused.
func TestSupportStaff_GrantExpires_Closes4003AndSendsNothingAfter(t *testing.T) {
	forEachBackend(t, nil, func(t *testing.T, tb *testBundle) {
		staffAcct, _ := tb.node.Account(t, "Platform Staff")
		staffToken := tb.node.Login(t, staffAcct.ID, models.RoleSupport)
		var me struct {
			Email string `json:"email"`
		}
		tb.node.Do(t, "GET", "/v1/me", staffToken, nil).JSON(t, &me)

		// Whole seconds, which both backends store exactly: two to three
		// seconds ahead, time enough to subscribe on a busy machine.
		expiresAt := time.Now().Add(3 * time.Second).Truncate(time.Second).UTC()
		r := tb.node.Do(t, "POST", "/v1/staff-grants", tb.token, map[string]any{"email": me.Email, "expires_at": expiresAt})
		if r.Status != http.StatusCreated {
			t.Fatalf("grant: %d %s", r.Status, r.Body)
		}

		owner := connect(t, tb.node.BaseURL, tb.token)
		owner.send(map[string]any{"op": "subscribe"})
		owner.expect("subscribed")
		staff := connect(t, tb.node.BaseURL, staffToken)
		staff.send(map[string]any{"op": "subscribe", "account_id": tb.acct.ID})
		staff.expect("subscribed")

		appendEvents(t, tb.node, tb.acct.ID, tb.loc.Location.ID, 1, nil)
		if f := staff.expect("event"); f.Event.Offset != 1 {
			t.Fatalf("before expiry the watcher got %+v", f.Event)
		}
		owner.expect("event")

		// From here on the watcher's frames are read as they come, with
		// the moment each arrived.
		type arrival struct {
			f   frame
			err error
			at  time.Time
		}
		arrivals := make(chan arrival, 16)
		go func() {
			defer close(arrivals)
			for {
				_ = staff.conn.SetReadDeadline(time.Now().Add(15 * time.Second))
				_, data, err := staff.conn.ReadMessage()
				a := arrival{err: err, at: time.Now()}
				if err == nil && json.Unmarshal(data, &a.f) != nil {
					a.err = fmt.Errorf("server sent %q", data)
				}
				arrivals <- a
				if a.err != nil {
					return
				}
			}
		}()

		apptest.Eventually(t, 10*time.Second, func() (bool, string) {
			return !time.Now().Before(expiresAt), "the grant has not expired yet"
		})
		appendEvents(t, tb.node, tb.acct.ID, tb.loc.Location.ID, 1, nil)
		if f := owner.expect("event"); f.Event.Offset != 2 {
			t.Fatalf("owner got %+v", f.Event)
		}
		for a := range arrivals {
			if a.err == nil {
				t.Fatalf("after the grant expired the watcher got %+v", a.f)
			}
			var ce *websocket.CloseError
			if !errors.As(a.err, &ce) || ce.Code != CloseForbiddenCode || ce.Text != "access to the account has expired" {
				t.Fatalf("watcher ended with %v, want close 4003 saying access expired", a.err)
			}
			if a.at.Before(expiresAt) {
				t.Fatalf("watcher closed at %v, before the grant expired at %v", a.at, expiresAt)
			}
		}

		again := connect(t, tb.node.BaseURL, staffToken)
		again.send(map[string]any{"op": "subscribe", "account_id": tb.acct.ID})
		if f := again.expect("error"); f.Code != "forbidden" {
			t.Fatalf("subscribing after the grant expired: %+v", f)
		}
	})
}

func TestShutdown_ClosesEveryConnectionWith1001(t *testing.T) {
	forEachBackend(t, nil, func(t *testing.T, tb *testBundle) {
		a := connect(t, tb.node.BaseURL, tb.token)
		a.send(map[string]any{"op": "subscribe"})
		a.expect("subscribed")
		b := connect(t, tb.node.BaseURL, tb.token)
		go tb.node.Stop()
		for _, c := range []*wsClient{a, b} {
			if code := c.closeCode(10 * time.Second); code != websocket.CloseGoingAway {
				t.Fatalf("close on shutdown %d, want 1001", code)
			}
		}
	})
}

// A client may send its first frame right behind the handshake request,
// in the same packet; the frame must not be lost to the HTTP server's
// read buffer when the socket is handed to the hub.
func TestHandshake_FrameSentWithTheRequestIsRead(t *testing.T) {
	forEachBackend(t, nil, func(t *testing.T, tb *testBundle) {
		addr := strings.TrimPrefix(tb.node.BaseURL, "http://")
		conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		request := "GET /v1/realtime HTTP/1.1\r\nHost: " + addr + "\r\n" +
			"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n" +
			"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nAuthorization: Bearer " + tb.token + "\r\n\r\n"
		subscribe := maskedTextFrame([]byte(`{"op":"subscribe","after":0}`))
		if _, err := conn.Write(append([]byte(request), subscribe...)); err != nil {
			t.Fatal(err)
		}
		_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		var got []byte
		buf := make([]byte, 4096)
		for !strings.Contains(string(got), `"type":"subscribed"`) {
			n, err := conn.Read(buf)
			if err != nil {
				t.Fatalf("no subscribed frame; read %q: %v", got, err)
			}
			got = append(got, buf[:n]...)
		}
		if !strings.HasPrefix(string(got), "HTTP/1.1 101") {
			t.Fatalf("handshake answer: %q", got)
		}
	})
}

func TestProtocolFault_ClosesWithItsCode(t *testing.T) {
	forEachBackend(t, nil, func(t *testing.T, tb *testBundle) {
		c := connect(t, tb.node.BaseURL, tb.token)
		if err := c.conn.WriteMessage(websocket.TextMessage, []byte{0xff, 0xfe}); err != nil {
			t.Fatal(err)
		}
		if code := c.closeCode(5 * time.Second); code != websocket.CloseInvalidFramePayloadData {
			t.Fatalf("text that is not UTF-8: close %d, want 1007", code)
		}
		// The server goes on serving others.
		other := connect(t, tb.node.BaseURL, tb.token)
		other.send(map[string]any{"op": "ping"})
		other.expect("pong")
	})
}

func maskedTextFrame(payload []byte) []byte {
	mask := []byte{1, 2, 3, 4}
	out := append([]byte{0x81, 0x80 | byte(len(payload))}, mask...)
	for i, b := range payload {
		out = append(out, b^mask[i%4])
	}
	return out
}

// An integrator's key with the read scope watches the account like a
// login does, and revoking the key ends its connections at once.
func TestAPIKey_WatchesUntilRevoked(t *testing.T) {
	forEachBackend(t, nil, func(t *testing.T, tb *testBundle) {
		r := tb.node.Do(t, "POST", "/v1/api-keys", tb.token, map[string]any{"name": "Dashboard", "scopes": []string{"read"}})
		if r.Status != http.StatusCreated {
			t.Fatalf("create key: %d %s", r.Status, r.Body)
		}
		var created struct {
			APIKey struct {
				ID string `json:"id"`
			} `json:"api_key"`
			Secret string `json:"secret"`
		}
		r.JSON(t, &created)

		c := connect(t, tb.node.BaseURL, created.Secret)
		c.send(map[string]any{"op": "subscribe", "after": 0})
		c.expect("subscribed")
		appendEvents(t, tb.node, tb.acct.ID, tb.loc.Location.ID, 3, nil)
		for range 3 {
			if f := c.expect("event"); f.Event.AccountID != tb.acct.ID {
				t.Fatalf("event of another account: %+v", f.Event)
			}
		}
		// A login's connection is not touched by the key's revocation.
		login := connect(t, tb.node.BaseURL, tb.token)
		login.send(map[string]any{"op": "subscribe"})
		login.expect("subscribed")

		if r := tb.node.Do(t, "DELETE", "/v1/api-keys/"+created.APIKey.ID, tb.token, nil); r.Status != http.StatusNoContent {
			t.Fatalf("revoke: %d %s", r.Status, r.Body)
		}
		if code := c.closeCode(5 * time.Second); code != 4001 {
			t.Fatalf("revoked key's connection: close %d, want 4001", code)
		}
		login.send(map[string]any{"op": "ping"})
		login.expect("pong")
		if code := connect(t, tb.node.BaseURL, created.Secret).closeCode(5 * time.Second); code != 4001 {
			t.Fatalf("reconnecting with a revoked key: close %d, want 4001", code)
		}
	})
}

// Signing out ends the session's live connections, not only its future
// requests; another session of the same login keeps its own.
func TestLogout_ClosesTheSessionsConnections(t *testing.T) {
	forEachBackend(t, nil, func(t *testing.T, tb *testBundle) {
		var me struct {
			Email string `json:"email"`
		}
		tb.node.Do(t, "GET", "/v1/me", tb.token, nil).JSON(t, &me)
		other := tb.node.Token(t, me.Email)
		c := connect(t, tb.node.BaseURL, tb.token)
		c.send(map[string]any{"op": "subscribe"})
		c.expect("subscribed")
		kept := connect(t, tb.node.BaseURL, other)
		kept.send(map[string]any{"op": "subscribe"})
		kept.expect("subscribed")

		if r := tb.node.Do(t, "POST", "/v1/auth/logout", tb.token, nil); r.Status != http.StatusNoContent {
			t.Fatalf("logout: %d %s", r.Status, r.Body)
		}
		if code := c.closeCode(5 * time.Second); code != 4001 {
			t.Fatalf("signed-out session's connection: close %d, want 4001", code)
		}
		kept.send(map[string]any{"op": "ping"})
		kept.expect("pong")
	})
}
