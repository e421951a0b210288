package auth

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base32"
	"slices"
	"strings"
	"time"

	"github.com/panelsync/panelsync/models"
)

// Scope is one thing an API key may do.
type Scope string

// The scopes an API key can hold. Read covers every GET route; sync covers
// starting and cancelling syncs and batches; import covers uploading user
// lists, which an integrator's script does. Nothing else that needs the
// owner or admin role is open to a key, whatever its scopes.
const (
	ScopeRead   Scope = "read"
	ScopeSync   Scope = "sync"
	ScopeImport Scope = "import"
)

// Scopes is the set of scopes a principal holds; a login holds none, as
// its role decides what it may do.
type Scopes []Scope

// Has reports whether s includes scope.
func (s Scopes) Has(scope Scope) bool { return slices.Contains(s, scope) }

// Strings returns the scopes as plain strings, in their stored order.
func (s Scopes) Strings() []string {
	out := make([]string, len(s))
	for i, sc := range s {
		out[i] = string(sc)
	}
	return out
}

// ParseScopes validates the scopes asked for a new key: at least one, each
// known, none twice.
func ParseScopes(raw []string) (Scopes, error) {
	if len(raw) == 0 {
		return nil, models.FieldError("scopes", "scopes must list at least one of read, sync and import")
	}
	out := make(Scopes, 0, len(raw))
	for _, r := range raw {
		sc := Scope(r)
		if sc != ScopeRead && sc != ScopeSync && sc != ScopeImport {
			return nil, models.FieldError("scopes", "unknown scope %q: scopes are read, sync and import", r)
		}
		if out.Has(sc) {
			return nil, models.FieldError("scopes", "scope %q is listed twice", r)
		}
		out = append(out, sc)
	}
	return out, nil
}

// StoredScopes reads the comma-separated scopes of a stored key.
func StoredScopes(k models.APIKey) Scopes {
	var out Scopes
	for part := range strings.SplitSeq(k.Scopes, ",") {
		if part != "" {
			out = append(out, Scope(part))
		}
	}
	return out
}

// MaxAPIKeyNameLength is the longest key name accepted, in characters.
const MaxAPIKeyNameLength = 200

// apiKeyLookupLength is the length of the public lookup id that follows
// the prefix; apiKeySecretBytes the random bytes of the secret part.
const (
	apiKeyLookupLength = 8
	apiKeySecretBytes  = 32
)

// apiKeyUseInterval is how often a key's last use is written at most, so a
// busy script does not turn every request into a write.
const apiKeyUseInterval = time.Minute

// lookupEncoding spells the lookup id in lower-case letters and digits,
// which read well and never contain the separator.
var lookupEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// newAPIKey returns a new key and its lookup part: psk_, eight lookup
// characters, an underscore and 32 random bytes in base64url.
func newAPIKey() (key, lookup string) {
	b := make([]byte, 5)
	// crypto/rand.Read never returns an error on supported platforms.
	_, _ = rand.Read(b)
	lookup = APIKeyPrefix + lookupEncoding.EncodeToString(b)
	return randomToken(lookup+"_", apiKeySecretBytes), lookup
}

// splitAPIKey returns the lookup part of a well-formed key.
func splitAPIKey(key string) (lookup string, ok bool) {
	n := len(APIKeyPrefix) + apiKeyLookupLength
	if len(key) <= n+1 || !strings.HasPrefix(key, APIKeyPrefix) || key[n] != '_' {
		return "", false
	}
	return key[:n], true
}

// NewAPIKey is what an owner or admin asks for when creating a key.
type NewAPIKey struct {
	Name      string
	Scopes    []string
	ExpiresAt *time.Time
}

