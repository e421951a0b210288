package app_test

import (
	"os"
	"strings"
	"testing"

	"github.com/panelsync/panelsync/app"
)

// TestReadme_DocumentsEverySetting keeps the README's configuration table
// honest: every flag and variable the binary reads is listed there.
func TestReadme_DocumentsEverySetting(t *testing.T) {
	raw, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	readme := string(raw)
	var cfg app.Config
	for _, s := range cfg.Settings() {
		row := "| `--" + s.Flag + "` | `" + s.Env + "` |"
		if !strings.Contains(readme, row) {
			t.Errorf("README's configuration table lacks %s", row)
		}
	}
}
