package app

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/panelsync/panelsync/auth"
	"github.com/panelsync/panelsync/models"
	"github.com/panelsync/panelsync/panel/sim"
)

// DemoEmail is the demo owner's login.
const DemoEmail = "demo@panelsync.local"

// DemoOptions says what SeedDemo leaves in place.
type DemoOptions struct {
	// Locations is how many demo locations there should be at least.
	Locations int
	// Password is the demo owner's password; empty draws a fresh one.
	Password string
	// Known are the device secrets an earlier run issued to the demo's
	// panels, as its credentials file keeps them. Each that still opens
	// its panel is kept, so that panels simulated outside the demo keep
	// linking across a restart.
	Known []sim.Credentials
}

// DemoSeed is what SeedDemo leaves in place.
type DemoSeed struct {
	AccountID string
	Email     string
	// Password is the demo owner's password as set by this seeding.
	Password string
	// Created counts the demo locations added now; the rest already
	// existed.
	Created int
	// Locations are all the account's locations, those added through the
	// API included.
	Locations []models.LocationView
	// Panels are the credentials of the demo's own panels, one per demo
	// location: the secrets kept from Known, or freshly issued.
	Panels []sim.Credentials
}

// isDemoSerial reports whether serial is one the demo gives its own
// panels (DEMO- and at least four digits). Only those panels are the
// demo's to simulate and to issue secrets to: a location someone added to
// the demo account keeps its credential.
func isDemoSerial(serial string) bool {
	digits, ok := strings.CutPrefix(serial, "DEMO-")
	if !ok || len(digits) < 4 {
		return false
	}
	return strings.Trim(digits, "0123456789") == ""
}

// SeedDemo creates the demo account, its owner and its locations, or tops
// up what an earlier run left: running it again adds nothing twice. The
// owner's password is set as opts says, since the stored hash cannot be
// shown again.
func SeedDemo(ctx context.Context, store *models.Store, authSvc *auth.Service, opts DemoOptions) (DemoSeed, error) {
	password, n := opts.Password, opts.Locations
	if password == "" {
		password = auth.GeneratePassword()
	}
	seed := DemoSeed{Email: DemoEmail, Password: password}
	// Demo locations are spread over a few groups so that group views have
	// something to show.
	groups := []string{"Headquarters", "Retail", "Warehouses"}
	err := store.Tx(ctx, func(ctx context.Context) error {
		seed.Created = 0
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
	var own []models.LocationView
	for _, v := range seed.Locations {
		if isDemoSerial(v.Panel.Serial) {
			own = append(own, v)
		}
	}
	panels, err := demoPanelCredentials(ctx, store, seed.AccountID, own, opts.Known)
	if err != nil {
		return DemoSeed{}, fmt.Errorf("seed demo panels: %w", err)
	}
	seed.Panels = panels
	return seed, nil
}

// demoPanelCredentials returns the credentials of the demo's own panels:
// the secret known for a panel when it still opens it, and otherwise a
// fresh one, issued now (stored secrets are digests that cannot be shown
// again). A panel linked with a kept secret stays linked.
func demoPanelCredentials(ctx context.Context, store *models.Store, accountID string, views []models.LocationView, known []sim.Credentials) ([]sim.Credentials, error) {
	secrets := make(map[string]string, len(known))
	for _, c := range known {
		secrets[c.Serial] = c.Secret
	}
	actor := models.SystemActor(accountID, "demo seed")
	now := time.Now().UTC()
	creds := make([]sim.Credentials, 0, len(views))
	err := store.Tx(ctx, func(ctx context.Context) error {
		creds = creds[:0]
		for _, v := range views {
			secret, ok := secrets[v.Panel.Serial]
			usable := v.Panel.CredentialRevokedAt == nil && (v.Panel.CredentialExpiresAt == nil || now.Before(*v.Panel.CredentialExpiresAt))
			if !ok || !usable || !auth.DeviceSecretMatches(secret, v.Panel.SecretHash) {
				var digest string
				secret, digest = auth.NewDeviceSecret()
				if _, err := store.RotatePanelCredential(ctx, actor, v.Location.ID, digest, nil); err != nil {
					return err
				}
			}
			creds = append(creds, sim.Credentials{Serial: v.Panel.Serial, Secret: secret, LocationID: v.Location.ID, Name: v.Location.Name})
		}
		return nil
	})
	return creds, err
}
