package app

import (
	"fmt"
	netmail "net/mail"
	"net/url"
	"path/filepath"
	"strings"
	"time"

	"github.com/panelsync/panelsync/auth"
	"github.com/panelsync/panelsync/mail"
)

// validateMail checks the mail and sealing settings, without touching the
// network or the disk.
func (c *Config) validateMail() error {
	switch {
	case c.SecretKey != "" && len(c.SecretKey) < auth.MinSealKeyBytes:
		return fmt.Errorf("--secret-key must be at least %d bytes", auth.MinSealKeyBytes)
	case c.MailRetryBase < 10*time.Millisecond:
		return fmt.Errorf("--mail-retry-base must be at least 10ms")
	case c.MailMaxAttempts < 1 || c.MailMaxAttempts > 50:
		return fmt.Errorf("--mail-max-attempts must be between 1 and 50")
	}
	for _, k := range c.oldSecretKeys() {
		if len(k) < auth.MinSealKeyBytes {
			return fmt.Errorf("--old-secret-keys: each key must be at least %d bytes", auth.MinSealKeyBytes)
		}
	}
	if u, err := url.Parse(c.PublicURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		return fmt.Errorf("--public-url %q must be an http or https address such as https://panelsync.example.com", c.PublicURL)
	}
	if _, err := netmail.ParseAddress(c.MailFrom); err != nil || strings.ContainsAny(c.MailFrom, "\r\n") {
		return fmt.Errorf("--mail-from %q is not an address such as \"panelsync <no-reply@example.com>\"", c.MailFrom)
	}
	if c.SMTPURL != "" {
		if _, err := mail.NewSMTPTransport(c.SMTPURL, c.MailFrom); err != nil {
			return fmt.Errorf("--smtp-url: %w", err)
		}
	}
	return nil
}

func (c *Config) oldSecretKeys() []string {
	var keys []string
	for k := range strings.SplitSeq(c.OldSecretKeys, ",") {
		if k = strings.TrimSpace(k); k != "" {
			keys = append(keys, k)
		}
	}
	return keys
}

// OutboxDir is where mail is written when no SMTP server is configured.
func (c *Config) OutboxDir() string { return filepath.Join(c.DataDir, "outbox") }

// sealer returns the Sealer for secrets at rest: the configured key, or
// the one generated in the data dir on first start and reused after, so
// what was sealed still opens after a restart.
func (c *Config) sealer() (*auth.Sealer, error) {
	key := []byte(c.SecretKey)
	if c.SecretKey == "" {
		var err error
		if key, err = loadOrCreateSecret(filepath.Join(c.DataDir, "secrets", "secret.key")); err != nil {
			return nil, err
		}
	}
	var older []auth.KeyEntry
	for _, k := range c.oldSecretKeys() {
		older = append(older, auth.KeyEntry{Secret: []byte(k)})
	}
	return auth.NewSealer(auth.KeyEntry{Secret: key}, older...)
}

// buildMail builds the sealer and the mail queue with its transport: SMTP
// when a server is configured, the outbox folder otherwise.
func (a *App) buildMail() error {
	sealer, err := a.cfg.sealer()
	if err != nil {
		return err
	}
	var transport mail.Transport
	if a.cfg.SMTPURL != "" {
		smtp, err := mail.NewSMTPTransport(a.cfg.SMTPURL, a.cfg.MailFrom)
		if err != nil {
			return fmt.Errorf("--smtp-url: %w", err)
		}
		transport, a.mailVia = smtp, smtp.String()
	} else {
		outbox, err := mail.NewOutboxTransport(a.cfg.OutboxDir(), a.cfg.MailFrom)
		if err != nil {
			return err
		}
		transport, a.mailVia, a.outbox = outbox, outbox.String(), outbox.Dir()
	}
	a.sealer = sealer
	a.mail = mail.NewQueue(mail.Config{
		Owner:       a.nodeID,
		Transport:   transport,
		Sealer:      sealer,
		Logger:      a.log,
		RetryBase:   a.cfg.MailRetryBase,
		MaxAttempts: a.cfg.MailMaxAttempts,
		Metrics:     mail.NewMetrics(a.registry),
	}, a.store)
	return nil
}

// startMail runs the mail sender under the node's background work, until
// Close.
func (a *App) startMail() {
	a.background.Add(1)
	go func() {
		defer a.background.Done()
		a.mail.Run(a.base)
	}()
	a.log.Info("mail sender started", "via", a.mailVia)
}

// Mail returns the node's mail queue.
func (a *App) Mail() *mail.Queue { return a.mail }

// Sealer returns the node's sealer for secrets at rest.
func (a *App) Sealer() *auth.Sealer { return a.sealer }

// Outbox returns the folder mail is written to, or "" when it is sent
// over SMTP.
func (a *App) Outbox() string { return a.outbox }
