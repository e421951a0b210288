package app

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/panelsync/panelsync/handlers"
)

// TestDependencyCollector_FailingOrHangingCheck_ReadsZeroWithinTheScrapeBound
// exports a passing check as 1, and a failing one and one that never
// answers as 0, all within one scrape bound.
func TestDependencyCollector_FailingOrHangingCheck_ReadsZeroWithinTheScrapeBound(t *testing.T) {
	c := newDependencyCollector(t.Context(), []handlers.ReadinessCheck{
		{Name: "database", Check: func(ctx context.Context) error { return nil }},
		{Name: "bus", Check: func(ctx context.Context) error { return errors.New("nats: no servers available") }},
		{Name: "frozen", Check: func(ctx context.Context) error { <-ctx.Done(); return ctx.Err() }},
	})
	reg := prometheus.NewRegistry()
	reg.MustRegister(c)
	start := time.Now()
	got, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took > scrapeTimeout+time.Second {
		t.Errorf("a scrape took %v with a frozen dependency, want about %v", took, scrapeTimeout)
	}
	want := map[string]float64{"database": 1, "bus": 0, "frozen": 0}
	if n := len(got[0].GetMetric()); n != len(want) {
		t.Errorf("%d series, want %d", n, len(want))
	}
	for _, m := range got[0].GetMetric() {
		dep := m.GetLabel()[0].GetValue()
		if v := m.GetGauge().GetValue(); v != want[dep] {
			t.Errorf("dependency %s: %v, want %v", dep, v, want[dep])
		}
	}
}
