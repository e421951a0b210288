package app_test

import (
	"strconv"
	"strings"
	"testing"
	"time"

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

func TestConfig_Ranks_AreDistinctRanksCheckedAtStart(t *testing.T) {
	for _, ok := range []string{"", "1", "1,2", " 3 , 1000", "0,7"} {
		cfg := app.DefaultConfig()
		cfg.Ranks = ok
		if err := cfg.Validate(); err != nil {
			t.Errorf("--ranks %q refused: %v", ok, err)
		}
	}
	var tooMany []string
	for r := range 33 {
		tooMany = append(tooMany, strconv.Itoa(r+1))
	}
	for _, bad := range []string{"1,1", "-1", "1001", "one", "1,,2", "1;2", "2.5", strings.Join(tooMany, ",")} {
		cfg := app.DefaultConfig()
		cfg.Ranks = bad
		err := cfg.Validate()
		if err == nil || !strings.Contains(err.Error(), "--ranks") {
			t.Errorf("--ranks %q: %v, want a refusal naming the setting", bad, err)
		}
	}
}

func TestConfig_DBTimeout_DefaultsTo5sAndIsCheckedAtStart(t *testing.T) {
	if got := app.DefaultConfig().DBTimeout; got != 5*time.Second {
		t.Errorf("--db-timeout defaults to %s, want 5s", got)
	}
	for _, v := range []time.Duration{100 * time.Millisecond, 5 * time.Second, 10 * time.Minute} {
		cfg := app.DefaultConfig()
		cfg.DBTimeout = v
		if err := cfg.Validate(); err != nil {
			t.Errorf("--db-timeout %s refused: %v", v, err)
		}
	}
	for _, v := range []time.Duration{0, -time.Second, 99 * time.Millisecond, 11 * time.Minute} {
		cfg := app.DefaultConfig()
		cfg.DBTimeout = v
		if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "--db-timeout") {
			t.Errorf("--db-timeout %s: %v, want a refusal naming the setting", v, err)
		}
	}
}
