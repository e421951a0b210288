package handlers_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/fasthttp/websocket"

	"github.com/panelsync/panelsync/app"
	"github.com/panelsync/panelsync/models"
	"github.com/panelsync/panelsync/models/dbtest"
)

type loginResp struct {
	ID          string  `json:"id"`
	Email       string  `json:"email"`
	Name        string  `json:"name"`
	Role        string  `json:"role"`
	State       string  `json:"state"`
	CreatedAt   string  `json:"created_at"`
	LastLoginAt *string `json:"last_login_at"`
}

// invite invites a login as token and returns it.
func (tb *testBundle) invite(t *testing.T, token, email, role string) loginResp {
	t.Helper()
	r := tb.do(t, "POST", "/v1/logins", token, map[string]string{"email": email, "name": "Invited " + role, "role": role})
	if r.status != http.StatusCreated {
		t.Fatalf("invite %s: %d %s", email, r.status, r.body)
	}
	var out struct {
		Login   loginResp `json:"login"`
		Message string    `json:"message"`
	}
	r.json(t, &out)
	if out.Message != "Invitation sent to "+models.NormalizeEmail(email) {
		t.Fatalf("invitation message %q", out.Message)
	}
	return out.Login
}

// accept accepts the newest invitation mailed to email with password and
// returns the token pair.
func (tb *testBundle) accept(t *testing.T, email, password string) tokenPair {
	t.Helper()
	m := tb.waitMail(t, email, 1)
	r := tb.do(t, "POST", "/v1/auth/invitations/accept", "", map[string]string{"token": m.token(t), "password": password})
	if r.status != http.StatusOK {
		t.Fatalf("accept invitation: %d %s", r.status, r.body)
	}
	var tp tokenPair
	r.json(t, &tp)
	return tp
}

const newPassword = "a new and long pass phrase"

func TestInvitation_MailedLinkSetsThePasswordOnce_ThenTheMemberSignsIn(t *testing.T) {
	forEachBackend(t, func(t *testing.T, tb *testBundle) {
		tb.serve(t)
		owner := tb.signIn(t, "owner@a.test").AccessToken
		invited := tb.invite(t, owner, "Colleague@Example.com ", "member")
		if invited.State != "invited" || invited.Email != "colleague@example.com" || invited.LastLoginAt != nil {
			t.Fatalf("invited login %+v", invited)
		}
		// Until the invitation is accepted, the login cannot sign in.
		if r := tb.do(t, "POST", "/v1/auth/login", "", map[string]string{"email": "colleague@example.com", "password": newPassword}); r.status != http.StatusUnauthorized {
			t.Fatalf("invited login signed in without a password: %d", r.status)
		}

		m := tb.waitMail(t, "colleague@example.com", 1)
		if !strings.Contains(m.subject, "Account A") || !strings.Contains(m.text, "owner@a.test has invited you") || !strings.Contains(m.html, "Accept the invitation") {
			t.Fatalf("invitation mail: %q\n%s", m.subject, m.text)
		}
		token := m.token(t)

		short := tb.do(t, "POST", "/v1/auth/invitations/accept", "", map[string]string{"token": token, "password": "too short"})
		if p := short.problem(t); short.status != http.StatusBadRequest || p.Field != "password" || !strings.Contains(p.Detail, "12") {
			t.Fatalf("short password: %d %+v", short.status, p)
		}
		long := tb.do(t, "POST", "/v1/auth/invitations/accept", "", map[string]string{"token": token, "password": strings.Repeat("x", 129)})
		if long.status != http.StatusBadRequest {
			t.Fatalf("129-character password: %d", long.status)
		}
		// A 128-character password is allowed, and all of it counts.
		pass128 := strings.Repeat("p", 127) + "1"
		r := tb.do(t, "POST", "/v1/auth/invitations/accept", "", map[string]string{"token": token, "password": pass128})
		if r.status != http.StatusOK {
			t.Fatalf("accept: %d %s", r.status, r.body)
		}
		var tp tokenPair
		r.json(t, &tp)
		accepted := tb.audit(t, owner, "?action=login.invitation_accepted")
		if len(accepted.Items) != 1 || accepted.Items[0].Actor.ID != invited.ID || accepted.Items[0].RequestID != r.header.Get("X-Request-Id") {
			t.Fatalf("acceptance audited as %+v, want by the login itself under request %s", accepted.Items, r.header.Get("X-Request-Id"))
		}
		if me := tb.do(t, "GET", "/v1/me", tp.AccessToken, nil); me.status != http.StatusOK || !strings.Contains(string(me.body), `"role":"member"`) {
			t.Fatalf("me after accepting: %d %s", me.status, me.body)
		}
		again := tb.do(t, "POST", "/v1/auth/invitations/accept", "", map[string]string{"token": token, "password": newPassword})
		if p := again.problem(t); again.status != http.StatusBadRequest || p.Field != "token" {
			t.Fatalf("second use of the invitation: %d %+v", again.status, p)
		}
		if r := tb.do(t, "POST", "/v1/auth/login", "", map[string]string{"email": "colleague@example.com", "password": strings.Repeat("p", 127) + "2"}); r.status != http.StatusUnauthorized {
			t.Fatalf("a password differing only in its 128th character signed in: %d", r.status)
		}
		if r := tb.do(t, "POST", "/v1/auth/login", "", map[string]string{"email": "colleague@example.com", "password": pass128}); r.status != http.StatusOK {
			t.Fatalf("sign in with the chosen password: %d %s", r.status, r.body)
		}

		got := tb.do(t, "GET", "/v1/logins/"+invited.ID, owner, nil)
		var l loginResp
		got.json(t, &l)
		if l.State != "active" || l.LastLoginAt == nil {
			t.Fatalf("login after accepting %+v", l)
		}
		dup := tb.do(t, "POST", "/v1/logins", owner, map[string]string{"email": "colleague@example.com", "name": "Again", "role": "member"})
		if p := dup.problem(t); dup.status != http.StatusConflict || p.Code != "conflict" {
			t.Fatalf("invite an e-mail in use: %d %+v", dup.status, p)
		}
	})
}

