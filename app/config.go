// Package app builds every part of panelsync once, starts them in order and
// stops them in reverse.
package app

import (
	"flag"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"gorm.io/gorm"

	"github.com/panelsync/panelsync/handlers"
	"github.com/panelsync/panelsync/models"
)

// Config is everything an operator can set, by flag or by the PANELSYNC_*
// variable named beside it. A flag wins over its variable.
type Config struct {
	// OnDatabaseOpen, when set, is given the database once it is open and
	// before the node uses it. Tests register their fault injection with
	// it, which cannot be added safely while statements run.
	OnDatabaseOpen func(*gorm.DB) error

	Addr              string
	DataDir           string
	DatabaseURL       string
	DBMaxOpenConns    int
	DBMaxIdleConns    int
	DBConnMaxLifetime time.Duration
	// DBTimeout bounds each request's database work, and each statement
	// of the node's own work that has no other bound.
	DBTimeout      time.Duration
	MigrateOnStart bool

	JWTSecret               string
	AccessTokenTTL          time.Duration
	RefreshTokenTTL         time.Duration
	BcryptCost              int
	LoginPerMinutePerClient float64
	LoginPerMinutePerEmail  float64
	LoginFreeFailures       int
	LoginBackoffMax         time.Duration

	NATSURL         string
	NodeID          string
	NodeHeartbeat   time.Duration
	Workers         int
	CommandTimeout  time.Duration
	CheckinInterval time.Duration
	// PanelLinkRate bounds the panel links a node takes a second.
	PanelLinkRate float64
	// PanelRelinkSpread is the window over which a stopping node's panels
	// are told to link again.
	PanelRelinkSpread time.Duration
	RunLease          time.Duration
	MaxAttempts       int
	RetryBase         time.Duration
	CodeDigestKey     string
	EventRetention    time.Duration
	// RealtimeWriterShare is the fewest live clients of one account that
	// get a fan-out writer of their own.
	RealtimeWriterShare int
	AccountRuns         int
	// Ranks lists the ranks whose runs this node takes besides rank 0,
	// which every node serves: "1,2".
	Ranks           string
	ScheduleTick    time.Duration
	UserChangeDelay time.Duration

	// SecretKey seals secrets kept at rest; OldSecretKeys (comma-separated)
	// still open what earlier keys sealed.
	SecretKey     string
	OldSecretKeys string
	SMTPURL       string
	MailFrom      string
	// PublicURL is where people reach the web console: mailed links start
	// with it.
	PublicURL       string
	MailRetryBase   time.Duration
	MailMaxAttempts int

	BodyLimit       int
	ProxyHeader     string
	CORSOrigins     string
	MetricsAddr     string
	ShutdownTimeout time.Duration
	LogLevel        string
	LogFormat       string
}

// Setting describes one configurable value, for flags, help and docs.
type Setting struct {
	Flag    string
	Env     string
	Default string
	Usage   string
	bind    func(fs *flag.FlagSet, name, def, usage string) error
}

