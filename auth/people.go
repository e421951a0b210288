package auth

import (
	"context"
	netmail "net/mail"
	"strings"
	"time"

	"github.com/panelsync/panelsync/mail"
	"github.com/panelsync/panelsync/models"
)

// Mailer queues a mail in the transaction carried by ctx, so the mail goes
// out exactly when the change that caused it commits, and sending never
// holds up the request.
type Mailer interface {
	Enqueue(ctx context.Context, m mail.Message) error
}

// Prefixes of the mailed single-use tokens.
const (
	invitationTokenPrefix = "psi_"
	resetTokenPrefix      = "psp_"
)

// resetMailInterval is the least time between two password-reset mails to
// one login: a reset form must not become a way to flood a mailbox.
const resetMailInterval = time.Minute

// Invitation is who to invite, and as what.
type Invitation struct {
	Email string
	Name  string
	Role  models.Role
}

// Issued is a login together with the link mailed to it.
type Issued struct {
	Login models.Login
	// Link is the single-use link the mail carries; operators' commands
	// print it, the API never returns it.
	Link string
}

// checkEmail validates and normalises an e-mail address typed by a person.
func checkEmail(field, email string) (string, error) {
	email = strings.TrimSpace(email)
	addr, err := netmail.ParseAddress(email)
	if err != nil || addr.Address != email || len(email) > 254 || strings.ContainsAny(email, "\r\n") {
		return "", models.FieldError(field, "%s must be an e-mail address such as name@example.com", field)
	}
	return models.NormalizeEmail(email), nil
}

// checkInvitableRole refuses the roles a customer's admin may not hand out.
// Support logins belong to the operator's staff, who create them with
// `panelsync support create`; only an owner makes another owner.
func checkInvitableRole(actor models.Actor, role models.Role) error {
	switch role {
	case models.RoleOwner:
		if actor.Role != models.RoleOwner {
			return models.Errorf(models.CodeForbidden, "only an owner can make another owner")
		}
	case models.RoleAdmin, models.RoleMember:
	case models.RoleSupport:
		return models.FieldError("role", "support logins are created by the operator (panelsync support create) and reach accounts through staff grants")
	default:
		return models.FieldError("role", "role must be owner, admin or member")
	}
	return nil
}

// Invite creates a login in the actor's account that signs in once its
// invitation is accepted, and mails the invitation.
func (s *Service) Invite(ctx context.Context, actor models.Actor, in Invitation) (Issued, error) {
	email, err := checkEmail("email", in.Email)
	if err != nil {
		return Issued{}, err
	}
	name, err := models.Label("name", in.Name, 200, true)
	if err != nil {
		return Issued{}, err
	}
	if err := checkInvitableRole(actor, in.Role); err != nil {
		return Issued{}, err
	}
	var out Issued
	err = s.store.Tx(ctx, func(ctx context.Context) error {
		acct, err := s.store.LockAccount(ctx, actor.AccountID)
		if err != nil {
			return err
		}
		now := s.now()
		login, err := s.store.CreateLogin(ctx, models.Login{
			AccountID: acct.ID, Email: email, Name: name, Role: in.Role, InvitedAt: &now,
		})
		if err != nil {
			return err
		}
		out.Login = login
		out.Link, err = s.sendInvitation(ctx, acct, login, actor.Name)
		if err != nil {
			return err
		}
		return s.store.Audit(ctx, actor, models.AuditChange{
			Action: "login.invite", Target: models.LoginTarget(login), After: loginAuditValues(login),
		})
	})
	return out, err
}

// ResendInvitation mails a fresh invitation to a login that has not
// accepted one yet; the earlier link stops working.
func (s *Service) ResendInvitation(ctx context.Context, actor models.Actor, loginID string) (Issued, error) {
	var out Issued
	err := s.store.Tx(ctx, func(ctx context.Context) error {
		acct, login, err := s.lockLogin(ctx, actor, loginID)
		if err != nil {
			return err
		}
		if login.State() != models.LoginInvited {
			return models.Errorf(models.CodeConflict, "%s is %s, not invited; only a pending invitation can be sent again", login.Email, login.State())
		}
		out.Login = login
		out.Link, err = s.sendInvitation(ctx, acct, login, actor.Name)
		if err != nil {
			return err
		}
		return s.store.Audit(ctx, actor, models.AuditChange{Action: "login.invite_resend", Target: models.LoginTarget(login)})
	})
	return out, err
}

