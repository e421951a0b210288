package auth

import (
	"errors"
	"strings"
	"testing"

	"github.com/panelsync/panelsync/models"
)

func TestParseScopes_AcceptsUniqueKnownScopesOnly(t *testing.T) {
	cases := []struct {
		in   []string
		want string
	}{
		{[]string{"read"}, ""},
		{[]string{"sync", "read"}, ""},
		{nil, "at least one"},
		{[]string{"read", "read"}, "twice"},
		{[]string{"admin"}, "unknown scope"},
		{[]string{"READ"}, "unknown scope"},
	}
	for _, tc := range cases {
		got, err := ParseScopes(tc.in)
		if tc.want == "" {
			if err != nil || len(got) != len(tc.in) {
				t.Errorf("ParseScopes(%q) = %v, %v", tc.in, got, err)
			}
			continue
		}
		var e *models.Error
		if !errors.As(err, &e) || e.Code != models.CodeInvalidRequest || e.Field != "scopes" || !strings.Contains(e.Message, tc.want) {
			t.Errorf("ParseScopes(%q) error %v, want one on field scopes saying %q", tc.in, err, tc.want)
		}
	}
}

func TestNewAPIKey_HasTheDocumentedShapeAndSplitsBack(t *testing.T) {
	seen := map[string]bool{}
	for range 50 {
		key, lookup := newAPIKey()
		if len(lookup) != 12 || len(key) != 12+1+43 || !strings.HasPrefix(key, lookup+"_") {
			t.Fatalf("key %q with lookup %q", key, lookup)
		}
		got, ok := splitAPIKey(key)
		if !ok || got != lookup {
			t.Fatalf("splitAPIKey(%q) = %q, %v", key, got, ok)
		}
		if seen[key] {
			t.Fatal("the same key was drawn twice")
		}
		seen[key] = true
	}
	for _, bad := range []string{"psk_", "psk_abcdefgh", "psk_abcdefgh_", "psk_abcdefghXsecret", "psr_abcdefgh_secret"} {
		if _, ok := splitAPIKey(bad); ok {
			t.Errorf("splitAPIKey(%q) accepted a malformed key", bad)
		}
	}
}

func TestScopes_Has(t *testing.T) {
	s := Scopes{ScopeRead}
	if !s.Has(ScopeRead) || s.Has(ScopeSync) || (Scopes{}).Has(ScopeRead) {
		t.Fatal("Has answers wrongly")
	}
}
