package auth

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/panelsync/panelsync/models"
)

// Config tunes sign-in.
type Config struct {
	// SigningKey signs access tokens (HS256). At least 32 bytes.
	SigningKey []byte
	Issuer     string
	AccessTTL  time.Duration
	RefreshTTL time.Duration
	BcryptCost int
	// LoginPerMinutePerClient and LoginBurstPerClient bound the login
	// attempts from one client address. LoginPerMinutePerEmail and
	// LoginBurstPerEmail are the ceiling on one e-mail's failures from all
	// addresses, past which its attempts are slowed. Zero turns either off.
	LoginPerMinutePerClient float64
	LoginPerMinutePerEmail  float64
	LoginBurstPerClient     int
	LoginBurstPerEmail      int
	// LoginFreeFailures is how many failures one e-mail may have from one
	// address before each further attempt from there waits: 1 s, doubling
	// up to LoginBackoffMax (zero: 15 minutes).
	LoginFreeFailures int
	LoginBackoffMax   time.Duration
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Logger receives what goes wrong without failing a request; nil
	// discards it.
	Logger *slog.Logger
	// SessionEnded, when set, is told of every session that ends (logout,
	// or a replayed refresh token), so that live connections opened with
	// its tokens close at once.
	SessionEnded func(sessionID string)
	// LoginEnded, when set, is told of every login that can no longer sign
	// in (deactivated, or its password reset), so that all its live
	// connections close at once.
	LoginEnded func(loginID string)
	// Mailer queues the invitation, password-reset and security mails.
	Mailer Mailer
	// PublicURL is where people reach the web console; mailed links start
	// with it.
	PublicURL string
	// InvitationTTL and ResetTTL bound how long a mailed link works.
	InvitationTTL time.Duration
	ResetTTL      time.Duration
}

// Tokens is what a successful login or refresh returns.
type Tokens struct {
	AccessToken  string
	RefreshToken string
	ExpiresIn    time.Duration
}

// Principal is who an authenticated request acts as: a login, or an API
// key. For a key, LoginID, SessionID and Email are empty, Role is member,
// Name is the key's name and ExpiresAt its expiry (zero when it has none).
type Principal struct {
	LoginID   string
	AccountID string
	Email     string
	Name      string
	Role      models.Role
	SessionID string
	ExpiresAt time.Time
	// HomeAccountID is set when a support login acts on a customer's
	// account (AccountID) through a staff grant: it is the staff account
	// the login belongs to.
	HomeAccountID string
	// APIKeyID, APIKeyPrefix and Scopes are set for an API key only.
	APIKeyID     string
	APIKeyPrefix string
	Scopes       Scopes
}

// IsAPIKey reports whether p is an API key rather than a login.
func (p Principal) IsAPIKey() bool { return p.APIKeyID != "" }

// maxKeyLabelName bounds the key name inside an actor's label, which is
// stored as a run's requested_by (200 characters).
const maxKeyLabelName = 150

// Actor returns the audit identity of p, seen from clientIP. A key is
// named by its name and public prefix, which is what a run's requested_by
// and the Event Log show.
func (p Principal) Actor(clientIP string) models.Actor {
	if p.IsAPIKey() {
		name := p.Name
		if r := []rune(name); len(r) > maxKeyLabelName {
			name = string(r[:maxKeyLabelName]) + "…"
		}
		return models.Actor{
			Kind: "api_key", ID: p.APIKeyID, Name: fmt.Sprintf("API key %s (%s)", name, p.APIKeyPrefix),
			AccountID: p.AccountID, Role: p.Role, ClientIP: clientIP,
		}
	}
	return models.Actor{Kind: "login", ID: p.LoginID, Name: p.Email, AccountID: p.AccountID, Role: p.Role, ClientIP: clientIP}
}

// Service signs logins in and checks the tokens they present.
type Service struct {
	store     *models.Store
	cfg       Config
	log       *slog.Logger
	throttle  *loginThrottle
	decoyHash string
	parser    *jwt.Parser
	audience  string
}

// accessClaims are the claims of an access token. The session id ties the
// token to its refresh family, so logging out ends it at once.
type accessClaims struct {
	jwt.RegisteredClaims
	SessionID string      `json:"sid"`
	AccountID string      `json:"acc"`
	Role      models.Role `json:"role"`
}

