package handlers_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/panelsync/panelsync/app"
	"github.com/panelsync/panelsync/auth"
	"github.com/panelsync/panelsync/mail"
	"github.com/panelsync/panelsync/models/dbtest"
)

func TestLogin_ReturnsTokensAndMe(t *testing.T) {
	forEachBackend(t, func(t *testing.T, tb *testBundle) {
		tp := tb.signIn(t, "Owner@A.test ")
		if tp.TokenType != "Bearer" || tp.ExpiresIn != 900 || tp.AccessToken == "" || !strings.HasPrefix(tp.RefreshToken, "psr_") {
			t.Fatalf("token response %+v", tp)
		}
		r := tb.do(t, "GET", "/v1/me", tp.AccessToken, nil)
		if r.status != http.StatusOK {
			t.Fatalf("me: %d %s", r.status, r.body)
		}
		var me map[string]string
		r.json(t, &me)
		if me["email"] != "owner@a.test" || me["role"] != "owner" || me["account_id"] != tb.acctA.ID || me["id"] != tb.ownerA.ID {
			t.Fatalf("me = %v", me)
		}
		if strings.Contains(string(r.body), "password") {
			t.Fatalf("me leaks password material: %s", r.body)
		}
	})
}

func TestLogin_WrongPasswordAndUnknownEmail_GetTheSameAnswer(t *testing.T) {
	forEachBackend(t, func(t *testing.T, tb *testBundle) {
		wrong := tb.do(t, "POST", "/v1/auth/login", "", map[string]string{"email": "owner@a.test", "password": "not the password"})
		unknown := tb.do(t, "POST", "/v1/auth/login", "", map[string]string{"email": "nobody@a.test", "password": "not the password"})
		pw, pu := wrong.problem(t), unknown.problem(t)
		if wrong.status != http.StatusUnauthorized || unknown.status != http.StatusUnauthorized {
			t.Fatalf("statuses %d and %d, want 401", wrong.status, unknown.status)
		}
		if pw.Code != "invalid_credentials" || pw.Code != pu.Code || pw.Detail != pu.Detail {
			t.Fatalf("answers differ: %+v vs %+v", pw, pu)
		}
	})
}

// TestLogin_UnknownEmail_TakesAsLongAsAWrongPassword checks that the answer
// time does not reveal whether an e-mail has a login: both paths run one
// bcrypt comparison at the configured cost.
func TestLogin_UnknownEmail_TakesAsLongAsAWrongPassword(t *testing.T) {
	b := dbtest.Backends(t)[0]
	tb := setup(t, b, func(c *app.Config) { c.BcryptCost = 10 })
	tb.login(t, tb.acctA, "slow@a.test", "member")
	measure := func(email string) time.Duration {
		var d []time.Duration
		for range 7 {
			start := time.Now()
			r := tb.do(t, "POST", "/v1/auth/login", "", map[string]string{"email": email, "password": "wrong password!"})
			d = append(d, time.Since(start))
			if r.status != http.StatusUnauthorized {
				t.Fatalf("login %s: %d", email, r.status)
			}
		}
		sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
		return d[len(d)/2]
	}
	known, unknown := measure("slow@a.test"), measure("ghost@a.test")
	ratio := float64(unknown) / float64(known)
	if ratio < 0.5 || ratio > 2 {
		t.Fatalf("median unknown-email login %v vs wrong-password %v (ratio %.2f): timing reveals which e-mails exist", unknown, known, ratio)
	}
}

