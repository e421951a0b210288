package auth_test

import (
	"bytes"
	"encoding/base64"
	"errors"
	"strings"
	"testing"

	"github.com/panelsync/panelsync/auth"
)

func sealKey(fill byte) auth.KeyEntry {
	return auth.KeyEntry{Secret: bytes.Repeat([]byte{fill}, 32)}
}

func mustSealer(t *testing.T, current auth.KeyEntry, older ...auth.KeyEntry) *auth.Sealer {
	t.Helper()
	s, err := auth.NewSealer(current, older...)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestSealer_RoundTrip_OpensWhatItSealedAndHidesThePlaintext(t *testing.T) {
	s := mustSealer(t, sealKey('a'))
	plain := []byte("user code 4711 for the front door")
	sealed, err := s.Seal(plain)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(sealed, "4711") || strings.Contains(sealed, "front door") {
		t.Fatalf("sealed value shows the plaintext: %s", sealed)
	}
	if !strings.Contains(sealed, s.KeyID()) {
		t.Fatalf("sealed value %q does not name its key %s", sealed, s.KeyID())
	}
	got, err := s.Open(sealed)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, plain) {
		t.Fatalf("opened %q, want %q", got, plain)
	}

	again, err := s.Seal(plain)
	if err != nil {
		t.Fatal(err)
	}
	if again == sealed {
		t.Fatal("sealing the same plaintext twice gave the same value: the nonce is not random")
	}
}

func TestSealer_TamperedValue_IsRefused(t *testing.T) {
	s := mustSealer(t, sealKey('a'))
	sealed, err := s.Seal([]byte("reset token"))
	if err != nil {
		t.Fatal(err)
	}
	parts := strings.Split(sealed, ".")
	raw, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil {
		t.Fatal(err)
	}
	flipped := bytes.Clone(raw)
	flipped[len(flipped)-1] ^= 1

	cases := map[string]string{
		"flipped ciphertext bit": parts[0] + "." + parts[1] + "." + base64.RawURLEncoding.EncodeToString(flipped),
		"truncated ciphertext":   parts[0] + "." + parts[1] + "." + base64.RawURLEncoding.EncodeToString(raw[:len(raw)-4]),
		"other version":          "s9." + parts[1] + "." + parts[2],
		"not base64":             parts[0] + "." + parts[1] + ".***",
		"empty":                  "",
		"plain text":             "reset token",
	}
	for name, value := range cases {
		t.Run(name, func(t *testing.T) {
			got, err := s.Open(value)
			if !errors.Is(err, auth.ErrSealBroken) {
				t.Fatalf("Open = %q, %v; want ErrSealBroken", got, err)
			}
		})
	}
}

func TestSealer_Rotation_OldKeyStillOpensWhatItSealed(t *testing.T) {
	before := mustSealer(t, sealKey('a'))
	oldSealed, err := before.Seal([]byte("sealed before rotation"))
	if err != nil {
		t.Fatal(err)
	}

	after := mustSealer(t, sealKey('b'), sealKey('a'))
	got, err := after.Open(oldSealed)
	if err != nil {
		t.Fatalf("value sealed under the old key no longer opens: %v", err)
	}
	if string(got) != "sealed before rotation" {
		t.Fatalf("opened %q", got)
	}

	newSealed, err := after.Seal([]byte("sealed after rotation"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(newSealed, sealKey('b').ID()) || strings.Contains(newSealed, sealKey('a').ID()) {
		t.Fatalf("new value %q is not sealed under the current key %s", newSealed, sealKey('b').ID())
	}
	if _, err := before.Open(newSealed); !errors.Is(err, auth.ErrSealUnknownKey) {
		t.Fatalf("a sealer without the new key opened a value sealed under it: %v", err)
	}
}

func TestSealer_UnknownKeyID_FailsClearly(t *testing.T) {
	sealed, err := mustSealer(t, sealKey('a')).Seal([]byte("x"))
	if err != nil {
		t.Fatal(err)
	}
	other := mustSealer(t, sealKey('c'))
	_, err = other.Open(sealed)
	if !errors.Is(err, auth.ErrSealUnknownKey) {
		t.Fatalf("Open under another key = %v, want ErrSealUnknownKey", err)
	}
	if !strings.Contains(err.Error(), sealKey('a').ID()) {
		t.Fatalf("error %q does not name the missing key id", err)
	}
}

func TestNewSealer_RefusesShortAndDuplicateKeys(t *testing.T) {
	if _, err := auth.NewSealer(auth.KeyEntry{Secret: []byte("too short")}); err == nil {
		t.Error("a 9-byte key was accepted")
	}
	if _, err := auth.NewSealer(sealKey('a'), auth.KeyEntry{Secret: []byte("short")}); err == nil {
		t.Error("a short older key was accepted")
	}
	if _, err := auth.NewSealer(sealKey('a'), sealKey('a')); err == nil {
		t.Error("the same key configured twice was accepted")
	}
	if sealKey('a').ID() == sealKey('b').ID() || len(sealKey('a').ID()) != 8 {
		t.Errorf("key ids %q and %q: want 8 hex digits that differ per key", sealKey('a').ID(), sealKey('b').ID())
	}
}
