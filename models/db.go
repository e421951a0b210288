package models

import (
	"context"
	"errors"
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
	// Timeout bounds connecting to MySQL and a request's database work
	// (the caller puts it on the request's context); zero is
	// DefaultTimeout.
	Timeout time.Duration
	// StatementTimeout bounds each statement whose context carries no
	// deadline of its own, the node's background work; zero is
	// IOTimeout(Timeout).
	StatementTimeout time.Duration
	// SlowQuery is the duration past which a query is logged.
	SlowQuery time.Duration
	Logger    *slog.Logger
}

// DefaultTimeout is how long database work may take when nothing sets
// another bound: a database that does not answer within it is reported
// unavailable rather than waited for.
const DefaultTimeout = 5 * time.Second

// connMaxIdleTime closes pooled connections left unused this long. A
// connection that sat idle through an outage (a firewall that forgot it, a
// server that restarted) is then replaced rather than tried first.
const connMaxIdleTime = 5 * time.Minute

// Open connects to the configured database. Times are stored and read in
// UTC on both backends.
func Open(ctx context.Context, cfg DBConfig) (*gorm.DB, error) {
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.StatementTimeout <= 0 {
		cfg.StatementTimeout = IOTimeout(cfg.Timeout)
	}
	var dialector gorm.Dialector
	if cfg.MySQLDSN != "" {
		dsn, err := NormalizeMySQLDSN(cfg.MySQLDSN, cfg.Timeout)
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
		dsn := "file:" + cfg.SQLitePath + fmt.Sprintf("?_pragma=busy_timeout(%d)", sqliteBusyTimeout.Milliseconds()) +
			"&_pragma=journal_mode(WAL)&_pragma=foreign_keys(1)&_pragma=synchronous(NORMAL)&_txlock=immediate"
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
	if err := boundStatements(db, cfg.StatementTimeout); err != nil {
		return nil, err
	}
	if cfg.MySQLDSN == "" {
		if err := db.Use(&writeGate{lock: make(chan struct{}, 1), wait: sqliteBusyTimeout}); err != nil {
			return nil, fmt.Errorf("queue the SQLite database's writes: %w", err)
		}
	}
	sqlDB, err := db.DB()
	if err != nil {
		return nil, err
	}
	sqlDB.SetConnMaxIdleTime(connMaxIdleTime)
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
	pingCtx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	defer cancel()
	if err := sqlDB.PingContext(pingCtx); err != nil {
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
// parsed as UTC, a full Unicode character set, arguments interpolated on
// the client, and timeouts. Connecting is bounded by bound; each read and
// write on a connection by ioTimeout(bound), so that a connection left
// waiting on a server that froze or a network that dropped its packets
// fails and leaves the pool, rather than holding a slot for as long as the
// operating system keeps a dead TCP connection. A timeout the DSN sets
// itself is kept.
func NormalizeMySQLDSN(raw string, bound time.Duration) (string, error) {
	if strings.HasPrefix(raw, "mysql://") {
		dsn, err := urlToDriverDSN(raw)
		if err != nil {
			return "", err
		}
		raw = dsn
	}
	cfg, err := gomysql.ParseDSN(raw)
	if err != nil {
		return "", fmt.Errorf("parse MySQL DSN: %w", err)
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
	if cfg.Timeout == 0 {
		cfg.Timeout = bound
	}
	if cfg.ReadTimeout == 0 {
		cfg.ReadTimeout = IOTimeout(bound)
	}
	if cfg.WriteTimeout == 0 {
		cfg.WriteTimeout = IOTimeout(bound)
	}
	return cfg.FormatDSN(), nil
}

// IOTimeout is how long one read or write on a MySQL connection may wait,
// and one statement of background work, for a request bound of bound. It
// is a backstop under the requests' deadlines, so it is longer than they
// are, and long enough that work which is only slow (a statement waiting
// its turn for a lock, SQLite on a machine whose CPUs are all busy) is not
// cut off as if the database were gone.
func IOTimeout(bound time.Duration) time.Duration {
	return max(30*time.Second, 2*bound)
}

// urlToDriverDSN rewrites a mysql:// URL in the driver's form, its query
// kept as the driver's parameters, so that driver options given in the URL
// (timeouts, TLS) mean what they mean in the driver's own form.
func urlToDriverDSN(raw string) (string, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return "", fmt.Errorf("parse MySQL URL: %w", err)
	}
	cfg := gomysql.NewConfig()
	cfg.User = u.User.Username()
	cfg.Passwd, _ = u.User.Password()
	cfg.Net = "tcp"
	cfg.Addr = u.Host
	if u.Port() == "" {
		cfg.Addr = u.Host + ":3306"
	}
	cfg.DBName = strings.TrimPrefix(u.Path, "/")
	dsn := cfg.FormatDSN()
	if u.RawQuery == "" {
		return dsn, nil
	}
	sep := "?"
	if strings.Contains(dsn[strings.LastIndex(dsn, "/"):], "?") {
		sep = "&"
	}
	return dsn + sep + u.RawQuery, nil
}

// unboundedKey marks a context whose statements may run past the
// statement bound.
type unboundedKey struct{}

// Unbounded returns ctx with its statements exempt from the bound Open
// puts on statements without a deadline: for migrations, whose statements
// (an index built on a large table) may rightly run for minutes.
func Unbounded(ctx context.Context) context.Context {
	return context.WithValue(ctx, unboundedKey{}, true)
}

// boundStatements gives every statement whose context has no deadline one
// of bound, so that background work (heartbeats, claims, retention) run on
// a context that never ends still cannot wait on the database for ever:
// not for a connection from the pool, nor on SQLite, nor for the reply.
// Requests carry their own, shorter deadline and keep it. Row and Rows are left
// alone: their rows are read after the statement returns, and a deadline
// cancelled then would cut the reading short.
func boundStatements(db *gorm.DB, bound time.Duration) error {
	const cancelKey = "panelsync:statement_cancel"
	before := func(tx *gorm.DB) {
		ctx := tx.Statement.Context
		if ctx == nil {
			ctx = context.Background()
		}
		if _, ok := ctx.Deadline(); ok || ctx.Value(unboundedKey{}) != nil {
			return
		}
		ctx, cancel := context.WithTimeout(ctx, bound)
		tx.Statement.Context = ctx
		tx.InstanceSet(cancelKey, cancel)
	}
	after := func(tx *gorm.DB) {
		if cancel, ok := tx.InstanceGet(cancelKey); ok {
			cancel.(context.CancelFunc)()
		}
	}
	cb := db.Callback()
	return errors.Join(
		cb.Create().Before("*").Register("panelsync:bound", before),
		cb.Create().After("*").Register("panelsync:unbound", after),
		cb.Query().Before("*").Register("panelsync:bound", before),
		cb.Query().After("*").Register("panelsync:unbound", after),
		cb.Update().Before("*").Register("panelsync:bound", before),
		cb.Update().After("*").Register("panelsync:unbound", after),
		cb.Delete().Before("*").Register("panelsync:bound", before),
		cb.Delete().After("*").Register("panelsync:unbound", after),
		cb.Raw().Before("*").Register("panelsync:bound", before),
		cb.Raw().After("*").Register("panelsync:unbound", after),
	)
}

// newGormLogger logs slow queries and errors through slog, except "record
// not found" and unique-key violations: both are answers the store asks
// for and turns into results (not_found, a deduplicated tap, a conflict),
// so logging them as errors would cry wolf on every duplicate tap. Nor
// deadlocks and lock wait timeouts: Tx runs the transaction again and
// logs that itself; nor statements whose caller gave up. Queries
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
	// A statement whose caller gave up (a node stopping, a client gone)
	// did not fail: nobody waits for its answer any more.
	givenUp := errors.Is(err, context.Canceled) && ctx.Err() != nil
	if isDuplicate(err) || isRetryableLock(err) || givenUp {
		err = nil
	}
	l.Interface.Trace(ctx, begin, fc, err)
}