// sendInvitation stores a new invitation token for login and queues its
// mail, in the transaction carried by ctx. It returns the link.
func (s *Service) sendInvitation(ctx context.Context, acct models.Account, login models.Login, inviter string) (string, error) {
	now := s.now()
	token := randomToken(invitationTokenPrefix, 32)
	err := s.store.CreateLoginToken(ctx, models.LoginToken{
		ID: models.NewID(), LoginID: login.ID, Purpose: models.TokenInvitation,
		TokenHash: digest(token), ExpiresAt: now.Add(s.cfg.InvitationTTL), CreatedAt: now,
	})
	if err != nil {
		return "", err
	}
	link := s.cfg.PublicURL + "/accept-invitation#token=" + token
	m := invitationMail(acct.Name, login, inviter, link, s.cfg.InvitationTTL)
	m.AccountID = acct.ID
	return link, s.cfg.Mailer.Enqueue(ctx, m)
}

// AcceptInvitation sets the invited login's password and signs it in.
func (s *Service) AcceptInvitation(ctx context.Context, token, password string) (Tokens, error) {
	if err := CheckPasswordRules(password); err != nil {
		return Tokens{}, models.FieldError("password", "%s", err.Error())
	}
	invalid := models.FieldError("token", "the invitation link is invalid, already used or expired; ask for a new one")
	if !strings.HasPrefix(token, invitationTokenPrefix) {
		return Tokens{}, invalid
	}
	hash, err := hashPassword(password, s.cfg.BcryptCost)
	if err != nil {
		return Tokens{}, err
	}
	now := s.now()
	var login models.Login
	err = s.store.Tx(ctx, func(ctx context.Context) error {
		var err error
		if login, err = s.redeem(ctx, token, models.TokenInvitation, models.LoginInvited, invalid, now); err != nil {
			return err
		}
		if err := s.store.UpdateLoginFields(ctx, login.ID, map[string]any{"password_hash": hash}); err != nil {
			return err
		}
		login.PasswordHash = hash
		return s.store.Audit(ctx, selfActor(login), models.AuditChange{
			Action: "login.invitation_accepted", Target: models.LoginTarget(login),
			Before: map[string]any{"state": models.LoginInvited}, After: map[string]any{"state": models.LoginActive},
		})
	})
	if err != nil {
		return Tokens{}, err
	}
	return s.startSession(ctx, login, now)
}

// redeem uses up a mailed token of purpose, in the transaction carried by
// ctx, and returns its login, which must be in state. A token that is
// unknown, used, expired or whose login has moved on answers invalid.
func (s *Service) redeem(ctx context.Context, token string, purpose models.TokenPurpose, state models.LoginState, invalid error, now time.Time) (models.Login, error) {
	tok, err := s.store.ConsumeLoginToken(ctx, digest(token), purpose, now)
	if models.ErrorCode(err) == models.CodeNotFound {
		return models.Login{}, invalid
	}
	if err != nil {
		return models.Login{}, err
	}
	login, err := s.store.LoginByID(ctx, tok.LoginID)
	if err != nil {
		return models.Login{}, err
	}
	if login.State() != state {
		return models.Login{}, invalid
	}
	return login, nil
}

// RequestPasswordReset mails a reset link to the active login with that
// e-mail. It answers the same whether or not there is one, so the form
// does not tell which e-mails have logins.
func (s *Service) RequestPasswordReset(ctx context.Context, email string) error {
	email, err := checkEmail("email", email)
	if err != nil {
		return err
	}
	now := s.now()
	return s.store.Tx(ctx, func(ctx context.Context) error {
		login, err := s.store.LoginByEmailAnyState(ctx, email)
		if models.ErrorCode(err) == models.CodeNotFound {
			return nil
		}
		if err != nil {
			return err
		}
		if login.State() != models.LoginActive {
			return nil
		}
		recent, err := s.store.RecentLoginToken(ctx, login.ID, models.TokenPasswordReset, now.Add(-resetMailInterval))
		if err != nil || recent {
			return err
		}
		token := randomToken(resetTokenPrefix, 32)
		err = s.store.CreateLoginToken(ctx, models.LoginToken{
			ID: models.NewID(), LoginID: login.ID, Purpose: models.TokenPasswordReset,
			TokenHash: digest(token), ExpiresAt: now.Add(s.cfg.ResetTTL), CreatedAt: now,
		})
		if err != nil {
			return err
		}
		m := resetMail(login, s.cfg.PublicURL+"/reset-password#token="+token, s.cfg.ResetTTL)
		m.AccountID = login.AccountID
		return s.cfg.Mailer.Enqueue(ctx, m)
	})
}

