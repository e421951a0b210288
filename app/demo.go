package app

import (
	"context"
	"fmt"

	"github.com/panelsync/panelsync/auth"
	"github.com/panelsync/panelsync/models"
	"github.com/panelsync/panelsync/panel/sim"
)

// DemoEmail is the demo owner's login.
const DemoEmail = "demo@panelsync.local"

// DemoSeed is what SeedDemo leaves in place.
type DemoSeed struct {
	AccountID string
	Email     string
	// Password is the demo owner's password as set by this seeding.
	Password string
	// Created counts the locations added now; the rest already existed.
	Created   int
	Locations []models.LocationView
	// Panels are the demo panels' credentials, freshly issued.
	Panels []sim.Credentials
}

// SeedDemo creates the demo account, its owner and n locations, or tops up
// what an earlier run left: running it again adds nothing twice. The
// owner's password is set to password, or to a fresh random one when
// password is empty, since the stored hash cannot be shown again.
func SeedDemo(ctx context.Context, store *models.Store, authSvc *auth.Service, n int, password string) (DemoSeed, error) {
	if password == "" {
		password = auth.GeneratePassword()
	}
	seed := DemoSeed{Email: DemoEmail, Password: password}
	// Demo locations are spread over a few groups so that group views have
	// something to show.
	groups := []string{"Headquarters", "Retail", "Warehouses"}
	err := store.Tx(ctx, func(ctx context.Context) error {
		login, err := store.LoginByEmail(ctx, DemoEmail)
		switch models.ErrorCode(err) {
		case "":
			if err := authSvc.SetPassword(ctx, login.ID, password); err != nil {
				return err
			}
		case models.CodeNotFound:
			acct, err := store.CreateAccount(ctx, "Demo Security Co.")
			if err != nil {
				return err
			}
			login, err = authSvc.CreateLogin(ctx, acct.ID, DemoEmail, "Demo Owner", models.RoleOwner, password)
			if err != nil {
				return err
			}
		default:
			return err
		}
		seed.AccountID = login.AccountID
		actor := models.SystemActor(login.AccountID, "demo seed")
		for i := 1; i <= n; i++ {
			serial := fmt.Sprintf("DEMO-%04d", i)
			if _, err := store.PanelBySerial(ctx, serial); err == nil {
				continue
			} else if models.ErrorCode(err) != models.CodeNotFound {
				return err
			}
			name := fmt.Sprintf("Demo Site %d", i)
			group := groups[(i-1)%len(groups)]
			_, secretDigest := auth.NewDeviceSecret()
			if _, err := store.CreateLocation(ctx, actor, models.NewLocation{
				Settings:    models.LocationSettings{Name: &name, Group: &group},
				PanelSerial: serial,
				SecretHash:  secretDigest,
			}); err != nil {
				return err
			}
			seed.Created++
		}
		return nil
	})
	if err != nil {
		return DemoSeed{}, fmt.Errorf("seed demo: %w", err)
	}
	for cursor := ""; ; {
		views, next, err := store.ListLocations(ctx, models.LocationQuery{AccountID: seed.AccountID, Cursor: cursor, Limit: models.MaxLocationPageSize})
		if err != nil {
			return DemoSeed{}, err
		}
		seed.Locations = append(seed.Locations, views...)
		if next == "" {
			break
		}
		cursor = next
	}
	panels, err := demoPanelCredentials(ctx, store, seed.AccountID, seed.Locations)
	if err != nil {
		return DemoSeed{}, fmt.Errorf("seed demo panels: %w", err)
	}
	seed.Panels = panels
	return seed, nil
}