// Settings lists every setting of c, bound to c's fields.
func (c *Config) Settings() []Setting {
	return []Setting{
		str(&c.Addr, "addr", ":8080", "address the HTTP server listens on"),
		str(&c.DataDir, "data-dir", "./data", "folder for the embedded database, generated secrets and demo files"),
		str(&c.DatabaseURL, "database-url", "", "MySQL/MariaDB DSN (user:pass@tcp(host:3306)/db or mysql://user:pass@host/db); empty uses embedded SQLite in the data dir"),
		integer(&c.DBMaxOpenConns, "db-max-open-conns", "20", "most open database connections"),
		integer(&c.DBMaxIdleConns, "db-max-idle-conns", "10", "most idle database connections kept"),
		duration(&c.DBConnMaxLifetime, "db-conn-max-lifetime", "30m", "how long a database connection is reused"),
		duration(&c.DBTimeout, "db-timeout", "5s", "longest a request waits on the database, and connecting to MySQL; past it the request answers 503 service_unavailable with Retry-After (an upload gets 1s more per MiB). Each statement of the node's own work, and each MySQL read and write, may take twice this, at least 30s; --database-url's own timeout, readTimeout and writeTimeout win"),
		boolean(&c.MigrateOnStart, "migrate-on-start", "true", "apply pending migrations when serve starts"),
		str(&c.JWTSecret, "jwt-secret", "", "access-token signing secret, at least 32 bytes; empty generates one and keeps it in the data dir"),
		duration(&c.AccessTokenTTL, "access-token-ttl", "15m", "lifetime of access tokens"),
		duration(&c.RefreshTokenTTL, "refresh-token-ttl", "720h", "lifetime of a session's refresh tokens"),
		integer(&c.BcryptCost, "bcrypt-cost", "12", "bcrypt cost for password hashes (4 to 31)"),
		float(&c.LoginPerMinutePerClient, "login-rate-per-client", "20", "login attempts per minute allowed from one client address, whatever the e-mail (0: no limit)"),
		float(&c.LoginPerMinutePerEmail, "login-rate-per-email", "5", "failed logins per minute for one e-mail from all client addresses together past which each address that failed may try it only once a second; never a refusal, so the right password still signs in (0: no ceiling)"),
		integer(&c.LoginFreeFailures, "login-free-failures", "5", "failed logins for one e-mail from one client address before each further attempt from there waits 1s, then twice as long after each failure; a success clears them"),
		duration(&c.LoginBackoffMax, "login-backoff-max", "15m", "longest wait between login attempts for one e-mail from one client address after repeated failures"),
		str(&c.NATSURL, "nats-url", "", "URL of an external NATS server or cluster; empty runs one embedded in the process"),
		str(&c.NodeID, "node-id", "", "name of this node in logs and the panels table; empty derives one from the host name"),
		duration(&c.NodeHeartbeat, "node-heartbeat", "10s", "how often this node records that it is alive; the panels of a node silent for three heartbeats are marked disconnected"),
		integer(&c.Workers, "workers", "8", "sync runs this node executes at once"),
		duration(&c.CommandTimeout, "command-timeout", "30s", "how long a panel has to answer one command"),
		duration(&c.CheckinInterval, "checkin-interval", "30m", "how often panels are told to check in"),
		float(&c.PanelLinkRate, "panel-link-rate", "1000", "panel links this node takes a second; the links past it (a fleet reconnecting at once), and those that arrive while a second's links are still waiting for the database, are answered 503 with a Retry-After that spreads them over the time the node needs"),
		duration(&c.PanelRelinkSpread, "panel-relink-spread", "10s", "when this node stops, each of its panels is told to link again (to another node, or to this one restarted) at a random point of this window, so that they do not all come back at once"),
		duration(&c.RunLease, "run-lease", "30s", "how long a claimed run stays a worker's without renewal; a crashed worker's runs are taken over after it"),
		integer(&c.MaxAttempts, "max-attempts", "3", "attempts of a run whose panel times out or is away before it is a Sync Failure"),
		duration(&c.RetryBase, "retry-base", "2s", "wait before the first retry; it doubles each attempt, with jitter"),
		str(&c.CodeDigestKey, "code-digest-key", "", "key of the digests that stand in for user codes, at least 32 bytes; empty generates one and keeps it in the data dir"),
		str(&c.SecretKey, "secret-key", "", "key that seals secrets kept at rest (mail bodies, imported user codes), at least 32 bytes; empty generates one and keeps it in the data dir"),
		str(&c.OldSecretKeys, "old-secret-keys", "", "comma-separated keys that --secret-key replaced: what they sealed still opens, nothing new is sealed with them"),
		str(&c.SMTPURL, "smtp-url", "", "SMTP server for outgoing mail: smtp://user:pass@host:587 (STARTTLS when offered; ?starttls=required or ?starttls=none) or smtps://user:pass@host:465; empty writes mail as .eml files to outbox/ in the data dir"),
		str(&c.MailFrom, "mail-from", "panelsync <no-reply@localhost>", "sender address of outgoing mail"),
		str(&c.PublicURL, "public-url", "http://localhost:8080", "address people open the web console at; links in invitation and password-reset mails start with it"),
		duration(&c.MailRetryBase, "mail-retry-base", "30s", "longest wait before a mail's first retry; it doubles each attempt up to 1h, and the wait is drawn at random below it"),
		integer(&c.MailMaxAttempts, "mail-max-attempts", "12", "attempts at sending a mail before it is marked failed"),
		integer(&c.AccountRuns, "account-concurrency", "16", "most runs one account has in flight across all nodes, so one account's batch leaves room for the others (0: no cap)"),
		str(&c.Ranks, "ranks", "", "comma-separated ranks (0 to 1000, each once, at most 32) whose locations' runs this node takes, besides rank 0, which every node serves; empty serves rank 0 only"),
		duration(&c.ScheduleTick, "schedule-tick", "30s", "how often each node looks for due scheduled syncs"),
		duration(&c.UserChangeDelay, "user-change-delay", "30s", "how long after the last user changed at a panel's keypad its incremental users sync starts, so that a burst of edits gives one sync"),
		duration(&c.EventRetention, "event-retention", "720h", "how long Event Log entries are kept; a realtime client resuming from before that is told to reload"),
		integer(&c.RealtimeWriterShare, "realtime-writer-share", "256", "fewest realtime clients of one account given a writer of their own: a larger audience is written by up to one writer per core"),
		integer(&c.BodyLimit, "body-limit", "1048576", "largest request body accepted, in bytes"),
		str(&c.MetricsAddr, "metrics-addr", "127.0.0.1:9090", "address of a listener of its own that serves Prometheus metrics at /metrics, kept off the API's; empty or off serves none"),
		str(&c.CORSOrigins, "cors-origins", "", "comma-separated origins (scheme://host[:port]) whose web pages may call the API from a browser; * is refused; empty allows no cross-origin access"),
		str(&c.ProxyHeader, "proxy-header", "", "header a trusted reverse proxy sets to the client address (such as X-Forwarded-For); empty trusts the socket address"),
		duration(&c.ShutdownTimeout, "shutdown-timeout", "15s", "how long shutdown waits for requests in flight"),
		str(&c.LogLevel, "log-level", "info", "debug, info, warn or error"),
		str(&c.LogFormat, "log-format", "json", "json or text"),
	}
}