// ResetPassword sets a new password with a mailed reset token. Every
// session of the login ends, since whoever held one may be who the reset
// is locking out.
func (s *Service) ResetPassword(ctx context.Context, token, password string) error {
	if err := CheckPasswordRules(password); err != nil {
		return models.FieldError("new_password", "%s", err.Error())
	}
	invalid := models.FieldError("token", "the reset link is invalid, already used or expired; ask for a new one")
	if !strings.HasPrefix(token, resetTokenPrefix) {
		return invalid
	}
	hash, err := hashPassword(password, s.cfg.BcryptCost)
	if err != nil {
		return err
	}
	now := s.now()
	var login models.Login
	err = s.store.Tx(ctx, func(ctx context.Context) error {
		var err error
		if login, err = s.redeem(ctx, token, models.TokenPasswordReset, models.LoginActive, invalid, now); err != nil {
			return err
		}
		_, err = s.replacePassword(ctx, login, hash, passwordChange{action: "login.password_reset", expire: ""}, now)
		return err
	})
	if err != nil {
		return err
	}
	s.loginEnded(login.ID)
	return nil
}

// ChangePassword replaces the signed-in login's password after checking
// the current one. Every other session of the login ends; the one that
// asked stays signed in. Wrong current passwords are throttled as sign-in
// attempts are, so a stolen session cannot be used to guess the password.
func (s *Service) ChangePassword(ctx context.Context, p Principal, clientIP, current, next string) error {
	if p.IsAPIKey() {
		return models.Errorf(models.CodeForbidden, "an API key has no password; sign in as a person to change one")
	}
	if err := CheckPasswordRules(next); err != nil {
		return models.FieldError("new_password", "%s", err.Error())
	}
	login, err := s.store.LoginByID(ctx, p.LoginID)
	if err != nil {
		return err
	}
	attempt, wait := s.throttle.admit(login.Email, clientIP, s.now())
	if wait > 0 {
		return &models.Error{Code: models.CodeRateLimited, Message: "too many wrong passwords; try again later", RetryAfter: wait}
	}
	if !PasswordMatches(login.PasswordHash, current) {
		s.throttle.settle(attempt, s.now(), attemptFailed)
		return models.FieldError("current_password", "the current password is wrong")
	}
	s.throttle.settle(attempt, s.now(), attemptSucceeded)
	if current == next {
		return models.FieldError("new_password", "the new password must differ from the current one")
	}
	hash, err := hashPassword(next, s.cfg.BcryptCost)
	if err != nil {
		return err
	}
	now := s.now()
	var ended []string
	err = s.store.Tx(ctx, func(ctx context.Context) error {
		ended, err = s.replacePassword(ctx, login, hash, passwordChange{
			action: "login.password_change", keepSession: p.SessionID, expire: models.TokenPasswordReset,
		}, now)
		return err
	})
	if err != nil {
		return err
	}
	for _, id := range ended {
		s.sessionEnded(id)
	}
	return nil
}

// passwordChange says how a new password is put in place: the audit
// action, the session that stays signed in (none after a reset), and the
// mailed tokens that stop working ("" for every kind).
type passwordChange struct {
	action      string
	keepSession string
	expire      models.TokenPurpose
}

// replacePassword stores a login's new password hash in the transaction
// carried by ctx, ends its other sessions, expires its mailed tokens,
// audits the change in the login's own account (even when support staff
// act on a customer's account) and mails the login a notice. It returns
// the sessions it ended.
func (s *Service) replacePassword(ctx context.Context, login models.Login, hash string, ch passwordChange, now time.Time) ([]string, error) {
	if err := s.store.UpdateLoginFields(ctx, login.ID, map[string]any{"password_hash": hash}); err != nil {
		return nil, err
	}
	reason := strings.TrimPrefix(ch.action, "login.")
	ended, err := s.store.RevokeLoginSessions(ctx, login.ID, ch.keepSession, reason, now)
	if err != nil {
		return nil, err
	}
	if err := s.store.ExpireLoginTokens(ctx, login.ID, ch.expire, now); err != nil {
		return nil, err
	}
	if err := s.store.Audit(ctx, selfActor(login), models.AuditChange{Action: ch.action, Target: models.LoginTarget(login)}); err != nil {
		return nil, err
	}
	m := passwordChangedMail(login)
	m.AccountID = login.AccountID
	return ended, s.cfg.Mailer.Enqueue(ctx, m)
}

