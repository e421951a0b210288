package sim

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// Credentials identify one simulated panel to the server. LocationID and
// Name are informational: they let a tool print which location a panel
// belongs to.
type Credentials struct {
	Serial     string `json:"serial"`
	Secret     string `json:"secret"`
	LocationID string `json:"location_id,omitempty"`
	Name       string `json:"name,omitempty"`
}

// String names the panel without its secret, so that Credentials can be
// printed or logged safely.
func (c Credentials) String() string {
	if c.Name != "" {
		return fmt.Sprintf("%s (%s)", c.Serial, c.Name)
	}
	return c.Serial
}

// GoString keeps the secret out of %#v output too.
func (c Credentials) GoString() string {
	return fmt.Sprintf("sim.Credentials{Serial:%q, LocationID:%q, Name:%q}", c.Serial, c.LocationID, c.Name)
}

// Validate checks that the credentials can be sent as HTTP Basic auth.
func (c Credentials) Validate() error {
	switch {
	case c.Serial == "":
		return errors.New("serial is empty")
	case strings.Contains(c.Serial, ":"):
		// Basic auth separates user and password with the first colon, so a
		// serial holding one could never authenticate.
		return fmt.Errorf("serial %q contains a colon", c.Serial)
	case hasControlChars(c.Serial):
		return fmt.Errorf("serial %q contains control characters", c.Serial)
	case c.Secret == "":
		return fmt.Errorf("panel %s: secret is empty", c.Serial)
	case hasControlChars(c.Secret):
		return fmt.Errorf("panel %s: secret contains control characters", c.Serial)
	}
	return nil
}

func hasControlChars(s string) bool {
	return strings.ContainsFunc(s, func(r rune) bool { return r < 0x20 || r == 0x7f })
}

// CredentialsFile is the file that tells cmd/panelsim which server to dial
// and as which panels. It holds device secrets, so it is written readable
// by its owner only.
//
//	{"server":"http://127.0.0.1:8080","users_per_panel":50,"panels":[{"serial":"…","secret":"…"}]}
type CredentialsFile struct {
	Server string `json:"server,omitempty"`
	// UsersPerPanel is how many users each panel should hold, as the seed
	// that wrote the file was asked; 0 leaves it to the simulator.
	UsersPerPanel int           `json:"users_per_panel,omitempty"`
	Panels        []Credentials `json:"panels"`
}

// Validate checks the server URL, when given, and every panel's
// credentials, and that no serial appears twice.
func (f CredentialsFile) Validate() error {
	if f.Server != "" {
		if _, err := LinkURL(f.Server); err != nil {
			return fmt.Errorf("server: %w", err)
		}
	}
	if f.UsersPerPanel < 0 || f.UsersPerPanel > MaxUsers {
		return fmt.Errorf("users_per_panel must be between 0 and %d", MaxUsers)
	}
	if len(f.Panels) == 0 {
		return errors.New("no panels listed")
	}
	seen := make(map[string]int, len(f.Panels))
	for i, c := range f.Panels {
		if err := c.Validate(); err != nil {
			return fmt.Errorf("panels[%d]: %w", i, err)
		}
		if first, dup := seen[c.Serial]; dup {
			return fmt.Errorf("panels[%d]: serial %q is also panels[%d]", i, c.Serial, first)
		}
		seen[c.Serial] = i
	}
	return nil
}

// LoadCredentialsFile reads and validates a credentials file.
func LoadCredentialsFile(path string) (CredentialsFile, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return CredentialsFile{}, fmt.Errorf("read credentials file: %w", err)
	}
	var f CredentialsFile
	if err := json.Unmarshal(data, &f); err != nil {
		return CredentialsFile{}, fmt.Errorf("credentials file %s is not valid JSON: %w", path, err)
	}
	if err := f.Validate(); err != nil {
		return CredentialsFile{}, fmt.Errorf("credentials file %s: %w", path, err)
	}
	return f, nil
}

// WriteCredentialsFile validates f and writes it to path with mode 0600.
// It writes a temporary file first and renames it into place, so that a
// reader never sees half a file and the secrets are never readable by
// others, not even briefly.
func WriteCredentialsFile(path string, f CredentialsFile) (err error) {
	if err := f.Validate(); err != nil {
		return fmt.Errorf("credentials: %w", err)
	}
	data, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		return fmt.Errorf("encode credentials: %w", err)
	}
	data = append(data, '\n')
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*.tmp")
	if err != nil {
		return fmt.Errorf("write credentials file: %w", err)
	}
	defer func() {
		if err != nil {
			_ = tmp.Close()
			_ = os.Remove(tmp.Name())
		}
	}()
	// CreateTemp already uses 0600; Chmod states the intent and holds
	// whatever the umask.
	if err := tmp.Chmod(0o600); err != nil {
		return fmt.Errorf("write credentials file: %w", err)
	}
	if _, err := tmp.Write(data); err != nil {
		return fmt.Errorf("write credentials file: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		return fmt.Errorf("write credentials file: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write credentials file: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("write credentials file: %w", err)
	}
	return nil
}