func TestInvitation_ResentLinkReplacesTheOld(t *testing.T) {
	forEachBackend(t, func(t *testing.T, tb *testBundle) {
		tb.serve(t)
		owner := tb.signIn(t, "owner@a.test").AccessToken
		l := tb.invite(t, owner, "late@example.com", "admin")
		first := tb.waitMail(t, "late@example.com", 1).token(t)
		if r := tb.do(t, "POST", "/v1/logins/"+l.ID+"/invitation", owner, nil); r.status != http.StatusAccepted {
			t.Fatalf("resend: %d %s", r.status, r.body)
		}
		second := tb.waitMail(t, "late@example.com", 2).token(t)
		if r := tb.do(t, "POST", "/v1/auth/invitations/accept", "", map[string]string{"token": first, "password": newPassword}); r.status != http.StatusBadRequest {
			t.Fatalf("the replaced link still works: %d", r.status)
		}
		if r := tb.do(t, "POST", "/v1/auth/invitations/accept", "", map[string]string{"token": second, "password": newPassword}); r.status != http.StatusOK {
			t.Fatalf("the new link: %d %s", r.status, r.body)
		}
		if r := tb.do(t, "POST", "/v1/logins/"+l.ID+"/invitation", owner, nil); r.status != http.StatusConflict {
			t.Fatalf("resend to an active login: %d", r.status)
		}
	})
}

