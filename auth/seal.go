package auth

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
)

// MinSealKeyBytes is the shortest key material a Sealer accepts.
const MinSealKeyBytes = 32

// sealVersion starts every sealed string, so that a later format can be
// told apart from this one.
const sealVersion = "s1"

// The AES key (by HKDF) and the key id (by a plain hash) are derived under
// different labels, so knowing a key id tells nothing about the key it
// names.
const (
	sealKeyInfo   = "panelsync seal aes-256-gcm"
	sealKeyIDInfo = "panelsync seal key id"
)

// ErrSealUnknownKey is returned by Open for a sealed value whose key id is
// not among the configured keys: it was sealed under a key that has since
// been removed, or on another installation.
var ErrSealUnknownKey = errors.New("sealed with a key that is not configured")

// ErrSealBroken is returned by Open for a value that is not a sealed
// string, or whose ciphertext was changed or truncated.
var ErrSealBroken = errors.New("sealed value is malformed or was tampered with")

// KeyEntry is one sealing key as configured: the secret material, from
// which both the AES-256 key and the key id are derived.
type KeyEntry struct {
	Secret []byte
}

// ID names the key inside sealed values: 8 hex digits derived from the
// secret, so the same secret always has the same id.
func (k KeyEntry) ID() string {
	sum := sha256.Sum256(append([]byte(sealKeyIDInfo+"\x00"), k.Secret...))
	return hex.EncodeToString(sum[:4])
}

// Sealer encrypts small secrets for storage with AES-256-GCM. New values
// are sealed under the current key; values sealed under any configured
// older key still open, so a key can be rotated without rewriting what was
// stored under the previous one.
type Sealer struct {
	currentID string
	keys      map[string]cipher.AEAD
}

// NewSealer returns a Sealer that seals under current and opens values
// sealed under current or any of older.
func NewSealer(current KeyEntry, older ...KeyEntry) (*Sealer, error) {
	s := &Sealer{currentID: current.ID(), keys: map[string]cipher.AEAD{}}
	for i, k := range append([]KeyEntry{current}, older...) {
		if len(k.Secret) < MinSealKeyBytes {
			return nil, fmt.Errorf("sealing key %d is %d bytes; at least %d are needed", i+1, len(k.Secret), MinSealKeyBytes)
		}
		id := k.ID()
		if _, dup := s.keys[id]; dup {
			return nil, fmt.Errorf("sealing key %d is configured twice (key id %s)", i+1, id)
		}
		aead, err := newSealAEAD(k.Secret)
		if err != nil {
			return nil, err
		}
		s.keys[id] = aead
	}
	return s, nil
}

func newSealAEAD(secret []byte) (cipher.AEAD, error) {
	key, err := hkdf.Key(sha256.New, secret, nil, sealKeyInfo, 32)
	if err != nil {
		return nil, fmt.Errorf("derive sealing key: %w", err)
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("sealing cipher: %w", err)
	}
	return cipher.NewGCM(block)
}

// KeyID names the key new values are sealed under.
func (s *Sealer) KeyID() string { return s.currentID }

// Seal encrypts plaintext under the current key with a fresh random nonce
// and returns "s1.<key id>.<base64url of nonce and ciphertext>". The
// version and key id are authenticated with the ciphertext.
func (s *Sealer) Seal(plaintext []byte) (string, error) {
	aead := s.keys[s.currentID]
	header := sealVersion + "." + s.currentID
	nonce := make([]byte, aead.NonceSize(), aead.NonceSize()+len(plaintext)+aead.Overhead())
	if _, err := rand.Read(nonce); err != nil {
		return "", fmt.Errorf("seal: %w", err)
	}
	out := aead.Seal(nonce, nonce, plaintext, []byte(header))
	return header + "." + base64.RawURLEncoding.EncodeToString(out), nil
}

// Open decrypts a value made by Seal under any configured key. It fails
// with ErrSealUnknownKey when the key is not configured and with
// ErrSealBroken when the value is malformed or was altered.
func (s *Sealer) Open(sealed string) ([]byte, error) {
	parts := strings.Split(sealed, ".")
	if len(parts) != 3 || parts[0] != sealVersion {
		return nil, ErrSealBroken
	}
	aead, ok := s.keys[parts[1]]
	if !ok {
		return nil, fmt.Errorf("%w (key id %q)", ErrSealUnknownKey, parts[1])
	}
	raw, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil || len(raw) < aead.NonceSize()+aead.Overhead() {
		return nil, ErrSealBroken
	}
	nonce, ciphertext := raw[:aead.NonceSize()], raw[aead.NonceSize():]
	plain, err := aead.Open(nil, nonce, ciphertext, []byte(parts[0]+"."+parts[1]))
	if err != nil {
		return nil, ErrSealBroken
	}
	return plain, nil
}
