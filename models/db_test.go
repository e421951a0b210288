package models_test

import (
	"context"
	"testing"
	"time"

	gomysql "github.com/go-sql-driver/mysql"

	"github.com/panelsync/panelsync/models"
	"github.com/panelsync/panelsync/models/dbtest"
)

func TestNormalizeMySQLDSN_SetsTimeoutsTheDSNLeavesOut(t *testing.T) {
	cases := []struct {
		name, raw                             string
		bound                                 time.Duration
		connect, read, write                  time.Duration
		wantAddr, wantDB, wantUser, wantParam string
		wantPass                              string
	}{
		{name: "driver form, no timeouts", raw: "app:pw@tcp(db:3306)/panelsync", bound: 5 * time.Second,
			connect: 5 * time.Second, read: 30 * time.Second, write: 30 * time.Second, wantAddr: "db:3306", wantDB: "panelsync", wantUser: "app"},
		{name: "a long bound lengthens reads and writes", raw: "app:pw@tcp(db:3306)/panelsync", bound: 20 * time.Second,
			connect: 20 * time.Second, read: 40 * time.Second, write: 40 * time.Second, wantAddr: "db:3306", wantDB: "panelsync", wantUser: "app"},
		{name: "driver form, the operator's timeouts kept", raw: "app:pw@tcp(db:3306)/panelsync?readTimeout=2m&timeout=3s", bound: 5 * time.Second,
			connect: 3 * time.Second, read: 2 * time.Minute, write: 30 * time.Second, wantAddr: "db:3306", wantDB: "panelsync", wantUser: "app"},
		{name: "URL form, the operator's timeouts kept as driver options", raw: "mysql://app:p%40ss@db/panelsync?writeTimeout=9s&timeout=1s&time_zone=%27%2B00%3A00%27", bound: 5 * time.Second,
			connect: time.Second, read: 30 * time.Second, write: 9 * time.Second, wantAddr: "db:3306", wantDB: "panelsync", wantUser: "app", wantParam: "time_zone", wantPass: "p@ss"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dsn, err := models.NormalizeMySQLDSN(tc.raw, tc.bound)
			if err != nil {
				t.Fatal(err)
			}
			cfg, err := gomysql.ParseDSN(dsn)
			if err != nil {
				t.Fatalf("normalized DSN does not parse: %v", err)
			}
			if cfg.Timeout != tc.connect || cfg.ReadTimeout != tc.read || cfg.WriteTimeout != tc.write {
				t.Errorf("timeouts: connect %s read %s write %s, want %s %s %s", cfg.Timeout, cfg.ReadTimeout, cfg.WriteTimeout, tc.connect, tc.read, tc.write)
			}
			if cfg.Addr != tc.wantAddr || cfg.DBName != tc.wantDB || cfg.User != tc.wantUser || !cfg.ParseTime || cfg.Loc != time.UTC || !cfg.InterpolateParams {
				t.Errorf("connection options: %+v", cfg)
			}
			// Driver options must not become session variables, which the
			// server would refuse at connect.
			for _, option := range []string{"timeout", "readTimeout", "writeTimeout"} {
				if _, ok := cfg.Params[option]; ok {
					t.Errorf("%s is sent to the server as a session variable", option)
				}
			}
			if tc.wantPass != "" && cfg.Passwd != tc.wantPass {
				t.Errorf("password decoded to %q", cfg.Passwd)
			}
			if tc.wantParam != "" && cfg.Params[tc.wantParam] == "" {
				t.Errorf("session variable %s lost: %v", tc.wantParam, cfg.Params)
			}
			if cfg.Params["charset"] != "utf8mb4" {
				t.Errorf("charset %q", cfg.Params["charset"])
			}
		})
	}
}

func TestOpen_StatementsWithoutDeadline_EndWithinTheBoundWhenTheDatabaseFreezes(t *testing.T) {
	var mysql dbtest.Backend
	for _, b := range dbtest.Backends(t) {
		if b.Config.MySQLDSN != "" {
			mysql = b
		}
	}
	if mysql.Config.MySQLDSN == "" {
		t.Skipf("no MySQL: set %s", dbtest.MySQLEnv)
	}
	const bound = 300 * time.Millisecond
	b, proxy := dbtest.Proxied(t, mysql)
	b.Config.StatementTimeout = bound
	store := dbtest.OpenMigrated(t, b)
	ctx := context.Background()
	proxy.Hold()
	// Work that has no deadline of its own, as a node's background loops
	// run it: a read, a write and a raw statement.
	for name, call := range map[string]func() error{
		"read": func() error {
			_, err := store.LocationByID(ctx, models.NewID())
			return err
		},
		"write": func() error {
			_, err := store.CreateAccount(ctx, "Frozen")
			return err
		},
		"raw": func() error {
			return store.DB().Exec("UPDATE accounts SET name = name WHERE id = ?", models.NewID()).Error
		},
	} {
		start := time.Now()
		err := call()
		elapsed := time.Since(start)
		if !models.IsUnavailable(err) {
			t.Errorf("%s with the database frozen: %v, which is not unavailable", name, err)
		}
		if elapsed > bound+2*time.Second {
			t.Errorf("%s with the database frozen took %s; the bound is %s", name, elapsed, bound)
		}
		t.Logf("%s with the database frozen ended after %s: %v", name, elapsed.Round(time.Millisecond), err)
	}
	proxy.Release()
	if _, err := store.CreateAccount(ctx, "Thawed"); err != nil {
		t.Fatalf("a write after the freeze: %v", err)
	}
}