func TestLogins_RoleRules_AdminsCannotTouchOwners_LastOwnerStays(t *testing.T) {
	forEachBackend(t, func(t *testing.T, tb *testBundle) {
		ctx := context.Background()
		admin := tb.login(t, tb.acctA, "admin@a.test", models.RoleAdmin)
		owner := tb.signIn(t, "owner@a.test").AccessToken
		adminTok := tb.signIn(t, "admin@a.test").AccessToken
		member := tb.signIn(t, "member@a.test").AccessToken

		cases := []struct {
			name, method, path, token string
			body                      any
			status                    int
			code                      string
		}{
			{"member lists logins", "GET", "/v1/logins", member, nil, 403, "forbidden"},
			{"member invites", "POST", "/v1/logins", member, map[string]string{"email": "x@example.com", "name": "X", "role": "member"}, 403, "forbidden"},
			{"admin invites an owner", "POST", "/v1/logins", adminTok, map[string]string{"email": "x@example.com", "name": "X", "role": "owner"}, 403, "forbidden"},
			{"admin renames the owner", "PATCH", "/v1/logins/" + tb.ownerA.ID, adminTok, map[string]string{"name": "Renamed"}, 403, "forbidden"},
			{"admin deactivates the owner", "POST", "/v1/logins/" + tb.ownerA.ID + "/deactivate", adminTok, nil, 403, "forbidden"},
			{"admin promotes a member to owner", "PATCH", "/v1/logins/" + tb.memberA.ID, adminTok, map[string]string{"role": "owner"}, 403, "forbidden"},
			{"support role is the operator's", "POST", "/v1/logins", owner, map[string]string{"email": "x@example.com", "name": "X", "role": "support"}, 400, "invalid_request"},
			{"unknown role", "PATCH", "/v1/logins/" + tb.memberA.ID, owner, map[string]string{"role": "root"}, 400, "invalid_request"},
			{"control character in a name", "PATCH", "/v1/logins/" + tb.memberA.ID, owner, map[string]string{"name": "Eve\r\nAdmin"}, 400, "invalid_request"},
			{"bad e-mail", "POST", "/v1/logins", owner, map[string]string{"email": "not-an-address", "name": "X", "role": "member"}, 400, "invalid_request"},
			{"unknown field", "POST", "/v1/logins", owner, map[string]string{"email": "x@example.com", "name": "X", "role": "member", "password": "x"}, 400, "invalid_request"},
			{"nothing to change", "PATCH", "/v1/logins/" + tb.memberA.ID, owner, map[string]string{}, 400, "invalid_request"},
			{"last owner demotes themself", "PATCH", "/v1/logins/" + tb.ownerA.ID, owner, map[string]string{"role": "admin"}, 409, "last_owner"},
			{"last owner deactivates themself", "POST", "/v1/logins/" + tb.ownerA.ID + "/deactivate", owner, nil, 409, "last_owner"},
			{"another account's login", "PATCH", "/v1/logins/" + tb.ownerB.ID, owner, map[string]string{"name": "Mine now"}, 404, "not_found"},
		}
		_, auditBefore := tb.counts(t)
		for _, tc := range cases {
			r := tb.do(t, tc.method, tc.path, tc.token, tc.body)
			if r.status != tc.status || r.problem(t).Code != tc.code {
				t.Errorf("%s: %d %s, want %d %s", tc.name, r.status, r.body, tc.status, tc.code)
			}
		}
		if _, auditAfter := tb.counts(t); auditAfter != auditBefore {
			t.Errorf("refused changes wrote %d audit entries", auditAfter-auditBefore)
		}
		var n int64
		tb.store.DB().Model(&models.Login{}).Where("account_id = ?", tb.acctA.ID).Count(&n)
		if n != 3 {
			t.Errorf("refused invitations created logins: %d in the account", n)
		}

		// With a second active owner, the first may step down.
		if r := tb.do(t, "PATCH", "/v1/logins/"+admin.ID, owner, map[string]string{"role": "owner", "name": "Second Owner"}); r.status != http.StatusOK || !strings.Contains(string(r.body), `"role":"owner"`) {
			t.Fatalf("promote the admin: %d %s", r.status, r.body)
		}
		if r := tb.do(t, "PATCH", "/v1/logins/"+tb.ownerA.ID, owner, map[string]string{"role": "admin"}); r.status != http.StatusOK {
			t.Fatalf("step down beside another owner: %d %s", r.status, r.body)
		}
		// The role change takes effect on the next request of the same token.
		if r := tb.do(t, "POST", "/v1/logins", owner, map[string]string{"email": "x@example.com", "name": "X", "role": "owner"}); r.status != http.StatusForbidden {
			t.Fatalf("a former owner made an owner: %d", r.status)
		}
		l, err := tb.store.LoginByID(ctx, tb.ownerA.ID)
		if err != nil || l.Role != models.RoleAdmin {
			t.Fatalf("stored role %s, %v", l.Role, err)
		}
	})
}

