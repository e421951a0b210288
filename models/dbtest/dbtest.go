// Package dbtest opens real databases for tests: an SQLite file always, and
// a fresh MySQL/MariaDB database when PANELSYNC_TEST_MYSQL_DSN is set. In CI
// (CI set) a missing DSN is a failure, so storage tests never silently run
// on one backend only.
package dbtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"path/filepath"
	"testing"

	gomysql "github.com/go-sql-driver/mysql"
	"gorm.io/gorm"

	"github.com/panelsync/panelsync/migrations"
	"github.com/panelsync/panelsync/models"
)

// MySQLEnv names the variable holding an admin DSN for MySQL tests.
const MySQLEnv = "PANELSYNC_TEST_MYSQL_DSN"

// Backend is one database to run a test on.
type Backend struct {
	Name string
	// Config opens this backend's fresh, empty database.
	Config models.DBConfig
}

// Backends returns the backends tests must cover here: SQLite, and MySQL
// when configured. Each call makes new, empty databases, dropped when t
// ends.
func Backends(t testing.TB) []Backend {
	t.Helper()
	out := []Backend{{Name: "sqlite", Config: models.DBConfig{SQLitePath: filepath.Join(t.TempDir(), "test.db")}}}
	dsn := os.Getenv(MySQLEnv)
	if dsn == "" {
		if os.Getenv("CI") != "" {
			t.Fatalf("%s must be set in CI: storage tests run on MySQL as well as SQLite", MySQLEnv)
		}
		return out
	}
	return append(out, Backend{Name: "mysql", Config: models.DBConfig{MySQLDSN: freshMySQL(t, dsn), MaxOpenConns: 20}})
}

// ForEach runs fn as a subtest on every backend, with a migrated store.
func ForEach(t *testing.T, fn func(t *testing.T, store *models.Store)) {
	t.Helper()
	for _, b := range Backends(t) {
		t.Run(b.Name, func(t *testing.T) {
			fn(t, OpenMigrated(t, b))
		})
	}
}

// Open connects to the backend's database, closed when t ends.
func Open(t testing.TB, b Backend) *gorm.DB {
	t.Helper()
	db, err := models.Open(context.Background(), b.Config)
	if err != nil {
		t.Fatalf("open %s: %v", b.Name, err)
	}
	t.Cleanup(func() {
		if sqlDB, err := db.DB(); err == nil {
			_ = sqlDB.Close()
		}
	})
	return db
}

// OpenMigrated opens the backend's database with every migration applied.
func OpenMigrated(t testing.TB, b Backend) *models.Store {
	t.Helper()
	db := Open(t, b)
	if err := migrations.Up(context.Background(), db); err != nil {
		t.Fatalf("migrate %s: %v", b.Name, err)
	}
	return models.NewStore(db)
}

// freshMySQL creates a uniquely named database on the server adminDSN
// points at, drops it when t ends, and returns a DSN for it.
func freshMySQL(t testing.TB, adminDSN string) string {
	t.Helper()
	normalized, err := models.NormalizeMySQLDSN(adminDSN, models.DefaultTimeout)
	if err != nil {
		t.Fatalf("%s: %v", MySQLEnv, err)
	}
	cfg, err := gomysql.ParseDSN(normalized)
	if err != nil {
		t.Fatalf("%s: %v", MySQLEnv, err)
	}
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	name := "pstest_" + hex.EncodeToString(b)
	admin := cfg.Clone()
	admin.DBName = ""
	db, err := models.Open(context.Background(), models.DBConfig{MySQLDSN: admin.FormatDSN()})
	if err != nil {
		t.Fatalf("connect to MySQL for tests: %v", err)
	}
	sqlDB, _ := db.DB()
	defer sqlDB.Close()
	if err := db.Exec("CREATE DATABASE `" + name + "` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci").Error; err != nil {
		t.Fatalf("create test database: %v", err)
	}
	t.Cleanup(func() {
		db, err := models.Open(context.Background(), models.DBConfig{MySQLDSN: admin.FormatDSN()})
		if err != nil {
			t.Logf("drop test database %s: %v", name, err)
			return
		}
		sqlDB, _ := db.DB()
		defer sqlDB.Close()
		if err := db.Exec("DROP DATABASE IF EXISTS `" + name + "`").Error; err != nil {
			t.Logf("drop test database %s: %v", name, err)
		}
	})
	cfg.DBName = name
	return cfg.FormatDSN()
}