// Wrong passwords from one client address hold back that address only:
// the owner still signs in from another address at once, and an unknown
// e-mail is throttled exactly as a known one.
func TestLogin_WrongPasswordsFromOneAddress_429ThereWhileTheRightPasswordSignsInFromAnother(t *testing.T) {
	const attacker, owner = "198.51.100.7", "203.0.113.20"
	for _, b := range dbtest.Backends(t) {
		t.Run(b.Name, func(t *testing.T) {
			tb := setup(t, b, func(c *app.Config) {
				c.ProxyHeader = "X-Forwarded-For"
				c.LoginFreeFailures = app.DefaultConfig().LoginFreeFailures
			})
			attempt := func(email, password, from string) response {
				return tb.do(t, "POST", "/v1/auth/login", "", map[string]string{"email": email, "password": password}, "X-Forwarded-For", from)
			}
			// Each e-mail fails from the attacker's address until it is
			// held back. Five failures are free; after that the address
			// waits a second, then two, and so on, so on a slow machine a
			// wait may run out before the next attempt, but never all.
			limited := map[string]problemDoc{}
			for _, email := range []string{"owner@a.test", "ghost@a.test"} {
				failures := 0
				for r := attempt(email, "wrong password", attacker); ; r = attempt(email, "wrong password", attacker) {
					if r.status == http.StatusUnauthorized {
						if failures++; failures > 20 {
							t.Fatalf("%s: 20 wrong passwords from one address and no 429", email)
						}
						continue
					}
					if r.status != http.StatusTooManyRequests {
						t.Fatalf("%s after %d failures: %d %s", email, failures, r.status, r.body)
					}
					if ra, err := strconv.Atoi(r.header.Get("Retry-After")); err != nil || ra < 1 {
						t.Fatalf("%s: Retry-After = %q", email, r.header.Get("Retry-After"))
					}
					limited[email] = r.problem(t)
					break
				}
				if failures < 5 {
					t.Fatalf("%s held back after %d failures, want 5 free", email, failures)
				}
			}
			if p, q := limited["owner@a.test"], limited["ghost@a.test"]; p != q || p.Code != "rate_limited" {
				t.Fatalf("a known and an unknown e-mail are held back differently: %+v vs %+v", p, q)
			}

			// The owner, elsewhere, signs in at once; so does another login
			// from the attacker's own address.
			if r := attempt("owner@a.test", testPassword, owner); r.status != http.StatusOK {
				t.Fatalf("right password from another address: %d %s", r.status, r.body)
			}
			if r := attempt("member@a.test", testPassword, attacker); r.status != http.StatusOK {
				t.Fatalf("another e-mail from the attacker's address: %d %s", r.status, r.body)
			}
		})
	}
}

