package realtime

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics measures the realtime fan-out. Its series are resolved once, so
// a delivery costs an atomic add and never a label lookup or a lock. A nil
// *Metrics measures nothing, so a hub built without one (in tests) works
// the same.
type Metrics struct {
	live       prometheus.Counter
	replayed   prometheus.Counter
	lag        prometheus.Histogram
	slowCloses prometheus.Counter
}

// NewMetrics registers the realtime metrics on reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	delivered := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "panelsync_realtime_events_delivered_total",
		Help: "Events written to realtime clients, one per client that was sent it, live or replayed.",
	}, []string{"path"})
	m := &Metrics{
		live:     delivered.WithLabelValues("live"),
		replayed: delivered.WithLabelValues("replay"),
		lag: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "panelsync_realtime_delivery_lag_seconds",
			Help:    "Time from an event's commit to the end of the fan-out that wrote it to this node's live clients.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
		}),
		slowCloses: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "panelsync_realtime_slow_client_closes_total",
			Help: "Realtime connections closed because the client read too slowly (close code 4008).",
		}),
	}
	reg.MustRegister(delivered, m.lag, m.slowCloses)
	return m
}

// ConnectionsGauge reports the realtime connections the hub holds, read
// at each scrape.
func ConnectionsGauge(h *Hub) prometheus.Collector {
	return prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "panelsync_realtime_connections",
		Help: "Realtime (Event Log) connections held by this node.",
	}, func() float64 { return float64(h.ConnectionCount()) })
}

func (m *Metrics) deliveredLive(n int) {
	if m != nil && n > 0 {
		m.live.Add(float64(n))
	}
}

func (m *Metrics) deliveredReplay() {
	if m != nil {
		m.replayed.Inc()
	}
}

// closed counts a connection's close by its code.
func (m *Metrics) closed(code int) {
	if m != nil && code == CloseTooSlow {
		m.slowCloses.Inc()
	}
}

// passWritten observes, once per event and not per client, how long after
// its commit a pass finished writing it. Events read back from the log
// (gaps, replays) carry no commit time and are not observed.
func (m *Metrics) passWritten(events []Event) {
	if m == nil {
		return
	}
	now := time.Now()
	for i := range events {
		if at := events[i].committedAt; !at.IsZero() {
			m.lag.Observe(max(0, now.Sub(at).Seconds()))
		}
	}
}
