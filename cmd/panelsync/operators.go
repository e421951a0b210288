package main

import (
	"context"
	"flag"
	"fmt"
	"strings"

	"github.com/panelsync/panelsync/app"
	"github.com/panelsync/panelsync/auth"
	"github.com/panelsync/panelsync/models"
)

// runAccount is the operator's `panelsync account create`: a new customer
// account and the invitation of its first owner.
func runAccount(ctx context.Context, env cmdEnv, args []string) error {
	var name, ownerEmail, ownerName string
	cfg, err := parseCreate("account", "--name NAME --owner-email EMAIL", env, args, func(fs *flag.FlagSet) {
		fs.StringVar(&name, "name", "", "name of the new account (required)")
		fs.StringVar(&ownerEmail, "owner-email", "", "e-mail of the account's first owner, who is invited (required)")
		fs.StringVar(&ownerName, "owner-name", "", "name of the first owner (default: the part of the e-mail before @)")
	})
	if err != nil {
		return err
	}
	if name == "" || ownerEmail == "" {
		return fmt.Errorf("--name and --owner-email are required")
	}
	accountName, err := auth.CheckAccountName(name)
	if err != nil {
		return fmt.Errorf("--name: %s", models.ErrorMessage(err))
	}
	return withNode(ctx, env, cfg, func(a *app.App) error {
		var (
			acct   models.Account
			issued auth.Issued
		)
		err := a.Store().Tx(ctx, func(ctx context.Context) error {
			var err error
			if acct, err = a.Store().CreateAccount(ctx, accountName); err != nil {
				return err
			}
			issued, err = a.Auth().OperatorInvite(ctx, acct, auth.Invitation{
				Email: ownerEmail, Name: defaultName(ownerName, ownerEmail), Role: models.RoleOwner,
			})
			return err
		})
		if err != nil {
			return operatorError(err)
		}
		fmt.Fprintf(env.stdout, "created account %q (%s)\n  owner:      %s (invited)\n  invitation: %s\n", acct.Name, acct.ID, issued.Login.Email, issued.Link)
		fmt.Fprintf(env.stdout, "The link works once, for 72 hours; it is also mailed by the running server.\n")
		return nil
	})
}

// runSupport is the operator's `panelsync support create`: a support login
// in the staff account, who sees a customer's account only through a
// staff grant that account's admin gives.
func runSupport(ctx context.Context, env cmdEnv, args []string) error {
	var email, name string
	cfg, err := parseCreate("support", "--email EMAIL --name NAME", env, args, func(fs *flag.FlagSet) {
		fs.StringVar(&email, "email", "", "e-mail of the support person, who is invited (required)")
		fs.StringVar(&name, "name", "", "name of the support person (required)")
	})
	if err != nil {
		return err
	}
	if email == "" || name == "" {
		return fmt.Errorf("--email and --name are required")
	}
	return withNode(ctx, env, cfg, func(a *app.App) error {
		var issued auth.Issued
		err := a.Store().Tx(ctx, func(ctx context.Context) error {
			acct, err := a.Store().StaffAccount(ctx)
			if err != nil {
				return err
			}
			issued, err = a.Auth().OperatorInvite(ctx, acct, auth.Invitation{Email: email, Name: name, Role: models.RoleSupport})
			return err
		})
		if err != nil {
			return operatorError(err)
		}
		fmt.Fprintf(env.stdout, "created support login %s (%s)\n  invitation: %s\n", issued.Login.Email, issued.Login.ID, issued.Link)
		fmt.Fprintf(env.stdout, "The link works once, for 72 hours; it is also mailed by the running server.\nA customer's owner or admin gives access with POST /v1/staff-grants {\"email\":%q}.\n", issued.Login.Email)
		return nil
	})
}

// parseCreate parses `panelsync NAME create [flags]`: the word create
// comes first, since flag parsing stops at the first word that is not a
// flag, and the settings and the command's own flags follow.
func parseCreate(name, synopsis string, env cmdEnv, args []string, flags func(fs *flag.FlagSet)) (app.Config, error) {
	sub := ""
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		sub, args = args[0], args[1:]
	}
	cfg, fs, err := parseConfig(name, env, args, func(fs *flag.FlagSet) {
		flags(fs)
		fs.Usage = func() {
			fmt.Fprintf(fs.Output(), "Usage: panelsync %s create %s [flags]\n", name, synopsis)
			fs.PrintDefaults()
		}
	})
	if err != nil {
		return cfg, err
	}
	if sub != "create" || fs.NArg() > 0 {
		fs.Usage()
		return cfg, errUsage
	}
	return cfg, nil
}

// withNode builds a node on the configured database (migrating it as
// serve would) without serving, runs fn, and closes the node.
func withNode(ctx context.Context, env cmdEnv, cfg app.Config, fn func(a *app.App) error) error {
	a, err := app.New(ctx, cfg, app.NewLogger(env.stderr, cfg))
	if err != nil {
		return err
	}
	defer a.Close()
	return fn(a)
}

// operatorError turns a domain error into the message an operator reads.
func operatorError(err error) error {
	if models.ErrorCode(err) == models.CodeInternal {
		return err
	}
	return fmt.Errorf("%s", models.ErrorMessage(err))
}

// defaultName is the given name, or the part of the e-mail before @.
func defaultName(name, email string) string {
	if strings.TrimSpace(name) != "" {
		return name
	}
	local, _, _ := strings.Cut(strings.TrimSpace(email), "@")
	return local
}