// EnvName is the variable that sets the flag name.
func EnvName(flagName string) string {
	return "PANELSYNC_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// Bind registers the settings on fs with defaults taken from the
// environment. A variable that does not parse is an error.
func Bind(fs *flag.FlagSet, settings []Setting, getenv func(string) string) error {
	for _, s := range settings {
		def := s.Default
		if v := getenv(s.Env); v != "" {
			def = v
		}
		if err := s.bind(fs, s.Flag, def, fmt.Sprintf("%s (env %s)", s.Usage, s.Env)); err != nil {
			return fmt.Errorf("%s=%q: %w", s.Env, def, err)
		}
	}
	return nil
}

func setting(name, def, usage string, bind func(fs *flag.FlagSet, name, def, usage string) error) Setting {
	return Setting{Flag: name, Env: EnvName(name), Default: def, Usage: usage, bind: bind}
}

func str(p *string, name, def, usage string) Setting {
	return setting(name, def, usage, func(fs *flag.FlagSet, name, def, usage string) error {
		fs.StringVar(p, name, def, usage)
		return nil
	})
}

func integer(p *int, name, def, usage string) Setting {
	return setting(name, def, usage, func(fs *flag.FlagSet, name, def, usage string) error {
		v, err := strconv.Atoi(def)
		if err != nil {
			return fmt.Errorf("not an integer")
		}
		fs.IntVar(p, name, v, usage)
		return nil
	})
}

func float(p *float64, name, def, usage string) Setting {
	return setting(name, def, usage, func(fs *flag.FlagSet, name, def, usage string) error {
		v, err := strconv.ParseFloat(def, 64)
		if err != nil {
			return fmt.Errorf("not a number")
		}
		fs.Float64Var(p, name, v, usage)
		return nil
	})
}

func boolean(p *bool, name, def, usage string) Setting {
	return setting(name, def, usage, func(fs *flag.FlagSet, name, def, usage string) error {
		v, err := strconv.ParseBool(def)
		if err != nil {
			return fmt.Errorf("not true or false")
		}
		fs.BoolVar(p, name, v, usage)
		return nil
	})
}

func duration(p *time.Duration, name, def, usage string) Setting {
	return setting(name, def, usage, func(fs *flag.FlagSet, name, def, usage string) error {
		v, err := time.ParseDuration(def)
		if err != nil {
			return fmt.Errorf("not a duration such as 30s or 15m")
		}
		fs.DurationVar(p, name, v, usage)
		return nil
	})
}

// Validate checks values that parse but make no sense.
func (c *Config) Validate() error {
	switch {
	case c.DataDir == "":
		return fmt.Errorf("--data-dir must not be empty")
	case c.JWTSecret != "" && len(c.JWTSecret) < 32:
		return fmt.Errorf("--jwt-secret must be at least 32 bytes")
	case c.AccessTokenTTL < time.Minute:
		return fmt.Errorf("--access-token-ttl must be at least 1m")
	case c.RefreshTokenTTL < c.AccessTokenTTL:
		return fmt.Errorf("--refresh-token-ttl must be at least --access-token-ttl")
	case c.BcryptCost < 4 || c.BcryptCost > 31:
		return fmt.Errorf("--bcrypt-cost must be between 4 and 31")
	case c.LoginPerMinutePerClient < 0 || c.LoginPerMinutePerEmail < 0:
		return fmt.Errorf("--login-rate-per-client and --login-rate-per-email must not be negative")
	case c.LoginFreeFailures < 0:
		return fmt.Errorf("--login-free-failures must not be negative")
	case c.LoginBackoffMax < time.Second:
		return fmt.Errorf("--login-backoff-max must be at least 1s")
	case c.DBTimeout < 100*time.Millisecond || c.DBTimeout > 10*time.Minute:
		return fmt.Errorf("--db-timeout must be between 100ms and 10m")
	case c.BodyLimit < 1024:
		return fmt.Errorf("--body-limit must be at least 1024 bytes")
	case c.LogFormat != "json" && c.LogFormat != "text":
		return fmt.Errorf("--log-format must be json or text")
	case c.Workers < 1 || c.Workers > 1024:
		return fmt.Errorf("--workers must be between 1 and 1024")
	case c.CommandTimeout < 100*time.Millisecond:
		return fmt.Errorf("--command-timeout must be at least 100ms")
	case c.CheckinInterval < time.Second:
		return fmt.Errorf("--checkin-interval must be at least 1s")
	case c.PanelLinkRate < 1 || c.PanelLinkRate > 100000:
		return fmt.Errorf("--panel-link-rate must be between 1 and 100000 links a second")
	case c.PanelRelinkSpread < time.Second || c.PanelRelinkSpread > 10*time.Minute:
		return fmt.Errorf("--panel-relink-spread must be between 1s and 10m")
	case c.RunLease < time.Second:
		return fmt.Errorf("--run-lease must be at least 1s")
	case c.MaxAttempts < 1 || c.MaxAttempts > 20:
		return fmt.Errorf("--max-attempts must be between 1 and 20")
	case c.RetryBase < 10*time.Millisecond:
		return fmt.Errorf("--retry-base must be at least 10ms")
	case c.AccountRuns < 0:
		return fmt.Errorf("--account-concurrency must not be negative")
	case c.ScheduleTick < 100*time.Millisecond:
		return fmt.Errorf("--schedule-tick must be at least 100ms")
	case c.UserChangeDelay < 100*time.Millisecond:
		return fmt.Errorf("--user-change-delay must be at least 100ms")
	case c.EventRetention < time.Hour:
		return fmt.Errorf("--event-retention must be at least 1h")
	case c.NodeHeartbeat < 100*time.Millisecond:
		return fmt.Errorf("--node-heartbeat must be at least 100ms")
	case c.RealtimeWriterShare < 1:
		return fmt.Errorf("--realtime-writer-share must be at least 1")
	case c.CodeDigestKey != "" && len(c.CodeDigestKey) < 32:
		return fmt.Errorf("--code-digest-key must be at least 32 bytes")
	}
	if _, err := parseLevel(c.LogLevel); err != nil {
		return err
	}
	if _, err := c.ranks(); err != nil {
		return err
	}
	if addr := c.metricsAddr(); addr != "" {
		if _, _, err := net.SplitHostPort(addr); err != nil {
			return fmt.Errorf("--metrics-addr must be host:port, empty or off: %w", err)
		}
	}
	if _, err := handlers.ParseOrigins(c.CORSOrigins); err != nil {
		return fmt.Errorf("--cors-origins: %w", err)
	}
	return c.validateMail()
}

// metricsAddr returns where metrics are served, or "" for nowhere. "off"
// exists because an empty variable cannot be told from an unset one.
func (c *Config) metricsAddr() string {
	if c.MetricsAddr == "off" {
		return ""
	}
	return c.MetricsAddr
}

// ranks returns the ranks this node serves besides 0. Rank 0 may be
// listed, though it changes nothing.
func (c *Config) ranks() ([]int, error) {
	ranks, err := models.ParseRanks(c.Ranks)
	if err != nil {
		return nil, fmt.Errorf("--ranks must list up to %d ranks from 0 to %d, each once, separated by commas: %w", models.MaxNodeRanks, models.MaxRank, err)
	}
	return ranks, nil
}

// SQLitePath is the embedded database file inside the data dir.
func (c *Config) SQLitePath() string { return filepath.Join(c.DataDir, "panelsync.db") }

// DatabaseLabel names the backend for logs, without credentials.
func (c *Config) DatabaseLabel() string {
	if c.DatabaseURL != "" {
		return "mysql"
	}
	return "sqlite " + c.SQLitePath()
}

// signingKey returns the configured JWT secret, or the one generated in the
// data dir on first start and reused after, so tokens survive a restart.
func (c *Config) signingKey() ([]byte, error) {
	if c.JWTSecret != "" {
		return []byte(c.JWTSecret), nil
	}
	return loadOrCreateSecret(filepath.Join(c.DataDir, "secrets", "jwt-signing.key"))
}

// codeDigestKey returns the configured key for user-code digests, or the
// one generated in the data dir.
func (c *Config) codeDigestKey() ([]byte, error) {
	if c.CodeDigestKey != "" {
		return []byte(c.CodeDigestKey), nil
	}
	return loadOrCreateSecret(filepath.Join(c.DataDir, "secrets", "code-digest.key"))
}

// nodeID returns the configured node name, or the host name with a random
// suffix so two processes on one host differ.
func (c *Config) nodeID() string {
	if c.NodeID != "" {
		return c.NodeID
	}
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "node"
	}
	return host + "-" + randomHex(3)
}

