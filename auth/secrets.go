// Package auth signs people and machines in: logins with passwords, access
// and refresh tokens, device credentials and roles.
package auth

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"fmt"

	"golang.org/x/crypto/bcrypt"
)

// MaxPasswordBytes is bcrypt's input limit; longer passwords are refused
// when set rather than silently truncated.
const MaxPasswordBytes = 72

// MinPasswordLength is the shortest password accepted when one is set.
const MinPasswordLength = 10

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

// HashPassword hashes a password for storage.
func HashPassword(password string, cost int) (string, error) {
	if err := CheckPasswordRules(password); err != nil {
		return "", err
	}
	h, err := bcrypt.GenerateFromPassword([]byte(password), cost)
	if err != nil {
		return "", fmt.Errorf("hash password: %w", err)
	}
	return string(h), nil
}

// CheckPasswordRules validates a new password's length.
func CheckPasswordRules(password string) error {
	if len([]rune(password)) < MinPasswordLength {
		return fmt.Errorf("password must be at least %d characters", MinPasswordLength)
	}
	if len(password) > MaxPasswordBytes {
		return fmt.Errorf("password must be at most %d bytes", MaxPasswordBytes)
	}
	return nil
}

// GeneratePassword returns a random password for seeded logins.
func GeneratePassword() string {
	return randomToken("", 15)
}
