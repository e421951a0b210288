package mail_test

import (
	"context"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/panelsync/panelsync/mail"
	"github.com/panelsync/panelsync/models/dbtest"
)

// TestQueue_Metrics_CountSentRetriedAndFailedMails sends one mail the
// server refuses twice for now and then takes, and one to a recipient it
// refuses for good: one sent, two failed attempts, one failed mail.
func TestQueue_Metrics_CountSentRetriedAndFailedMails(t *testing.T) {
	ctx := context.Background()
	store := dbtest.OpenMigrated(t, dbtest.Backends(t)[0])
	server := startServer(t, serverOptions{})
	server.setOnRcpt(func(to string) error {
		if to == "nobody@example.com" {
			return unknownUser()
		}
		return nil
	})
	server.setOnData(func(n int) error {
		if n <= 2 {
			return tempFailure()
		}
		return nil
	})
	reg := prometheus.NewRegistry()
	b := newQueue(t, store, smtpTransport(t, "smtp://"+server.Addr), mail.Config{Metrics: mail.NewMetrics(reg)})
	b.run(t)
	for _, to := range []string{"ada@example.com", "nobody@example.com"} {
		if err := b.queue.Enqueue(ctx, invitation(to)); err != nil {
			t.Fatal(err)
		}
	}
	want := map[string]float64{
		"panelsync_mails_sent_total":           1,
		"panelsync_mail_attempts_failed_total": 2,
		"panelsync_mails_failed_total":         1,
	}
	waitFor(t, "the mails to be sent and failed", func() bool {
		got := counters(t, reg)
		for name, n := range want {
			if got[name] != n {
				return false
			}
		}
		return true
	})
}

// counters reads every unlabelled counter registered on reg.
func counters(t *testing.T, reg *prometheus.Registry) map[string]float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, f := range families {
		if ms := f.GetMetric(); len(ms) == 1 && ms[0].GetCounter() != nil {
			out[f.GetName()] = ms[0].GetCounter().GetValue()
		}
	}
	return out
}