// forge signs claims with key using method, for attacks on the verifier.
func forge(t *testing.T, method jwt.SigningMethod, key any, claims jwt.MapClaims) string {
	t.Helper()
	s, err := jwt.NewWithClaims(method, claims).SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func claimsOf(t *testing.T, token string) jwt.MapClaims {
	t.Helper()
	parts := strings.Split(token, ".")
	raw, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var c jwt.MapClaims
	if err := json.Unmarshal(raw, &c); err != nil {
		t.Fatal(err)
	}
	return c
}

func TestAuthenticate_RefusesForgedAndExpiredTokens(t *testing.T) {
	forEachBackend(t, func(t *testing.T, tb *testBundle) {
		good := tb.signIn(t, "member@a.test").AccessToken
		claims := claimsOf(t, good)

		expired := jwt.MapClaims{}
		for k, v := range claims {
			expired[k] = v
		}
		expired["iat"] = time.Now().Add(-2 * time.Hour).Unix()
		expired["nbf"] = time.Now().Add(-2 * time.Hour).Unix()
		expired["exp"] = time.Now().Add(-time.Hour).Unix()

		elevated := jwt.MapClaims{}
		for k, v := range claims {
			elevated[k] = v
		}
		elevated["role"] = "owner"
		elevated["acc"] = tb.acctB.ID
		payload, _ := json.Marshal(elevated)
		parts := strings.Split(good, ".")
		tampered := parts[0] + "." + base64.RawURLEncoding.EncodeToString(payload) + "." + parts[2]

		noneHeader := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none","typ":"JWT"}`))
		algNone := noneHeader + "." + parts[1] + "."

		cases := map[string]string{
			"expired":         forge(t, jwt.SigningMethodHS256, []byte(testSigningKey), expired),
			"wrong signature": forge(t, jwt.SigningMethodHS256, []byte("another-key-0123456789abcdef0123456789"), claims),
			"alg none":        algNone,
			"tampered claims": tampered,
			"HS512":           forge(t, jwt.SigningMethodHS512, []byte(testSigningKey), claims),
			"garbage":         "not.a.token",
		}
		for name, token := range cases {
			// Only a genuine token that ran out is worth refreshing.
			want := "unauthorized"
			if name == "expired" {
				want = "token_expired"
			}
			r := tb.do(t, "GET", "/v1/me", token, nil)
			if r.status != http.StatusUnauthorized || r.problem(t).Code != want {
				t.Errorf("%s token: %d %s, want code %s", name, r.status, r.body, want)
			}
		}
		if r := tb.do(t, "GET", "/v1/me", "", nil); r.status != http.StatusUnauthorized || r.header.Get("WWW-Authenticate") == "" {
			t.Errorf("no token: %d, WWW-Authenticate %q", r.status, r.header.Get("WWW-Authenticate"))
		}
	})
}

func TestRefresh_RotatesAndReplayRevokesTheFamily(t *testing.T) {
	forEachBackend(t, func(t *testing.T, tb *testBundle) {
		first := tb.signIn(t, "owner@a.test")
		refresh := func(token string) response {
			return tb.do(t, "POST", "/v1/auth/refresh", "", map[string]string{"refresh_token": token})
		}
		r := refresh(first.RefreshToken)
		if r.status != http.StatusOK {
			t.Fatalf("refresh: %d %s", r.status, r.body)
		}
		var second tokenPair
		r.json(t, &second)
		if second.RefreshToken == first.RefreshToken || second.AccessToken == "" {
			t.Fatal("refresh did not rotate the token")
		}
		if r := tb.do(t, "GET", "/v1/me", second.AccessToken, nil); r.status != http.StatusOK {
			t.Fatalf("new access token: %d", r.status)
		}

		// Replaying the used token is treated as theft: the whole family ends.
		if r := refresh(first.RefreshToken); r.status != http.StatusUnauthorized {
			t.Fatalf("replayed refresh token: %d %s", r.status, r.body)
		}
		if r := refresh(second.RefreshToken); r.status != http.StatusUnauthorized {
			t.Fatalf("the family's newest refresh token still works after a replay: %d", r.status)
		}
		if r := tb.do(t, "GET", "/v1/me", second.AccessToken, nil); r.status != http.StatusUnauthorized {
			t.Fatalf("the family's access token still works after a replay: %d", r.status)
		}
		// Other sessions of the same login are not affected.
		other := tb.signIn(t, "owner@a.test")
		if r := tb.do(t, "GET", "/v1/me", other.AccessToken, nil); r.status != http.StatusOK {
			t.Fatalf("a separate session was ended too: %d", r.status)
		}
		if r := refresh("psr_unknown"); r.status != http.StatusUnauthorized {
			t.Fatalf("unknown refresh token: %d", r.status)
		}
	})
}

func TestLogout_EndsAccessAndRefreshTokens(t *testing.T) {
	forEachBackend(t, func(t *testing.T, tb *testBundle) {
		tp := tb.signIn(t, "owner@a.test")
		if r := tb.do(t, "POST", "/v1/auth/logout", tp.AccessToken, nil); r.status != http.StatusNoContent {
			t.Fatalf("logout: %d %s", r.status, r.body)
		}
		if r := tb.do(t, "GET", "/v1/me", tp.AccessToken, nil); r.status != http.StatusUnauthorized {
			t.Fatalf("access token after logout: %d", r.status)
		}
		if r := tb.do(t, "POST", "/v1/auth/refresh", "", map[string]string{"refresh_token": tp.RefreshToken}); r.status != http.StatusUnauthorized {
			t.Fatalf("refresh token after logout: %d", r.status)
		}
	})
}

// TestExpiredAccessToken_Answers401TokenExpired_AndRefreshWorks follows an
// app whose access token ran out: the 401 says token_expired, the app
// refreshes, and the new token works.
func TestExpiredAccessToken_Answers401TokenExpired_AndRefreshWorks(t *testing.T) {
	forEachBackend(t, func(t *testing.T, tb *testBundle) {
		// A sign-in an hour ago, by a service sharing the node's key and
		// database: its 15-minute access token has expired.
		past, err := auth.NewService(tb.store, auth.Config{
			SigningKey: []byte(testSigningKey),
			BcryptCost: 4,
			Now:        func() time.Time { return time.Now().Add(-time.Hour) },
			Mailer:     noMail{},
		})
		if err != nil {
			t.Fatal(err)
		}
		old, err := past.Login(context.Background(), "member@a.test", testPassword, "127.0.0.1")
		if err != nil {
			t.Fatal(err)
		}

		r := tb.do(t, "GET", "/v1/me", old.AccessToken, nil)
		if r.status != http.StatusUnauthorized {
			t.Fatalf("expired token: %d %s", r.status, r.body)
		}
		if p := r.problem(t); p.Code != "token_expired" || p.Title != "Token expired" || p.Status != 401 {
			t.Fatalf("expired token: problem %+v", p)
		}
		if h := r.header.Get("WWW-Authenticate"); !strings.Contains(h, `error="invalid_token"`) {
			t.Errorf("expired token: WWW-Authenticate %q", h)
		}

		r = tb.do(t, "POST", "/v1/auth/refresh", "", map[string]string{"refresh_token": old.RefreshToken})
		if r.status != http.StatusOK {
			t.Fatalf("refresh after token_expired: %d %s", r.status, r.body)
		}
		var fresh tokenPair
		r.json(t, &fresh)
		if r := tb.do(t, "GET", "/v1/me", fresh.AccessToken, nil); r.status != http.StatusOK {
			t.Fatalf("the refreshed token: %d %s", r.status, r.body)
		}
	})
}

// noMail is the mailer of a service that only signs in and so never mails.
type noMail struct{}

func (noMail) Enqueue(context.Context, mail.Message) error {
	return errors.New("this test's sign-in service sends no mail")
}
