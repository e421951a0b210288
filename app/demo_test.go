package app_test

import (
	"context"
	"log/slog"
	"slices"
	"testing"

	"github.com/panelsync/panelsync/app"
	"github.com/panelsync/panelsync/auth"
	"github.com/panelsync/panelsync/models"
	"github.com/panelsync/panelsync/models/dbtest"
)

// demoNode builds a node, not serving, on the backend, closed when the
// test ends.
func demoNode(t *testing.T, b dbtest.Backend) *app.App {
	t.Helper()
	cfg := app.DefaultConfig()
	cfg.Addr, cfg.DataDir, cfg.DatabaseURL, cfg.BcryptCost = "127.0.0.1:0", t.TempDir(), b.Config.MySQLDSN, 4
	a, err := app.New(context.Background(), cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	return a
}

func TestSeedDemo_RunTwice_AddsNothingTwiceAndResetsThePassword(t *testing.T) {
	for _, b := range dbtest.Backends(t) {
		t.Run(b.Name, func(t *testing.T) {
			ctx := context.Background()
			a := demoNode(t, b)

			first, err := app.SeedDemo(ctx, a.Store(), a.Auth(), app.DemoOptions{Locations: 3})
			if err != nil {
				t.Fatal(err)
			}
			if first.Created != 3 || len(first.Locations) != 3 || len(first.Password) < 16 {
				t.Fatalf("first seed: %d created, %d locations, password length %d", first.Created, len(first.Locations), len(first.Password))
			}
			second, err := app.SeedDemo(ctx, a.Store(), a.Auth(), app.DemoOptions{Locations: 4, Password: "chosen-password-123"})
			if err != nil {
				t.Fatal(err)
			}
			if second.AccountID != first.AccountID || second.Created != 1 || len(second.Locations) != 4 {
				t.Fatalf("second seed: account %s vs %s, %d created, %d locations", second.AccountID, first.AccountID, second.Created, len(second.Locations))
			}
			if _, err := a.Auth().Login(ctx, app.DemoEmail, first.Password, "127.0.0.1"); models.ErrorCode(err) != models.CodeInvalidCredentials {
				t.Fatalf("old password still works: %v", err)
			}
			if _, err := a.Auth().Login(ctx, app.DemoEmail, "chosen-password-123", "127.0.0.1"); err != nil {
				t.Fatalf("chosen password: %v", err)
			}
		})
	}
}

func TestSeedDemo_Restart_KeepsWorkingSecretsAndNeverTouchesALocationItDidNotCreate(t *testing.T) {
	for _, b := range dbtest.Backends(t) {
		t.Run(b.Name, func(t *testing.T) {
			ctx := context.Background()
			a := demoNode(t, b)

			first, err := app.SeedDemo(ctx, a.Store(), a.Auth(), app.DemoOptions{Locations: 2})
			if err != nil {
				t.Fatal(err)
			}
			// Someone adds a location of their own, with their own panel.
			name := "Harbour Office"
			theirSecret, digest := auth.NewDeviceSecret()
			added, err := a.Store().CreateLocation(ctx, models.SystemActor(first.AccountID, "test"), models.NewLocation{
				Settings: models.LocationSettings{Name: &name}, PanelSerial: "PNL-20001", SecretHash: digest,
			})
			if err != nil {
				t.Fatal(err)
			}

			// A restart that knows the secrets it issued, one of them no
			// longer right (as after a rotation through the API).
			known := slices.Clone(first.Panels)
			stale := known[1]
			known[1].Secret, _ = auth.NewDeviceSecret()
			second, err := app.SeedDemo(ctx, a.Store(), a.Auth(), app.DemoOptions{Locations: 2, Known: known})
			if err != nil {
				t.Fatal(err)
			}
			if len(second.Locations) != 3 || len(second.Panels) != 2 {
				t.Fatalf("restart: %d locations, %d demo panels; want 3 locations, the demo's 2 panels", len(second.Locations), len(second.Panels))
			}
			for _, c := range second.Panels {
				if c.Serial == "PNL-20001" {
					t.Fatalf("the demo took over the added location's panel: %s", c)
				}
			}
			if second.Panels[0].Secret != first.Panels[0].Secret {
				t.Fatalf("a secret that still works was replaced on restart")
			}
			if second.Panels[1].Secret == stale.Secret || second.Panels[1].Secret == known[1].Secret {
				t.Fatalf("a secret that no longer works was not replaced")
			}
			if _, err := a.Link().Authenticate(ctx, second.Panels[1].Serial, second.Panels[1].Secret); err != nil {
				t.Fatalf("the fresh secret does not open its panel: %v", err)
			}
			if _, err := a.Link().Authenticate(ctx, first.Panels[0].Serial, first.Panels[0].Secret); err != nil {
				t.Fatalf("the kept secret no longer opens its panel: %v", err)
			}
			if _, err := a.Link().Authenticate(ctx, "PNL-20001", theirSecret); err != nil {
				t.Fatalf("the added location's own secret stopped working after a demo restart: %v", err)
			}
			after, err := a.Store().PanelBySerial(ctx, "PNL-20001")
			if err != nil || after.SecretHash != added.Panel.SecretHash {
				t.Fatalf("the added location's credential changed: %v", err)
			}
		})
	}
}

func TestConfig_GeneratedSigningKey_SurvivesARestart(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	cfg := app.DefaultConfig()
	cfg.Addr, cfg.DataDir, cfg.BcryptCost = "127.0.0.1:0", dir, 4
	start := func() *app.App {
		a, err := app.New(ctx, cfg, slog.New(slog.DiscardHandler))
		if err != nil {
			t.Fatal(err)
		}
		return a
	}
	a := start()
	seed, err := app.SeedDemo(ctx, a.Store(), a.Auth(), app.DemoOptions{Locations: 1})
	if err != nil {
		t.Fatal(err)
	}
	tokens, err := a.Auth().Login(ctx, app.DemoEmail, seed.Password, "127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	a.Close()

	b := start()
	defer b.Close()
	if _, err := b.Auth().Authenticate(ctx, tokens.AccessToken); err != nil {
		t.Fatalf("a token issued before the restart is refused after it: %v", err)
	}
}
