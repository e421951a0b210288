package app_test

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/panelsync/panelsync/app"
	"github.com/panelsync/panelsync/mail"
	"github.com/panelsync/panelsync/models/dbtest"
)

func TestApp_MailQueuedBeforeARestart_IsWrittenToTheOutboxAfterIt(t *testing.T) {
	for _, b := range dbtest.Backends(t) {
		t.Run(b.Name, func(t *testing.T) {
			ctx := context.Background()
			cfg := app.DefaultConfig()
			cfg.Addr, cfg.DataDir, cfg.DatabaseURL, cfg.BcryptCost = "127.0.0.1:0", t.TempDir(), b.Config.MySQLDSN, 4
			start := func() *app.App {
				t.Helper()
				a, err := app.New(ctx, cfg, slog.New(slog.DiscardHandler))
				if err != nil {
					t.Fatal(err)
				}
				return a
			}

			// The first node queues the mail and stops before sending it.
			first := start()
			msg := mail.Message{To: "ada@example.com", Subject: "Reset your password", Text: "https://panelsync.test/reset?token=psr_x", Kind: "password_reset"}
			err := first.Store().Tx(ctx, func(ctx context.Context) error { return first.Mail().Enqueue(ctx, msg) })
			if err != nil {
				t.Fatal(err)
			}
			if err := first.Close(); err != nil {
				t.Fatal(err)
			}
			info, err := os.Stat(filepath.Join(cfg.DataDir, "secrets", "secret.key"))
			if err != nil {
				t.Fatalf("no sealing key was generated: %v", err)
			}
			if mode := info.Mode().Perm(); mode != 0o600 {
				t.Errorf("the generated sealing key has mode %o, want 600", mode)
			}

			// The next node opens it with the key kept in the data dir.
			second := start()
			defer second.Close()
			if second.Outbox() != cfg.OutboxDir() {
				t.Fatalf("Outbox() = %q, want %q", second.Outbox(), cfg.OutboxDir())
			}
			if err := second.Start(); err != nil {
				t.Fatal(err)
			}
			var files []os.DirEntry
			deadline := time.Now().Add(20 * time.Second)
			for len(files) == 0 {
				if time.Now().After(deadline) {
					t.Fatal("the mail queued before the restart never reached the outbox")
				}
				time.Sleep(10 * time.Millisecond)
				if files, err = os.ReadDir(second.Outbox()); err != nil {
					t.Fatal(err)
				}
				files = eml(files)
			}
			raw, err := os.ReadFile(filepath.Join(second.Outbox(), files[0].Name()))
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(string(raw), "To: <ada@example.com>") || !strings.Contains(string(raw), "Reset your password") {
				t.Fatalf("outbox file lacks the recipient or subject:\n%s", raw)
			}
		})
	}
}

// eml keeps the finished .eml files of an outbox listing.
func eml(entries []os.DirEntry) []os.DirEntry {
	var out []os.DirEntry
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), ".eml") && !strings.HasPrefix(e.Name(), ".") {
			out = append(out, e)
		}
	}
	return out
}

func TestConfig_MailSettings_AreCheckedAtStart(t *testing.T) {
	cases := []struct {
		name string
		set  func(*app.Config)
		want string
	}{
		{"short secret key", func(c *app.Config) { c.SecretKey = "short" }, "--secret-key"},
		{"short old secret key", func(c *app.Config) { c.OldSecretKeys = strings.Repeat("k", 32) + ",short" }, "--old-secret-keys"},
		{"sender that is not an address", func(c *app.Config) { c.MailFrom = "panelsync" }, "--mail-from"},
		{"sender with a line break", func(c *app.Config) { c.MailFrom = "a@example.com\r\nBcc: b@example.com" }, "--mail-from"},
		{"SMTP URL of another scheme", func(c *app.Config) { c.SMTPURL = "http://mail.example.com" }, "--smtp-url"},
		{"SMTP URL with an unknown option", func(c *app.Config) { c.SMTPURL = "smtp://mail.example.com?tls=yes" }, "--smtp-url"},
		{"no attempts", func(c *app.Config) { c.MailMaxAttempts = 0 }, "--mail-max-attempts"},
		{"retry base too short", func(c *app.Config) { c.MailRetryBase = time.Millisecond }, "--mail-retry-base"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg := app.DefaultConfig()
			cfg.DataDir = t.TempDir()
			c.set(&cfg)
			err := cfg.Validate()
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("Validate = %v, want an error naming %s", err, c.want)
			}
		})
	}
	cfg := app.DefaultConfig()
	cfg.SMTPURL = "smtps://user:pass@mail.example.com:465"
	if err := cfg.Validate(); err != nil {
		t.Fatalf("a good SMTP URL was refused: %v", err)
	}
}