// LoginChange is a change to a login's name or role; nil leaves it.
type LoginChange struct {
	Name *string
	Role *models.Role
}

// UpdateLogin renames a login or changes its role. The account keeps at
// least one active owner, and only an owner touches an owner.
func (s *Service) UpdateLogin(ctx context.Context, actor models.Actor, id string, ch LoginChange) (models.Login, error) {
	if ch.Name == nil && ch.Role == nil {
		return models.Login{}, models.Errorf(models.CodeInvalidRequest, "nothing to update: send name or role")
	}
	fields := map[string]any{}
	if ch.Name != nil {
		name, err := models.Label("name", *ch.Name, 200, true)
		if err != nil {
			return models.Login{}, err
		}
		fields["name"] = name
	}
	if ch.Role != nil {
		if err := checkInvitableRole(actor, *ch.Role); err != nil {
			return models.Login{}, err
		}
		fields["role"] = *ch.Role
	}
	var out models.Login
	err := s.store.Tx(ctx, func(ctx context.Context) error {
		_, login, err := s.lockLogin(ctx, actor, id)
		if err != nil {
			return err
		}
		if ch.Role != nil && login.Role == models.RoleOwner && *ch.Role != models.RoleOwner && login.State() == models.LoginActive {
			if err := s.checkNotLastOwner(ctx, login, "demoted"); err != nil {
				return err
			}
		}
		before := loginAuditValues(login)
		if err := s.store.UpdateLoginFields(ctx, login.ID, fields); err != nil {
			return err
		}
		if ch.Name != nil {
			login.Name = fields["name"].(string)
		}
		if ch.Role != nil {
			login.Role = *ch.Role
		}
		out = login
		return s.store.Audit(ctx, actor, models.AuditChange{
			Action: "login.update", Target: models.LoginTarget(login), Before: before, After: loginAuditValues(login),
		})
	})
	return out, err
}

// Deactivate stops a login from signing in: its sessions, refresh tokens,
// mailed links and live connections end at once. The login stays, so the
// audit log can still name it.
func (s *Service) Deactivate(ctx context.Context, actor models.Actor, id string) (models.Login, error) {
	var out models.Login
	changed := false
	err := s.store.Tx(ctx, func(ctx context.Context) error {
		out, changed = models.Login{}, false
		_, login, err := s.lockLogin(ctx, actor, id)
		if err != nil {
			return err
		}
		if login.State() == models.LoginDeactivated {
			out = login
			return nil
		}
		if login.Role == models.RoleOwner && login.State() == models.LoginActive {
			if err := s.checkNotLastOwner(ctx, login, "deactivated"); err != nil {
				return err
			}
		}
		now := s.now()
		before := loginAuditValues(login)
		if err := s.store.UpdateLoginFields(ctx, login.ID, map[string]any{"disabled_at": now}); err != nil {
			return err
		}
		if _, err := s.store.RevokeLoginSessions(ctx, login.ID, "", "deactivated", now); err != nil {
			return err
		}
		if err := s.store.ExpireLoginTokens(ctx, login.ID, "", now); err != nil {
			return err
		}
		login.DisabledAt = &now
		out, changed = login, true
		return s.store.Audit(ctx, actor, models.AuditChange{
			Action: "login.deactivate", Target: models.LoginTarget(login), Before: before, After: loginAuditValues(login),
		})
	})
	if err != nil {
		return models.Login{}, err
	}
	if changed {
		s.loginEnded(out.ID)
	}
	return out, nil
}

