package models_test

import (
	"context"
	"testing"
	"time"

	"github.com/panelsync/panelsync/models"
	"github.com/panelsync/panelsync/models/dbtest"
)

func TestCheckWrite_RewritesTheNodesOwnRow_OldRowsAreForgotten(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, store *models.Store) {
		ctx := context.Background()
		for range 2 {
			if err := store.CheckWrite(ctx, "node-a"); err != nil {
				t.Fatalf("check write: %v", err)
			}
		}
		var rows []models.ReadinessCheck
		if err := store.DB().Find(&rows).Error; err != nil {
			t.Fatal(err)
		}
		if len(rows) != 1 || rows[0].NodeID != "node-a" {
			t.Fatalf("rows after two checks: %+v", rows)
		}
		if err := store.DeleteReadinessChecksBefore(ctx, time.Now().UTC().Add(time.Minute)); err != nil {
			t.Fatal(err)
		}
		var n int64
		if err := store.DB().Model(&models.ReadinessCheck{}).Count(&n).Error; err != nil || n != 0 {
			t.Fatalf("%d rows left, %v", n, err)
		}
	})
}
