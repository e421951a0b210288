package app

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"

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
