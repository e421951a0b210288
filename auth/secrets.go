// Package auth signs people and machines in: logins with passwords, access
// and refresh tokens, device credentials and roles.
package auth

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"strings"
	"unicode/utf8"

	"golang.org/x/crypto/bcrypt"
)

// Passwords are 12 to 128 characters: long enough to resist guessing,
// and room for a pass phrase or a password manager's output.
const (
	MinPasswordLength = 12
	MaxPasswordLength = 128
)

// passwordHashPrefix marks a hash of the current scheme: bcrypt over an
// HMAC-SHA-256 of the password. bcrypt reads at most 72 bytes, so hashing
// the password first lets all 128 characters count; the HMAC's fixed key
// keeps the inner digest from matching plain SHA-256 digests leaked
// elsewhere. A hash without the prefix is plain bcrypt, from before.
const passwordHashPrefix = "$psb1$"

func passwordPrehash(password string) []byte {
	mac := hmac.New(sha256.New, []byte("panelsync password v1"))
	mac.Write([]byte(password))
	return []byte(base64.RawStdEncoding.EncodeToString(mac.Sum(nil)))
}

// Token prefixes tell a reader (and a secret scanner) what a string is.
const (
	refreshTokenPrefix = "psr_"
	deviceSecretPrefix = "psd_"
	// APIKeyPrefix starts every API key; a bearer with it is looked up as a
	// key instead of parsed as an access token.
	APIKeyPrefix = "psk_"
)

// randomToken returns prefix followed by n random bytes, base64url.
func randomToken(prefix string, n int) string {
	b := make([]byte, n)
	// crypto/rand.Read never returns an error on supported platforms.
	_, _ = rand.Read(b)
	return prefix + base64.RawURLEncoding.EncodeToString(b)
}

// digest is the stored form of a high-entropy secret. A plain SHA-256 is
// enough for 256-bit random values; slow hashes are for passwords.
func digest(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(sum[:])
}

// NewDeviceSecret returns a panel's device secret, to be shown once, and
// the digest to store.
func NewDeviceSecret() (secret, secretDigest string) {
	secret = randomToken(deviceSecretPrefix, 32)
	return secret, digest(secret)
}

// DeviceSecretMatches reports whether secret is the one whose digest is
// stored, in constant time.
func DeviceSecretMatches(secret, storedDigest string) bool {
	return subtle.ConstantTimeCompare([]byte(digest(secret)), []byte(storedDigest)) == 1
}

// HashPassword checks a new password against the rules and hashes it for
// storage.
func HashPassword(password string, cost int) (string, error) {
	if err := CheckPasswordRules(password); err != nil {
		return "", err
	}
	return hashPassword(password, cost)
}

func hashPassword(password string, cost int) (string, error) {
	h, err := bcrypt.GenerateFromPassword(passwordPrehash(password), cost)
	if err != nil {
		return "", fmt.Errorf("hash password: %w", err)
	}
	return passwordHashPrefix + string(h), nil
}

// PasswordMatches reports whether password is the one hashed in stored, of
// either scheme. An empty stored hash (an invited login) matches nothing.
func PasswordMatches(stored, password string) bool {
	if rest, ok := strings.CutPrefix(stored, passwordHashPrefix); ok {
		return bcrypt.CompareHashAndPassword([]byte(rest), passwordPrehash(password)) == nil
	}
	if stored == "" || len(password) > 72 {
		return false
	}
	return bcrypt.CompareHashAndPassword([]byte(stored), []byte(password)) == nil
}

// CheckPasswordRules validates a new password's length.
func CheckPasswordRules(password string) error {
	n := utf8.RuneCountInString(password)
	if n < MinPasswordLength {
		return fmt.Errorf("password must be at least %d characters", MinPasswordLength)
	}
	if n > MaxPasswordLength {
		return fmt.Errorf("password must be at most %d characters", MaxPasswordLength)
	}
	return nil
}

// GeneratePassword returns a random password for seeded logins: 24
// characters, comfortably within the rules.
func GeneratePassword() string {
	return randomToken("", 18)
}
