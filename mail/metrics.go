package mail

import "github.com/prometheus/client_golang/prometheus"

// Metrics counts the mails this node sent and gave up on. A nil *Metrics
// counts nothing, so a queue built without one (in tests) works the same.
type Metrics struct {
	sent    prometheus.Counter
	failed  prometheus.Counter
	retried prometheus.Counter
}

// NewMetrics registers the mail metrics on reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		sent: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "panelsync_mails_sent_total",
			Help: "Mails this node handed to the mail transport.",
		}),
		failed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "panelsync_mails_failed_total",
			Help: "Mails given up on: refused by the mail server, or out of attempts.",
		}),
		retried: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "panelsync_mail_attempts_failed_total",
			Help: "Attempts at a mail that failed and will be retried.",
		}),
	}
	reg.MustRegister(m.sent, m.failed, m.retried)
	return m
}

func (m *Metrics) mailSent() {
	if m != nil {
		m.sent.Inc()
	}
}

func (m *Metrics) mailFailed() {
	if m != nil {
		m.failed.Inc()
	}
}

func (m *Metrics) attemptFailed() {
	if m != nil {
		m.retried.Inc()
	}
}