// dialRealtime opens the realtime socket with token and subscribes to the
// whole account.
func dialRealtime(t *testing.T, base, token string) *websocket.Conn {
	t.Helper()
	h := http.Header{}
	h.Set("Authorization", "Bearer "+token)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, _, err := websocket.DefaultDialer.DialContext(ctx, "ws"+strings.TrimPrefix(base, "http")+"/v1/realtime", h)
	if err != nil {
		t.Fatalf("dial realtime: %v", err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	if err := conn.WriteJSON(map[string]any{"op": "subscribe"}); err != nil {
		t.Fatal(err)
	}
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	var f struct {
		Type string `json:"type"`
	}
	if err := conn.ReadJSON(&f); err != nil || f.Type != "subscribed" {
		t.Fatalf("subscribe: %+v %v", f, err)
	}
	return conn
}

// closeCode reads until the server closes the socket and returns its code.
func closeCode(t *testing.T, conn *websocket.Conn) int {
	t.Helper()
	_ = conn.SetReadDeadline(time.Now().Add(15 * time.Second))
	for {
		_, _, err := conn.ReadMessage()
		if err == nil {
			continue
		}
		var ce *websocket.CloseError
		if errors.As(err, &ce) {
			return ce.Code
		}
		t.Fatalf("socket ended without a close frame: %v", err)
	}
}

func TestDeactivate_EndsSessionsAndLiveConnections_ReactivateRestoresSignIn(t *testing.T) {
	forEachBackend(t, func(t *testing.T, tb *testBundle) {
		base := tb.serve(t)
		owner := tb.signIn(t, "owner@a.test").AccessToken
		member := tb.signIn(t, "member@a.test")
		conn := dialRealtime(t, base, member.AccessToken)

		r := tb.do(t, "POST", "/v1/logins/"+tb.memberA.ID+"/deactivate", owner, nil)
		if r.status != http.StatusOK || !strings.Contains(string(r.body), `"state":"deactivated"`) {
			t.Fatalf("deactivate: %d %s", r.status, r.body)
		}
		if code := closeCode(t, conn); code != 4001 {
			t.Fatalf("the member's socket closed with %d, want 4001", code)
		}
		if r := tb.do(t, "GET", "/v1/me", member.AccessToken, nil); r.status != http.StatusUnauthorized {
			t.Fatalf("the member's access token still works: %d", r.status)
		}
		if r := tb.do(t, "POST", "/v1/auth/refresh", "", map[string]string{"refresh_token": member.RefreshToken}); r.status != http.StatusUnauthorized {
			t.Fatalf("the member's refresh token still works: %d", r.status)
		}
		if r := tb.do(t, "POST", "/v1/auth/login", "", map[string]string{"email": "member@a.test", "password": testPassword}); r.status != http.StatusUnauthorized {
			t.Fatalf("a deactivated login signed in: %d", r.status)
		}
		if r := tb.do(t, "POST", "/v1/auth/password-reset", "", map[string]string{"email": "member@a.test"}); r.status != http.StatusAccepted {
			t.Fatalf("reset for a deactivated login: %d", r.status)
		}
		// Deactivating twice changes nothing more.
		if r := tb.do(t, "POST", "/v1/logins/"+tb.memberA.ID+"/deactivate", owner, nil); r.status != http.StatusOK {
			t.Fatalf("second deactivate: %d", r.status)
		}

		if r := tb.do(t, "POST", "/v1/logins/"+tb.memberA.ID+"/reactivate", owner, nil); r.status != http.StatusOK || !strings.Contains(string(r.body), `"state":"active"`) {
			t.Fatalf("reactivate: %d %s", r.status, r.body)
		}
		tb.signIn(t, "member@a.test")
		if n := len(tb.mails(t, "member@a.test")); n != 0 {
			t.Fatalf("a deactivated login was mailed a reset link (%d mails)", n)
		}
	})
}

func TestPasswordReset_SameAnswerForUnknownEmail_LinkWorksOnceAndEndsSessions(t *testing.T) {
	forEachBackend(t, func(t *testing.T, tb *testBundle) {
		base := tb.serve(t)
		old := tb.signIn(t, "member@a.test")
		conn := dialRealtime(t, base, old.AccessToken)

		known := tb.do(t, "POST", "/v1/auth/password-reset", "", map[string]string{"email": "member@a.test"})
		unknown := tb.do(t, "POST", "/v1/auth/password-reset", "", map[string]string{"email": "nobody@a.test"})
		if known.status != http.StatusAccepted || unknown.status != known.status || string(unknown.body) != string(known.body) {
			t.Fatalf("known %d %s, unknown %d %s", known.status, known.body, unknown.status, unknown.body)
		}
		if r := tb.do(t, "POST", "/v1/auth/password-reset", "", map[string]string{"email": "not an address"}); r.status != http.StatusBadRequest {
			t.Fatalf("malformed e-mail: %d", r.status)
		}
		m := tb.waitMail(t, "member@a.test", 1)
		if m.subject != "Reset your panelsync password" {
			t.Fatalf("reset mail %q", m.subject)
		}
		// A second request within the minute sends no second mail.
		tb.do(t, "POST", "/v1/auth/password-reset", "", map[string]string{"email": "member@a.test"})

		token := m.token(t)
		if r := tb.do(t, "POST", "/v1/auth/password-reset/confirm", "", map[string]string{"token": token, "new_password": "short"}); r.status != http.StatusBadRequest {
			t.Fatalf("short password: %d", r.status)
		}
		if r := tb.do(t, "POST", "/v1/auth/password-reset/confirm", "", map[string]string{"token": token, "new_password": newPassword}); r.status != http.StatusNoContent {
			t.Fatalf("confirm: %d %s", r.status, r.body)
		}
		if code := closeCode(t, conn); code != 4001 {
			t.Fatalf("socket of the old session closed with %d, want 4001", code)
		}
		if r := tb.do(t, "GET", "/v1/me", old.AccessToken, nil); r.status != http.StatusUnauthorized {
			t.Fatalf("a session from before the reset still works: %d", r.status)
		}
		if r := tb.do(t, "POST", "/v1/auth/password-reset/confirm", "", map[string]string{"token": token, "new_password": newPassword + "!"}); r.status != http.StatusBadRequest {
			t.Fatalf("second use of the link: %d", r.status)
		}
		if r := tb.do(t, "POST", "/v1/auth/login", "", map[string]string{"email": "member@a.test", "password": testPassword}); r.status != http.StatusUnauthorized {
			t.Fatalf("the old password still works: %d", r.status)
		}
		if r := tb.do(t, "POST", "/v1/auth/login", "", map[string]string{"email": "member@a.test", "password": newPassword}); r.status != http.StatusOK {
			t.Fatalf("the new password: %d %s", r.status, r.body)
		}
		changed := tb.waitMail(t, "member@a.test", 2)
		if changed.subject != "Your panelsync password was changed" {
			t.Fatalf("last mail %q", changed.subject)
		}
		if n := len(tb.mails(t, "nobody@a.test")); n != 0 {
			t.Fatalf("mail went to an unknown address")
		}
	})
}

func TestChangePassword_NeedsTheCurrent_EndsOtherSessionsOnly(t *testing.T) {
	forEachBackend(t, func(t *testing.T, tb *testBundle) {
		tb.serve(t)
		here := tb.signIn(t, "member@a.test")
		elsewhere := tb.signIn(t, "member@a.test")
		wrong := tb.do(t, "POST", "/v1/auth/password", here.AccessToken, map[string]string{"current_password": "not the password", "new_password": newPassword})
		if p := wrong.problem(t); wrong.status != http.StatusBadRequest || p.Field != "current_password" {
			t.Fatalf("wrong current password: %d %+v", wrong.status, p)
		}
		if r := tb.do(t, "POST", "/v1/auth/password", here.AccessToken, map[string]string{"current_password": testPassword, "new_password": newPassword}); r.status != http.StatusNoContent {
			t.Fatalf("change: %d %s", r.status, r.body)
		}
		if r := tb.do(t, "GET", "/v1/me", here.AccessToken, nil); r.status != http.StatusOK {
			t.Fatalf("the session that changed the password ended: %d", r.status)
		}
		if r := tb.do(t, "GET", "/v1/me", elsewhere.AccessToken, nil); r.status != http.StatusUnauthorized {
			t.Fatalf("another session survived the change: %d", r.status)
		}
		if r := tb.do(t, "POST", "/v1/auth/login", "", map[string]string{"email": "member@a.test", "password": newPassword}); r.status != http.StatusOK {
			t.Fatalf("sign in with the new password: %d", r.status)
		}
		if m := tb.waitMail(t, "member@a.test", 1); m.subject != "Your panelsync password was changed" {
			t.Fatalf("notice %q", m.subject)
		}
	})
}

func TestChangePassword_WrongCurrentPasswords_AreThrottledLikeSignIns(t *testing.T) {
	for _, b := range dbtest.Backends(t) {
		t.Run(b.Name, func(t *testing.T) {
			tb := setup(t, b, func(cfg *app.Config) { cfg.LoginFreeFailures = 2 })
			tok := tb.signIn(t, "member@a.test").AccessToken
			wrong := map[string]string{"current_password": "not the password", "new_password": newPassword}
			var last response
			for range 6 {
				if last = tb.do(t, "POST", "/v1/auth/password", tok, wrong); last.status == http.StatusTooManyRequests {
					break
				}
			}
			if last.status != http.StatusTooManyRequests || last.header.Get("Retry-After") == "" {
				t.Fatalf("wrong current passwords were never throttled: last %d %s", last.status, last.body)
			}
			// While throttled, even the right current password waits.
			right := map[string]string{"current_password": testPassword, "new_password": newPassword}
			if r := tb.do(t, "POST", "/v1/auth/password", tok, right); r.status != http.StatusTooManyRequests {
				t.Fatalf("throttled change went through: %d", r.status)
			}
		})
	}
}
