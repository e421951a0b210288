package main

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/panelsync/panelsync/app"
	"github.com/panelsync/panelsync/models"
)

// operatorEnv is the environment of an operator's command on an embedded
// database in dir.
func operatorEnv(dir string) func(string) string {
	env := map[string]string{
		"PANELSYNC_DATA_DIR":    dir,
		"PANELSYNC_BCRYPT_COST": "4",
		"PANELSYNC_LOG_LEVEL":   "error",
		"PANELSYNC_PUBLIC_URL":  "https://console.example.com",
	}
	return func(k string) string { return env[k] }
}

func runOperator(t *testing.T, dir string, args ...string) (int, string, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code := run(context.Background(), args, &out, &errOut, operatorEnv(dir))
	return code, out.String(), errOut.String()
}

var invitationLink = regexp.MustCompile(`https://console\.example\.com/accept-invitation#token=(psi_[A-Za-z0-9_-]+)`)

func TestAccountCreate_PrintsAnInvitationTheOwnerAccepts(t *testing.T) {
	dir := t.TempDir()
	code, out, errOut := runOperator(t, dir, "account", "create", "--name", "Harbour Security", "--owner-email", "ops@harbour.example")
	if code != 0 {
		t.Fatalf("account create exited %d: %s", code, errOut)
	}
	m := invitationLink.FindStringSubmatch(out)
	if m == nil || !strings.Contains(out, `created account "Harbour Security"`) || !strings.Contains(out, "ops@harbour.example (invited)") {
		t.Fatalf("account create printed:\n%s", out)
	}

	// The printed link's token makes the owner's password on a node of the
	// same database.
	cfg := app.DefaultConfig()
	cfg.DataDir = dir
	cfg.BcryptCost = 4
	cfg.LogLevel = "error"
	node, err := app.New(context.Background(), cfg, app.NewLogger(&bytes.Buffer{}, cfg))
	if err != nil {
		t.Fatal(err)
	}
	defer node.Close()
	req := httptest.NewRequest("POST", "/v1/auth/invitations/accept",
		strings.NewReader(`{"token":"`+m[1]+`","password":"harbour owner pass phrase"}`))
	req.Header.Set("Content-Type", "application/json")
	resp, err := node.HTTP().Test(req, int((10 * time.Second).Milliseconds()))
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("accept the printed invitation: %v %v", resp.StatusCode, err)
	}
	l, err := node.Store().LoginByEmail(context.Background(), "ops@harbour.example")
	if err != nil || l.Role != models.RoleOwner || l.State() != models.LoginActive {
		t.Fatalf("owner after accepting: %+v %v", l, err)
	}
	acct, err := node.Store().Account(context.Background(), l.AccountID)
	if err != nil || acct.Name != "Harbour Security" || acct.Kind != models.AccountCustomer {
		t.Fatalf("account %+v %v", acct, err)
	}
}

func TestSupportCreate_MakesAStaffLogin_AndRefusesBadInput(t *testing.T) {
	dir := t.TempDir()
	code, out, errOut := runOperator(t, dir, "support", "create", "--email", "ana@support.example", "--name", "Ana Ruiz")
	if code != 0 || invitationLink.FindString(out) == "" {
		t.Fatalf("support create exited %d:\n%s\n%s", code, out, errOut)
	}
	code, out, errOut = runOperator(t, dir, "support", "create", "--email", "bo@support.example", "--name", "Bo")
	if code != 0 {
		t.Fatalf("second support login: %d %s", code, errOut)
	}
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"support", "create", "--email", "ana@support.example", "--name", "Ana again"}, "already exists"},
		{[]string{"support", "create", "--email", "not-an-address", "--name", "X"}, "email"},
		{[]string{"support", "create", "--email", "x@support.example"}, "--email and --name are required"},
		{[]string{"account", "create", "--name", "Bad\x07Name", "--owner-email", "a@b.example"}, "control characters"},
		{[]string{"account", "create", "--name", "No Owner"}, "--name and --owner-email are required"},
	}
	for _, tc := range cases {
		code, _, errOut := runOperator(t, dir, tc.args...)
		if code == 0 || !strings.Contains(errOut, tc.want) {
			t.Errorf("%v: exit %d, stderr %q, want it to say %q", tc.args, code, errOut, tc.want)
		}
	}
	if code, _, _ := runOperator(t, dir, "support", "remove"); code != 2 {
		t.Errorf("unknown subcommand exited %d, want 2", code)
	}

	cfg := app.DefaultConfig()
	cfg.DataDir = dir
	cfg.LogLevel = "error"
	node, err := app.New(context.Background(), cfg, app.NewLogger(&bytes.Buffer{}, cfg))
	if err != nil {
		t.Fatal(err)
	}
	defer node.Close()
	ana, err := node.Store().LoginByEmailAnyState(context.Background(), "ana@support.example")
	bo, err2 := node.Store().LoginByEmailAnyState(context.Background(), "bo@support.example")
	if err != nil || err2 != nil || ana.Role != models.RoleSupport || ana.State() != models.LoginInvited || ana.AccountID != bo.AccountID {
		t.Fatalf("support logins %+v %+v (%v, %v): want both invited support in one staff account", ana, bo, err, err2)
	}
	staff, err := node.Store().Account(context.Background(), ana.AccountID)
	if err != nil || staff.Kind != models.AccountStaff {
		t.Fatalf("support logins' account %+v %v", staff, err)
	}
}