// CreateAPIKey validates and stores a new key of the actor's account and
// returns it with its secret, which exists only in this answer: the store
// keeps its SHA-256.
func (s *Service) CreateAPIKey(ctx context.Context, actor models.Actor, req NewAPIKey) (models.APIKey, string, error) {
	if actor.Kind != "login" || !actor.Role.CanAdminister() {
		return models.APIKey{}, "", models.Errorf(models.CodeForbidden, "creating API keys needs the owner or admin role")
	}
	now := s.now()
	name, err := models.Label("name", req.Name, MaxAPIKeyNameLength, true)
	if err != nil {
		return models.APIKey{}, "", err
	}
	scopes, err := ParseScopes(req.Scopes)
	if err != nil {
		return models.APIKey{}, "", err
	}
	var expires *time.Time
	if req.ExpiresAt != nil {
		// Millisecond precision is what both databases keep, so the
		// expiry shown at creation is the one enforced.
		e := req.ExpiresAt.UTC().Truncate(time.Millisecond)
		if !e.After(now) {
			return models.APIKey{}, "", models.FieldError("expires_at", "expires_at must be in the future")
		}
		expires = &e
	}
	// A lookup id is 40 random bits, so a clash with an existing key is
	// rare; a few tries make it vanishingly so.
	for attempt := 0; ; attempt++ {
		secret, lookup := newAPIKey()
		row := models.APIKey{
			ID:         models.NewID(),
			Name:       name,
			Prefix:     lookup,
			SecretHash: digest(secret),
			Scopes:     strings.Join(scopes.Strings(), ","),
			ExpiresAt:  expires,
		}
		k, taken, err := s.store.CreateAPIKey(ctx, actor, row, now)
		if taken && attempt < 2 {
			continue
		}
		if err != nil {
			return models.APIKey{}, "", err
		}
		return k, secret, nil
	}
}

// RevokeAPIKey revokes a key of the actor's account. It is idempotent:
// revoking a revoked key answers the key again.
func (s *Service) RevokeAPIKey(ctx context.Context, actor models.Actor, id string) (models.APIKey, error) {
	if actor.Kind != "login" || !actor.Role.CanAdminister() {
		return models.APIKey{}, models.Errorf(models.CodeForbidden, "revoking API keys needs the owner or admin role")
	}
	return s.store.RevokeAPIKey(ctx, actor, id, s.now())
}

// authenticateAPIKey checks a bearer that starts with the API key prefix.
// The lookup part finds the key; the whole key's digest must then match,
// compared in constant time.
func (s *Service) authenticateAPIKey(ctx context.Context, key string) (Principal, error) {
	invalid := models.Errorf(models.CodeUnauthorized, "API key is invalid")
	lookup, ok := splitAPIKey(key)
	if !ok {
		return Principal{}, invalid
	}
	k, err := s.store.APIKeyByPrefix(ctx, lookup)
	if err != nil {
		if models.ErrorCode(err) == models.CodeNotFound {
			return Principal{}, invalid
		}
		return Principal{}, err
	}
	if subtle.ConstantTimeCompare([]byte(digest(key)), []byte(k.SecretHash)) != 1 {
		return Principal{}, invalid
	}
	now := s.now()
	if k.RevokedAt != nil {
		return Principal{}, models.Errorf(models.CodeUnauthorized, "API key has been revoked")
	}
	if k.ExpiresAt != nil && !now.Before(*k.ExpiresAt) {
		return Principal{}, models.Errorf(models.CodeUnauthorized, "API key has expired")
	}
	if k.LastUsedAt == nil || now.Sub(*k.LastUsedAt) >= apiKeyUseInterval {
		// Recording use is bookkeeping: a failure is logged and the
		// request goes on.
		if err := s.store.TouchAPIKey(ctx, k.ID, now, apiKeyUseInterval); err != nil {
			s.log.WarnContext(ctx, "record API key use", "api_key_id", k.ID, "error", err.Error())
		}
	}
	p := Principal{
		AccountID:    k.AccountID,
		Name:         k.Name,
		Role:         models.RoleMember,
		APIKeyID:     k.ID,
		APIKeyPrefix: k.Prefix,
		Scopes:       StoredScopes(k),
	}
	if k.ExpiresAt != nil {
		p.ExpiresAt = *k.ExpiresAt
	}
	return p, nil
}
