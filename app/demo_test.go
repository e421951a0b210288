package app_test

import (
	"context"
	"log/slog"
	"testing"

	"github.com/panelsync/panelsync/app"
	"github.com/panelsync/panelsync/models"
	"github.com/panelsync/panelsync/models/dbtest"
)

func TestSeedDemo_RunTwice_AddsNothingTwiceAndResetsThePassword(t *testing.T) {
	for _, b := range dbtest.Backends(t) {
		t.Run(b.Name, func(t *testing.T) {
			ctx := context.Background()
			cfg := app.DefaultConfig()
			cfg.Addr, cfg.DataDir, cfg.DatabaseURL, cfg.BcryptCost = "127.0.0.1:0", t.TempDir(), b.Config.MySQLDSN, 4
			a, err := app.New(ctx, cfg, slog.New(slog.DiscardHandler))
			if err != nil {
				t.Fatal(err)
			}
			defer a.Close()

			first, err := app.SeedDemo(ctx, a.Store(), a.Auth(), 3, "")
			if err != nil {
				t.Fatal(err)
			}
			if first.Created != 3 || len(first.Locations) != 3 || len(first.Password) < 16 {
				t.Fatalf("first seed: %d created, %d locations, password length %d", first.Created, len(first.Locations), len(first.Password))
			}
			second, err := app.SeedDemo(ctx, a.Store(), a.Auth(), 4, "chosen-password-123")
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
	seed, err := app.SeedDemo(ctx, a.Store(), a.Auth(), 1, "")
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