// Reactivate lets a deactivated login sign in again with its old
// password; one that never accepted its invitation is invited again.
func (s *Service) Reactivate(ctx context.Context, actor models.Actor, id string) (models.Login, error) {
	var out models.Login
	err := s.store.Tx(ctx, func(ctx context.Context) error {
		acct, login, err := s.lockLogin(ctx, actor, id)
		if err != nil {
			return err
		}
		if login.State() != models.LoginDeactivated {
			out = login
			return nil
		}
		before := loginAuditValues(login)
		if err := s.store.UpdateLoginFields(ctx, login.ID, map[string]any{"disabled_at": nil}); err != nil {
			return err
		}
		login.DisabledAt = nil
		if login.State() == models.LoginInvited {
			if _, err := s.sendInvitation(ctx, acct, login, actor.Name); err != nil {
				return err
			}
		}
		out = login
		return s.store.Audit(ctx, actor, models.AuditChange{
			Action: "login.reactivate", Target: models.LoginTarget(login), Before: before, After: loginAuditValues(login),
		})
	})
	return out, err
}

// lockLogin takes the account's lock and loads one of its logins for a
// change by actor, in the transaction carried by ctx. An admin's change to
// an owner is refused.
func (s *Service) lockLogin(ctx context.Context, actor models.Actor, id string) (models.Account, models.Login, error) {
	acct, err := s.store.LockAccount(ctx, actor.AccountID)
	if err != nil {
		return models.Account{}, models.Login{}, err
	}
	login, err := s.store.LoginInAccount(ctx, actor.AccountID, id, true)
	if err != nil {
		return models.Account{}, models.Login{}, err
	}
	if err := checkMayChange(actor, login); err != nil {
		return models.Account{}, models.Login{}, err
	}
	return acct, login, nil
}

// checkMayChange refuses an admin changing an owner: owners are changed by
// owners only.
func checkMayChange(actor models.Actor, login models.Login) error {
	if login.Role == models.RoleOwner && actor.Role != models.RoleOwner {
		return models.Errorf(models.CodeForbidden, "only an owner can change an owner's login")
	}
	return nil
}

// checkNotLastOwner refuses a change that would leave the account with no
// active owner. The caller holds the account's lock.
func (s *Service) checkNotLastOwner(ctx context.Context, login models.Login, what string) error {
	n, err := s.store.CountActiveOwners(ctx, login.AccountID)
	if err != nil {
		return err
	}
	if n <= 1 {
		return models.Errorf(models.CodeLastOwner, "%s is the account's last active owner and cannot be %s; make another login owner first", login.Email, what)
	}
	return nil
}

func (s *Service) loginEnded(loginID string) {
	if s.cfg.LoginEnded != nil {
		s.cfg.LoginEnded(loginID)
	}
}

// selfActor is a login acting for itself, as when it accepts an invitation.
func selfActor(l models.Login) models.Actor {
	return models.Actor{Kind: "login", ID: l.ID, Name: l.Email, AccountID: l.AccountID, Role: l.Role}
}

// loginAuditValues is what the audit log keeps of a login: never its
// password hash.
func loginAuditValues(l models.Login) map[string]any {
	return map[string]any{"email": l.Email, "name": l.Name, "role": l.Role, "state": l.State()}
}

// OperatorInvite creates what an operator's command asks for: a new
// customer account with its first owner, or a support login in the
// staff account. The invitation is mailed, and its link returned for the
// command to print.
func (s *Service) OperatorInvite(ctx context.Context, acct models.Account, in Invitation) (Issued, error) {
	email, err := checkEmail("email", in.Email)
	if err != nil {
		return Issued{}, err
	}
	name, err := models.Label("name", in.Name, 200, true)
	if err != nil {
		return Issued{}, err
	}
	var out Issued
	err = s.store.Tx(ctx, func(ctx context.Context) error {
		now := s.now()
		login, err := s.store.CreateLogin(ctx, models.Login{
			AccountID: acct.ID, Email: email, Name: name, Role: in.Role, InvitedAt: &now,
		})
		if err != nil {
			return err
		}
		out.Login = login
		out.Link, err = s.sendInvitation(ctx, acct, login, "The panelsync operator")
		if err != nil {
			return err
		}
		return s.store.Audit(ctx, models.SystemActor(acct.ID, "operator"), models.AuditChange{
			Action: "login.invite", Target: models.LoginTarget(login), After: loginAuditValues(login),
		})
	})
	return out, err
}

// CheckAccountName validates the name of a new account.
func CheckAccountName(name string) (string, error) {
	return models.Label("name", name, 200, true)
}
