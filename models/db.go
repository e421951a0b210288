package models

import (
	"context"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/glebarez/sqlite"
	gomysql "github.com/go-sql-driver/mysql"
	"gorm.io/driver/mysql"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"
)

// DBConfig selects and tunes the database.
type DBConfig struct {
	// MySQLDSN selects MySQL/MariaDB when set; either the driver's form
	// (user:pass@tcp(host:3306)/db) or a URL (mysql://user:pass@host/db).
	MySQLDSN string
	// SQLitePath is the embedded database file used when MySQLDSN is empty.
	SQLitePath      string
	MaxOpenConns    int
	MaxIdleConns    int
	ConnMaxLifetime time.Duration
	// SlowQuery is the duration past which a query is logged.
	SlowQuery time.Duration
	Logger    *slog.Logger
}

// Open connects to the configured database. Times are stored and read in
// UTC on both backends.
func Open(ctx context.Context, cfg DBConfig) (*gorm.DB, error) {
	var dialector gorm.Dialector
	if cfg.MySQLDSN != "" {
		dsn, err := NormalizeMySQLDSN(cfg.MySQLDSN)
		if err != nil {
			return nil, err
		}
		dialector = mysql.New(mysql.Config{DSN: dsn})
	} else {
		if cfg.SQLitePath == "" {
			return nil, fmt.Errorf("open database: neither a MySQL DSN nor an SQLite path is set")
		}
		if err := os.MkdirAll(filepath.Dir(cfg.SQLitePath), 0o700); err != nil {
			return nil, fmt.Errorf("create database folder: %w", err)
		}
		// WAL lets readers run beside the single writer; busy_timeout makes
		// a second writer wait instead of failing; BEGIN IMMEDIATE takes the
		// write lock up front so two read-then-write transactions cannot
		// deadlock on the upgrade.
		dsn := "file:" + cfg.SQLitePath + "?_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)&_pragma=foreign_keys(1)&_pragma=synchronous(NORMAL)&_txlock=immediate"
		dialector = sqlite.Open(dsn)
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	slow := cfg.SlowQuery
	if slow == 0 {
		slow = 500 * time.Millisecond
	}
	db, err := gorm.Open(dialector, &gorm.Config{
		NowFunc:                func() time.Time { return time.Now().UTC() },
		SkipDefaultTransaction: true,
		TranslateError:         true,
		Logger:                 newGormLogger(log, slow),
	})
	if err != nil {
		return nil, fmt.Errorf("open %s database: %w", dialectorName(cfg), err)
	}
	sqlDB, err := db.DB()
	if err != nil {
		return nil, err
	}
	if cfg.MySQLDSN == "" {
		// SQLite allows one writer; more open connections only queue on
		// its lock, while a few let reads proceed beside a write.
		sqlDB.SetMaxOpenConns(max(1, min(cfg.MaxOpenConns, 4)))
	} else if cfg.MaxOpenConns > 0 {
		sqlDB.SetMaxOpenConns(cfg.MaxOpenConns)
	}
	if cfg.MaxIdleConns > 0 {
		sqlDB.SetMaxIdleConns(cfg.MaxIdleConns)
	}
	if cfg.ConnMaxLifetime > 0 {
		sqlDB.SetConnMaxLifetime(cfg.ConnMaxLifetime)
	}
	if err := sqlDB.PingContext(ctx); err != nil {
		_ = sqlDB.Close()
		return nil, fmt.Errorf("reach %s database: %w", dialectorName(cfg), err)
	}
	return db, nil
}

func dialectorName(cfg DBConfig) string {
	if cfg.MySQLDSN != "" {
		return "mysql"
	}
	return "sqlite"
}

// IsMySQL reports whether db talks to MySQL or MariaDB.
func IsMySQL(db *gorm.DB) bool { return db.Dialector.Name() == "mysql" }

// NormalizeMySQLDSN accepts the driver's DSN form or a mysql:// URL and
// returns the driver's form with the options this service relies on: times
// parsed as UTC, a full Unicode character set, and arguments interpolated
// on the client.
func NormalizeMySQLDSN(raw string) (string, error) {
	var cfg *gomysql.Config
	if strings.HasPrefix(raw, "mysql://") {
		u, err := url.Parse(raw)
		if err != nil {
			return "", fmt.Errorf("parse MySQL URL: %w", err)
		}
		cfg = gomysql.NewConfig()
		cfg.User = u.User.Username()
		cfg.Passwd, _ = u.User.Password()
		cfg.Net = "tcp"
		cfg.Addr = u.Host
		if u.Port() == "" {
			cfg.Addr = u.Host + ":3306"
		}
		cfg.DBName = strings.TrimPrefix(u.Path, "/")
		for k, v := range u.Query() {
			if cfg.Params == nil {
				cfg.Params = map[string]string{}
			}
			cfg.Params[k] = v[0]
		}
	} else {
		var err error
		cfg, err = gomysql.ParseDSN(raw)
		if err != nil {
			return "", fmt.Errorf("parse MySQL DSN: %w", err)
		}
	}
	cfg.ParseTime = true
	cfg.Loc = time.UTC
	// Arguments are written into each statement on the client (safely:
	// the character set is utf8mb4) instead of preparing, executing and
	// closing a server-side statement for every query: one round trip a
	// statement instead of three, which counts most in transactions that
	// hold a hot row's lock, such as an account's Event Log counter.
	cfg.InterpolateParams = true
	if cfg.Params == nil {
		cfg.Params = map[string]string{}
	}
	if _, ok := cfg.Params["charset"]; !ok {
		cfg.Params["charset"] = "utf8mb4"
	}
	return cfg.FormatDSN(), nil
}

// newGormLogger logs slow queries and errors through slog, except "record
// not found" and unique-key violations: both are answers the store asks
// for and turns into results (not_found, a deduplicated tap, a conflict),
// so logging them as errors would cry wolf on every duplicate tap. Nor
// deadlocks and lock wait timeouts: Tx runs the transaction again and
// logs that itself. Queries
// are logged with placeholders, never with their values, so no secret or
// digest reaches a log line.
func newGormLogger(log *slog.Logger, slow time.Duration) logger.Interface {
	return expectedErrorsQuiet{logger.NewSlogLogger(log, logger.Config{
		SlowThreshold:             slow,
		LogLevel:                  logger.Warn,
		IgnoreRecordNotFoundError: true,
		ParameterizedQueries:      true,
	})}
}

// expectedErrorsQuiet passes a statement that failed on a unique key or
// lost a lock race to its logger as if it had not failed, so that it is
// still logged when it was slow.
type expectedErrorsQuiet struct {
	logger.Interface
}

func (l expectedErrorsQuiet) LogMode(level logger.LogLevel) logger.Interface {
	return expectedErrorsQuiet{l.Interface.LogMode(level)}
}

func (l expectedErrorsQuiet) Trace(ctx context.Context, begin time.Time, fc func() (string, int64), err error) {
	if isDuplicate(err) || isRetryableLock(err) {
		err = nil
	}
	l.Interface.Trace(ctx, begin, fc, err)
}
