package app

import (
	"context"
	"fmt"

	"github.com/panelsync/panelsync/auth"
	"github.com/panelsync/panelsync/models"
	"github.com/panelsync/panelsync/panel/sim"
)

// SeedOptions says what SeedAccount creates.
type SeedOptions struct {
	AccountName   string
	OwnerEmail    string
	Locations     int
	UsersPerPanel int
	// Server is written into the credentials file for panelsim.
	Server string
}

// SeedResult is what SeedAccount created.
type SeedResult struct {
	AccountID string
	Email     string
	Password  string
	// Panels holds each panel's serial and device secret: what panelsim
	// needs to link them.
	Panels sim.CredentialsFile
}

// SeedAccount creates an account with an owner and n locations whose
// panels' secrets it returns, for load tests and benchmarks.
func SeedAccount(ctx context.Context, store *models.Store, authSvc *auth.Service, opts SeedOptions) (SeedResult, error) {
	res := SeedResult{Email: opts.OwnerEmail, Password: auth.GeneratePassword()}
	res.Panels = sim.CredentialsFile{Server: opts.Server, UsersPerPanel: opts.UsersPerPanel}
	err := store.Tx(ctx, func(ctx context.Context) error {
		res.Panels.Panels = nil
		acct, err := store.CreateAccount(ctx, opts.AccountName)
		if err != nil {
			return err
		}
		res.AccountID = acct.ID
		if _, err := authSvc.CreateLogin(ctx, acct.ID, opts.OwnerEmail, opts.AccountName+" Owner", models.RoleOwner, res.Password); err != nil {
			return err
		}
		actor := models.SystemActor(acct.ID, "seed")
		// The account id's tail keeps serials unique across seedings.
		prefix := "SEED-" + acct.ID[len(acct.ID)-8:]
		for i := 1; i <= opts.Locations; i++ {
			name := fmt.Sprintf("Site %05d", i)
			serial := fmt.Sprintf("%s-%05d", prefix, i)
			secret, digest := auth.NewDeviceSecret()
			v, err := store.CreateLocation(ctx, actor, models.NewLocation{
				Settings:    models.LocationSettings{Name: &name},
				PanelSerial: serial,
				SecretHash:  digest,
			})
			if err != nil {
				return err
			}
			res.Panels.Panels = append(res.Panels.Panels, sim.Credentials{Serial: serial, Secret: secret, LocationID: v.Location.ID, Name: name})
		}
		return nil
	})
	if err != nil {
		return SeedResult{}, fmt.Errorf("seed: %w", err)
	}
	return res, nil
}
