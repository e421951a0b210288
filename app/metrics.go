package app

import (
	"context"
	"log/slog"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/panelsync/panelsync/handlers"
	"github.com/panelsync/panelsync/models"
	"github.com/panelsync/panelsync/syncer"
)

// strandedCollector exports the engine's last count of stranded runs as
// panelsync_runs_stranded{rank}. The figure is the fleet's, so every node
// reports the same; a rank that is served again simply disappears.
type strandedCollector struct {
	engine *syncer.Engine
	desc   *prometheus.Desc
}

func newStrandedCollector(engine *syncer.Engine) strandedCollector {
	return strandedCollector{
		engine: engine,
		desc: prometheus.NewDesc("panelsync_runs_stranded",
			"Queued runs of a rank that no running node serves, all accounts together.", []string{"rank"}, nil),
	}
}

func (c strandedCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c strandedCollector) Collect(ch chan<- prometheus.Metric) {
	for _, r := range c.engine.Stranded() {
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, float64(r.Queued), strconv.Itoa(r.Rank))
	}
}

// scrapeTimeout bounds the database reads and dependency checks one scrape
// makes, so that a frozen database slows a scrape down and never hangs it.
const scrapeTimeout = 2 * time.Second

// queueCollector reads the run queue and the batches in flight from the
// database at each scrape. The figures are the fleet's, so every node
// reports the same; dashboards take the max across nodes. A scrape that
// cannot read them (the database is away) leaves them out, and the
// dependency gauge says why.
type queueCollector struct {
	base  context.Context
	store *models.Store
	log   *slog.Logger
	// served are the ranks this node serves, 0 among them: they are shown
	// at zero when empty, so that their panels read as an empty queue and
	// not as no data. Other ranks show while they have queued runs.
	served   []int
	queued   *prometheus.Desc
	oldest   *prometheus.Desc
	inFlight *prometheus.Desc
}

func newQueueCollector(base context.Context, store *models.Store, log *slog.Logger, ranks []int) queueCollector {
	return queueCollector{
		base: base, store: store, log: log, served: models.ServedRanks(ranks),
		queued: prometheus.NewDesc("panelsync_runs_queued",
			"Runs waiting in the queue, due or not, all accounts together, by rank.", []string{"rank"}, nil),
		oldest: prometheus.NewDesc("panelsync_runs_queued_oldest_age_seconds",
			"How long the due run that has waited longest has been due, all accounts together, by rank; 0 when none is due.", []string{"rank"}, nil),
		inFlight: prometheus.NewDesc("panelsync_batches_in_flight",
			"All-Locations batches not yet finished, all accounts together.", nil, nil),
	}
}

func (c queueCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.queued
	ch <- c.oldest
	ch <- c.inFlight
}

func (c queueCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(c.base, scrapeTimeout)
	defer cancel()
	now := time.Now().UTC()
	ranks, err := c.store.QueueByRank(ctx, now)
	if err != nil {
		c.log.Debug("read the run queue for metrics", "error", err.Error())
	} else {
		for _, rank := range c.served {
			if !slices.ContainsFunc(ranks, func(r models.RankQueue) bool { return r.Rank == rank }) {
				ranks = append(ranks, models.RankQueue{Rank: rank})
			}
		}
		for _, r := range ranks {
			rank := strconv.Itoa(r.Rank)
			age := 0.0
			if !r.OldestDue.IsZero() {
				age = max(0, now.Sub(r.OldestDue).Seconds())
			}
			ch <- prometheus.MustNewConstMetric(c.queued, prometheus.GaugeValue, float64(r.Queued), rank)
			ch <- prometheus.MustNewConstMetric(c.oldest, prometheus.GaugeValue, age, rank)
		}
	}
	n, err := c.store.BatchesInFlight(ctx)
	if err != nil {
		c.log.Debug("count batches for metrics", "error", err.Error())
		return
	}
	ch <- prometheus.MustNewConstMetric(c.inFlight, prometheus.GaugeValue, float64(n))
}

// dependencyCollector runs the readiness checks at each scrape and exports
// each as panelsync_dependency_up{dependency}: 1 when it passes, 0 when it
// fails or does not answer within scrapeTimeout. The checks run together,
// so a scrape waits for the slowest, not their sum.
type dependencyCollector struct {
	base   context.Context
	checks []handlers.ReadinessCheck
	desc   *prometheus.Desc
}

func newDependencyCollector(base context.Context, checks []handlers.ReadinessCheck) dependencyCollector {
	return dependencyCollector{base: base, checks: checks,
		desc: prometheus.NewDesc("panelsync_dependency_up",
			"Whether a dependency this node needs answers its readiness check (1) or not (0).", []string{"dependency"}, nil)}
}

func (c dependencyCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c dependencyCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(c.base, scrapeTimeout)
	defer cancel()
	up := make([]float64, len(c.checks))
	var wg sync.WaitGroup
	for i, chk := range c.checks {
		wg.Go(func() {
			if chk.Check(ctx) == nil {
				up[i] = 1
			}
		})
	}
	wg.Wait()
	for i, chk := range c.checks {
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, up[i], chk.Name)
	}
}