func loadOrCreateSecret(path string) ([]byte, error) {
	if b, err := os.ReadFile(path); err == nil {
		key := []byte(strings.TrimSpace(string(b)))
		if len(key) < 32 {
			return nil, fmt.Errorf("secret in %s is shorter than 32 bytes", path)
		}
		return key, nil
	} else if !os.IsNotExist(err) {
		return nil, fmt.Errorf("read secret: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("create secrets folder: %w", err)
	}
	key := []byte(randomHex(32))
	// O_EXCL makes two processes starting at once agree on one secret: the
	// loser reads the winner's file.
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if os.IsExist(err) {
		return loadOrCreateSecret(path)
	}
	if err != nil {
		return nil, fmt.Errorf("create secret: %w", err)
	}
	if _, err := f.Write(append(key, '\n')); err != nil {
		f.Close()
		return nil, fmt.Errorf("write secret: %w", err)
	}
	return key, f.Close()
}

// DefaultConfig returns every setting at its default, ignoring the
// environment: the base that tests and tools adjust.
func DefaultConfig() Config {
	var c Config
	fs := flag.NewFlagSet("defaults", flag.ContinueOnError)
	// The defaults are literals in Settings and always parse.
	_ = Bind(fs, c.Settings(), func(string) string { return "" })
	return c
}
