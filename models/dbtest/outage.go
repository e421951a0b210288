package dbtest

import (
	"errors"
	"sync/atomic"
	"testing"

	"gorm.io/gorm"
)

// ErrOutage is what every statement fails with while an Outage is on.
var ErrOutage = errors.New("dbtest: the database cannot be reached")

// Outage makes every statement on one connection pool fail while it is
// on, as if the database could not be reached. It acts in this process
// only, so a test can break its own view of a database that other tests
// share without touching the server.
type Outage struct {
	on atomic.Bool
}

// InjectOutage registers an outage, off until Begin, on db. Registering
// races with statements under way, so db must not be in use yet; for a
// node, give Register to app.Config.OnDatabaseOpen instead.
func InjectOutage(t testing.TB, db *gorm.DB) *Outage {
	t.Helper()
	o := &Outage{}
	if err := o.Register(db); err != nil {
		t.Fatalf("inject an outage: %v", err)
	}
	return o
}

// Register makes every statement on db fail while the outage is on.
func (o *Outage) Register(db *gorm.DB) error {
	fail := func(tx *gorm.DB) {
		if o.on.Load() {
			_ = tx.AddError(ErrOutage)
		}
	}
	cb := db.Callback()
	return errors.Join(
		cb.Create().Before("gorm:create").Register("dbtest:outage", fail),
		cb.Query().Before("gorm:query").Register("dbtest:outage", fail),
		cb.Update().Before("gorm:update").Register("dbtest:outage", fail),
		cb.Delete().Before("gorm:delete").Register("dbtest:outage", fail),
		cb.Row().Before("gorm:row").Register("dbtest:outage", fail),
		cb.Raw().Before("gorm:raw").Register("dbtest:outage", fail),
	)
}

// Begin makes every statement fail from now on.
func (o *Outage) Begin() { o.on.Store(true) }

// End lets statements through again.
func (o *Outage) End() { o.on.Store(false) }
