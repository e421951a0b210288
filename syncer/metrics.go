package syncer

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/panelsync/panelsync/models"
)

// Metrics counts the runs this node starts and finishes. A nil *Metrics
// counts nothing, so an engine built without one (in tests) works the same.
type Metrics struct {
	started  *prometheus.CounterVec
	finished *prometheus.CounterVec
	duration *prometheus.HistogramVec
}

// NewMetrics registers the run metrics on reg. Every kind, trigger and
// outcome starts at zero, so that rates and ratios have a series to read
// before the first run of a kind.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		started: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "panelsync_runs_started_total",
			Help: "Runs whose first attempt a worker on this node began, by kind and trigger.",
		}, []string{"kind", "trigger"}),
		finished: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "panelsync_runs_finished_total",
			Help: "Runs that reached a final state on this node, by kind, trigger and outcome (succeeded, failed, cancelled).",
		}, []string{"kind", "trigger", "outcome"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "panelsync_run_duration_seconds",
			Help:    "Time from a run's first attempt to its outcome, retries included, by kind.",
			Buckets: []float64{.1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600},
		}, []string{"kind"}),
	}
	kinds := []models.RunKind{models.RunUsers, models.RunPanel, models.RunRefresh, models.RunImport}
	triggers := []models.RunTrigger{models.TriggerApp, models.TriggerSchedule, models.TriggerCheckin, models.TriggerAPI, models.TriggerReapply}
	for _, k := range kinds {
		m.duration.WithLabelValues(string(k))
		for _, t := range triggers {
			m.started.WithLabelValues(string(k), string(t))
			for _, o := range []models.RunState{models.RunSucceeded, models.RunFailed, models.RunCancelled} {
				m.finished.WithLabelValues(string(k), string(t), string(o))
			}
		}
	}
	reg.MustRegister(m.started, m.finished, m.duration)
	return m
}

// runStarted counts a run claimed at claimedAt if that claim is its first
// start: later attempts of the same run, a hand-back's or a retry's
// re-claim that does not count an attempt, and a take-over after a lost
// worker are not new runs. The claim keeps a run's first start time, so
// only the first claim finds it equal to its own time (to the database's
// millisecond).
func (m *Metrics) runStarted(r models.Run, claimedAt time.Time) {
	if m == nil || r.StartedAt == nil || r.StartedAt.Sub(claimedAt).Abs() >= time.Millisecond {
		return
	}
	m.started.WithLabelValues(string(r.Kind), string(r.TriggerSource)).Inc()
}

// runFinished counts a run that reached outcome at now, and how long it
// took from its first attempt; a run that never started (refused, or
// cancelled while queued) has no duration.
func (m *Metrics) runFinished(r models.Run, outcome models.RunState, now time.Time) {
	if m == nil {
		return
	}
	m.finished.WithLabelValues(string(r.Kind), string(r.TriggerSource), string(outcome)).Inc()
	if r.StartedAt != nil && !r.StartedAt.IsZero() {
		m.duration.WithLabelValues(string(r.Kind)).Observe(max(0, now.Sub(*r.StartedAt).Seconds()))
	}
}

// finishedAfterCommit counts r's outcome once the transaction carried by
// ctx commits, and not at all if it rolls back.
func (e *Engine) finishedAfterCommit(ctx context.Context, r models.Run, outcome models.RunState, now time.Time) {
	m := e.cfg.Metrics
	models.AfterCommit(ctx, func() { m.runFinished(r, outcome, now) })
}
