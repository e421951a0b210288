package panel

import (
	"context"
	"encoding/json"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics measures the panel commands this node sends, the check-ins it
// takes and its heartbeat.
// A nil *Metrics measures nothing, so a link built without one (in tests)
// works the same.
type Metrics struct {
	// commands holds each known command's series, resolved once: the
	// command label takes only these values, and "other".
	commands   map[string]commandSeries
	other      commandSeries
	beats      prometheus.Counter
	beatsError prometheus.Counter
	// linksRefused counts the panel links refused to bound the rate.
	linksRefused prometheus.Counter
	// checkinsChanged and checkinsUnchanged count check-ins by whether
	// they reported a status other than the one stored.
	checkinsChanged   prometheus.Counter
	checkinsUnchanged prometheus.Counter
}

type commandSeries struct {
	duration prometheus.Observer
	timeouts prometheus.Counter
}

// NewMetrics registers the panel and heartbeat metrics on reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	duration := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "panelsync_panel_command_duration_seconds",
		Help:    "Time from sending a command to a panel to its answer (or refusal), by command; timeouts are counted apart.",
		Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
	}, []string{"command"})
	timeouts := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "panelsync_panel_command_timeouts_total",
		Help: "Commands sent to a panel that it did not answer in time, by command.",
	}, []string{"command"})
	checkins := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "panelsync_panel_checkins_total",
		Help: "Check-ins this node recorded, by result: changed (a new status, written with an Event Log entry) or unchanged (only the time last seen, written in a batch).",
	}, []string{"result"})
	m := &Metrics{
		commands: map[string]commandSeries{},
		beats: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "panelsync_node_heartbeats_total",
			Help: "Heartbeats this node recorded in the database.",
		}),
		beatsError: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "panelsync_node_heartbeat_failures_total",
			Help: "Heartbeats this node could not record (the database did not take the write).",
		}),
		checkinsChanged:   checkins.WithLabelValues("changed"),
		checkinsUnchanged: checkins.WithLabelValues("unchanged"),
	}
	series := func(name string) commandSeries {
		return commandSeries{duration: duration.WithLabelValues(name), timeouts: timeouts.WithLabelValues(name)}
	}
	for _, name := range []string{CmdUsersGet, CmdUsersPut, CmdConfigGet, CmdStatusGet} {
		m.commands[name] = series(name)
	}
	m.other = series("other")
	m.linksRefused = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "panelsync_panel_links_refused_total",
		Help: "Panel links this node answered 503 with Retry-After because they arrived faster than it takes them.",
	})
	reg.MustRegister(duration, timeouts, checkins, m.beats, m.beatsError, m.linksRefused)
	return m
}

func (m *Metrics) linkRefused() {
	if m != nil {
		m.linksRefused.Inc()
	}
}

// commandDone records a command's outcome after d: its latency when the
// panel answered or refused, a timeout when it did not answer in time.
// A command that never reached a panel (not connected, busy, or given up
// by its caller) says nothing about the panel's latency.
func (m *Metrics) commandDone(name string, d time.Duration, err error) {
	if m == nil {
		return
	}
	s, ok := m.commands[name]
	if !ok {
		s = m.other
	}
	f, isFailure := AsCommandFailure(err)
	switch {
	case err == nil:
	case !isFailure:
		return
	case f.Code == FailTimeout:
		s.timeouts.Inc()
		return
	case f.Code == FailDisconnected || f.Code == FailBusy:
		return
	}
	s.duration.Observe(d.Seconds())
}

// heartbeat counts one heartbeat, recorded or not.
func (m *Metrics) heartbeat(err error) {
	switch {
	case m == nil:
	case err != nil:
		m.beatsError.Inc()
	default:
		m.beats.Inc()
	}
}

// checkin counts one check-in recorded, by whether its status changed.
func (m *Metrics) checkin(changed bool) {
	switch {
	case m == nil:
	case changed:
		m.checkinsChanged.Inc()
	default:
		m.checkinsUnchanged.Inc()
	}
}

// Send runs a command on a panel, wherever it is connected, and returns
// its answer. It fails with a CommandFailure: panel_disconnected when no
// node holds the panel, panel_timeout when it does not answer in time,
// panel_error when it refuses, bus_unavailable when the panel is held by
// another node and the bus to it is down. A panel held by this node is
// still reached while the bus is down.
func (l *Link) Send(ctx context.Context, panelID, name string, args any) (json.RawMessage, error) {
	start := time.Now()
	data, err := l.send(ctx, panelID, name, args)
	l.cfg.Metrics.commandDone(name, time.Since(start), err)
	return data, err
}

// ConnectedGauge reports the panels connected to this node, read from the
// link at each scrape.
func ConnectedGauge(l *Link) prometheus.Collector {
	return prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "panelsync_panels_connected",
		Help: "Panels whose link is held by this node.",
	}, func() float64 { return float64(l.ConnectedCount()) })
}

// OpeningGauge reports the links this node has taken and is still
// recording, read from the link at each scrape. It stays near zero while
// the database keeps up with the links arriving; a backlog that grows
// means it does not.
func OpeningGauge(l *Link) prometheus.Collector {
	return prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "panelsync_panel_links_opening",
		Help: "Panel links this node has taken and is still recording (the link written, the sync engine told).",
	}, func() float64 { return float64(l.OpeningCount()) })
}