// NewService builds the sign-in service.
func NewService(store *models.Store, cfg Config) (*Service, error) {
	if len(cfg.SigningKey) < 32 {
		return nil, errors.New("auth: signing key must be at least 32 bytes")
	}
	if cfg.Issuer == "" {
		cfg.Issuer = "panelsync"
	}
	if cfg.AccessTTL <= 0 {
		cfg.AccessTTL = 15 * time.Minute
	}
	if cfg.RefreshTTL <= 0 {
		cfg.RefreshTTL = 30 * 24 * time.Hour
	}
	if cfg.BcryptCost == 0 {
		cfg.BcryptCost = 12
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.InvitationTTL <= 0 {
		cfg.InvitationTTL = 72 * time.Hour
	}
	if cfg.ResetTTL <= 0 {
		cfg.ResetTTL = time.Hour
	}
	if cfg.PublicURL == "" {
		cfg.PublicURL = "http://localhost:8080"
	}
	cfg.PublicURL = strings.TrimRight(cfg.PublicURL, "/")
	if cfg.Mailer == nil {
		return nil, errors.New("auth: a mailer is required")
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	// An unknown e-mail is checked against this hash so that it costs as
	// long as a wrong password and the answer time reveals nothing.
	decoy, err := hashPassword(randomToken("", 16), cfg.BcryptCost)
	if err != nil {
		return nil, fmt.Errorf("auth: %w", err)
	}
	const audience = "panelsync-api"
	return &Service{
		store:     store,
		cfg:       cfg,
		log:       log,
		throttle:  newLoginThrottle(throttleConfigOf(cfg)),
		decoyHash: decoy,
		audience:  audience,
		parser: jwt.NewParser(
			jwt.WithValidMethods([]string{jwt.SigningMethodHS256.Alg()}),
			jwt.WithIssuer(cfg.Issuer),
			jwt.WithAudience(audience),
			jwt.WithExpirationRequired(),
			jwt.WithIssuedAt(),
			jwt.WithTimeFunc(cfg.Now),
		),
	}, nil
}

func (s *Service) now() time.Time { return s.cfg.Now().UTC() }

// Login checks an e-mail and password and starts a session. A wrong
// password, an unknown e-mail and a disabled login get the same answer in
// about the same time, and count alike against the sign-in throttle
// (ratelimit.go), which holds back only the client address that failed.
func (s *Service) Login(ctx context.Context, email, password, clientIP string) (Tokens, error) {
	now := s.now()
	email = models.NormalizeEmail(email)
	attempt, wait := s.throttle.admit(email, clientIP, now)
	if wait > 0 {
		return Tokens{}, &models.Error{Code: models.CodeRateLimited, Message: "too many login attempts; try again later", RetryAfter: wait}
	}
	login, err := s.store.LoginByEmail(ctx, email)
	if err != nil && models.ErrorCode(err) != models.CodeNotFound {
		s.throttle.settle(attempt, s.now(), attemptAborted)
		return Tokens{}, err
	}
	// An invited login has no password yet; like an unknown e-mail it is
	// checked against the decoy, so it answers in the same time.
	hash := s.decoyHash
	if err == nil && login.PasswordHash != "" {
		hash = login.PasswordHash
	}
	match := PasswordMatches(hash, password)
	if err != nil || login.PasswordHash == "" || !match {
		s.throttle.settle(attempt, s.now(), attemptFailed)
		return Tokens{}, models.Errorf(models.CodeInvalidCredentials, "e-mail or password is wrong")
	}
	s.throttle.settle(attempt, s.now(), attemptSucceeded)
	return s.startSession(ctx, login, now)
}

// startSession opens a new session for login, records the sign-in, and
// returns its first token pair.
func (s *Service) startSession(ctx context.Context, login models.Login, now time.Time) (Tokens, error) {
	sess := models.Session{
		ID:         models.NewID(),
		LoginID:    login.ID,
		CreatedAt:  now,
		LastUsedAt: now,
		ExpiresAt:  now.Add(s.cfg.RefreshTTL),
	}
	refresh, row := s.newRefreshToken(now)
	err := s.store.Tx(ctx, func(ctx context.Context) error {
		if err := s.store.CreateSession(ctx, sess, row); err != nil {
			return err
		}
		return s.store.UpdateLoginFields(ctx, login.ID, map[string]any{"last_login_at": now})
	})
	if err != nil {
		return Tokens{}, err
	}
	return s.issue(login, sess.ID, refresh, now)
}

// Refresh exchanges a refresh token for a new pair. The old token stops
// working; presenting a used token again ends its whole session, since
// only a stolen copy would be replayed.
func (s *Service) Refresh(ctx context.Context, refreshToken string) (Tokens, error) {
	now := s.now()
	invalid := models.Errorf(models.CodeUnauthorized, "refresh token is invalid or expired")
	if !strings.HasPrefix(refreshToken, refreshTokenPrefix) {
		return Tokens{}, invalid
	}
	var (
		tokens Tokens
		replay string
	)
	err := s.store.Tx(ctx, func(ctx context.Context) error {
		tokens, replay = Tokens{}, ""
		old, sess, err := s.store.RefreshTokenByHash(ctx, digest(refreshToken))
		if err != nil {
			if models.ErrorCode(err) == models.CodeNotFound {
				return invalid
			}
			return err
		}
		if sess.RevokedAt != nil || !now.Before(sess.ExpiresAt) || !now.Before(old.ExpiresAt) {
			return invalid
		}
		if old.UsedAt != nil {
			replay = sess.ID
			return nil
		}
		login, err := s.store.ActiveSessionLogin(ctx, sess.ID, sess.LoginID, now)
		if err != nil {
			if models.ErrorCode(err) == models.CodeNotFound {
				return invalid
			}
			return err
		}
		next, row := s.newRefreshToken(now)
		if err := s.store.RotateRefreshToken(ctx, old, row, now); err != nil {
			return err
		}
		tokens, err = s.issue(login, sess.ID, next, now)
		return err
	})
	if err != nil {
		return Tokens{}, err
	}
	if replay != "" {
		if err := s.store.RevokeSession(ctx, replay, "refresh_reuse", now); err != nil {
			return Tokens{}, err
		}
		s.sessionEnded(replay)
		return Tokens{}, models.Errorf(models.CodeUnauthorized, "refresh token was already used; the session has been ended, sign in again")
	}
	return tokens, nil
}

// Logout ends the principal's session: its refresh tokens and its access
// tokens stop working. An API key has no session to end; it is revoked
// instead.
func (s *Service) Logout(ctx context.Context, p Principal) error {
	if p.IsAPIKey() {
		return models.Errorf(models.CodeInvalidRequest, "an API key has no session to sign out of; revoke an API key with DELETE /v1/api-keys/{id}")
	}
	if err := s.store.RevokeSession(ctx, p.SessionID, "logout", s.now()); err != nil {
		return err
	}
	s.sessionEnded(p.SessionID)
	return nil
}

func (s *Service) sessionEnded(sessionID string) {
	if s.cfg.SessionEnded != nil {
		s.cfg.SessionEnded(sessionID)
	}
}

// Authenticate checks an access token or an API key and returns who it
// speaks for. The session and login (or the key) are looked up, so a
// logged-out session, a disabled login, a changed role or a revoked key
// take effect at once.
func (s *Service) Authenticate(ctx context.Context, token string) (Principal, error) {
	if strings.HasPrefix(token, APIKeyPrefix) {
		return s.authenticateAPIKey(ctx, token)
	}
	var claims accessClaims
	_, err := s.parser.ParseWithClaims(token, &claims, func(*jwt.Token) (any, error) { return s.cfg.SigningKey, nil })
	if err != nil {
		if errors.Is(err, jwt.ErrTokenExpired) {
			return Principal{}, models.Errorf(models.CodeTokenExpired, "access token has expired; refresh it")
		}
		return Principal{}, models.Errorf(models.CodeUnauthorized, "access token is invalid")
	}
	login, err := s.store.ActiveSessionLogin(ctx, claims.SessionID, claims.Subject, s.now())
	if err != nil {
		if models.ErrorCode(err) == models.CodeNotFound {
			return Principal{}, models.Errorf(models.CodeUnauthorized, "session has ended; sign in again")
		}
		return Principal{}, err
	}
	if login.AccountID != claims.AccountID {
		return Principal{}, models.Errorf(models.CodeUnauthorized, "access token is invalid")
	}
	return Principal{
		LoginID:   login.ID,
		AccountID: login.AccountID,
		Email:     login.Email,
		Name:      login.Name,
		Role:      login.Role,
		SessionID: claims.SessionID,
		ExpiresAt: claims.ExpiresAt.Time,
	}, nil
}

// IsTokenExpired reports whether err says an access token has expired:
// the code that tells an app to refresh, and the realtime socket to close
// with its own close code.
func IsTokenExpired(err error) bool {
	return models.ErrorCode(err) == models.CodeTokenExpired
}

// CreateLogin adds a login with a password to an account.
func (s *Service) CreateLogin(ctx context.Context, accountID, email, name string, role models.Role, password string) (models.Login, error) {
	if !role.Valid() {
		return models.Login{}, models.FieldError("role", "role must be owner, admin, member or support")
	}
	hash, err := HashPassword(password, s.cfg.BcryptCost)
	if err != nil {
		return models.Login{}, models.FieldError("password", "%s", err.Error())
	}
	return s.store.CreateLogin(ctx, models.Login{AccountID: accountID, Email: email, Name: name, Role: role, PasswordHash: hash})
}

func (s *Service) newRefreshToken(now time.Time) (string, models.RefreshToken) {
	token := randomToken(refreshTokenPrefix, 32)
	return token, models.RefreshToken{
		ID:        models.NewID(),
		TokenHash: digest(token),
		CreatedAt: now,
		ExpiresAt: now.Add(s.cfg.RefreshTTL),
	}
}

func (s *Service) issue(login models.Login, sessionID, refresh string, now time.Time) (Tokens, error) {
	claims := accessClaims{
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer:    s.cfg.Issuer,
			Subject:   login.ID,
			Audience:  jwt.ClaimStrings{s.audience},
			IssuedAt:  jwt.NewNumericDate(now),
			NotBefore: jwt.NewNumericDate(now),
			ExpiresAt: jwt.NewNumericDate(now.Add(s.cfg.AccessTTL)),
			ID:        models.NewID(),
		},
		SessionID: sessionID,
		AccountID: login.AccountID,
		Role:      login.Role,
	}
	signed, err := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString(s.cfg.SigningKey)
	if err != nil {
		return Tokens{}, fmt.Errorf("sign access token: %w", err)
	}
	return Tokens{AccessToken: signed, RefreshToken: refresh, ExpiresIn: s.cfg.AccessTTL}, nil
}

// SetPassword replaces a login's password.
func (s *Service) SetPassword(ctx context.Context, loginID, password string) error {
	hash, err := HashPassword(password, s.cfg.BcryptCost)
	if err != nil {
		return models.FieldError("password", "%s", err.Error())
	}
	return s.store.SetPasswordHash(ctx, loginID, hash)
}

// realtimeTicketTTL is how long a browser has to open the realtime socket
// with a ticket.
const realtimeTicketTTL = 30 * time.Second

// realtimeTicketPrefix starts every realtime ticket.
const realtimeTicketPrefix = "pst_"

// IssueRealtimeTicket returns a single-use ticket that opens one realtime
// WebSocket as p, for browsers, which cannot set headers on an upgrade.
func (s *Service) IssueRealtimeTicket(ctx context.Context, p Principal) (string, time.Duration, error) {
	if p.IsAPIKey() {
		return "", 0, models.Errorf(models.CodeForbidden, "tickets are for browser sessions; send the key as Bearer on the upgrade")
	}
	now := s.now()
	ticket := randomToken(realtimeTicketPrefix, 32)
	err := s.store.CreateRealtimeTicket(ctx, models.RealtimeTicket{
		ID:              models.NewID(),
		TokenHash:       digest(ticket),
		LoginID:         p.LoginID,
		SessionID:       p.SessionID,
		AccessExpiresAt: p.ExpiresAt,
		ExpiresAt:       now.Add(realtimeTicketTTL),
		CreatedAt:       now,
	})
	if err != nil {
		return "", 0, err
	}
	return ticket, realtimeTicketTTL, nil
}

// RedeemRealtimeTicket uses a ticket up and returns who it speaks for, with
// ExpiresAt set to when the access token that asked for it expires.
func (s *Service) RedeemRealtimeTicket(ctx context.Context, ticket string) (Principal, error) {
	invalid := models.Errorf(models.CodeUnauthorized, "ticket is invalid, used or expired")
	if !strings.HasPrefix(ticket, realtimeTicketPrefix) {
		return Principal{}, invalid
	}
	now := s.now()
	t, err := s.store.ConsumeRealtimeTicket(ctx, digest(ticket), now)
	if err != nil {
		if models.ErrorCode(err) == models.CodeNotFound {
			return Principal{}, invalid
		}
		return Principal{}, err
	}
	if !now.Before(t.AccessExpiresAt) {
		return Principal{}, models.Errorf(models.CodeTokenExpired, "the access token behind the ticket has expired")
	}
	login, err := s.store.ActiveSessionLogin(ctx, t.SessionID, t.LoginID, now)
	if err != nil {
		if models.ErrorCode(err) == models.CodeNotFound {
			return Principal{}, invalid
		}
		return Principal{}, err
	}
	return Principal{
		LoginID: login.ID, AccountID: login.AccountID, Email: login.Email, Name: login.Name,
		Role: login.Role, SessionID: t.SessionID, ExpiresAt: t.AccessExpiresAt,
	}, nil
}
