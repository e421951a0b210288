package app_test

import (
	"strings"
	"testing"

	"github.com/panelsync/panelsync/app"
)

func TestConfig_CORSOrigins_AreExactOriginsCheckedAtStart(t *testing.T) {
	for _, ok := range []string{
		"",
		"https://console.example.com",
		"https://console.example.com, http://localhost:3000,https://[::1]:8443",
	} {
		cfg := app.DefaultConfig()
		cfg.CORSOrigins = ok
		if err := cfg.Validate(); err != nil {
			t.Errorf("--cors-origins %q refused: %v", ok, err)
		}
	}
	for _, bad := range []string{
		"*",
		"https://*.example.com",
		"https://console.example.com,*",
		"console.example.com",
		"ftp://console.example.com",
		"https://console.example.com/",
		"https://console.example.com/app",
		"https://console.example.com?x=1",
		"https://user@console.example.com",
		"https://console.example.com:notaport",
		"https://a.example.com,,https://b.example.com",
		"https://",
	} {
		cfg := app.DefaultConfig()
		cfg.CORSOrigins = bad
		err := cfg.Validate()
		if err == nil || !strings.Contains(err.Error(), "--cors-origins") {
			t.Errorf("--cors-origins %q: %v, want a refusal naming the setting", bad, err)
		}
	}
}
