package realtime

import (
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"

	"github.com/panelsync/panelsync/wsframe"
)

// meteredClient is a pipe client whose hub measures into fresh metrics.
func meteredClient(t *testing.T) (*Client, *Metrics) {
	t.Helper()
	c, _ := pipeClient(t)
	m := NewMetrics(prometheus.NewRegistry())
	c.hub.cfg.Metrics = m
	return c, m
}

func TestMetrics_SlowClientClose_CountsOncePerConnectionAndOnlyFor4008(t *testing.T) {
	slow, m := meteredClient(t)
	slow.shutdown(CloseTooSlow, "too slow: resume with after")
	slow.shutdown(CloseTooSlow, "too slow: resume with after")
	other, _ := pipeClient(t)
	other.hub.cfg.Metrics = m
	other.shutdown(wsframe.CloseNormal, "")
	if got := testutil.ToFloat64(m.slowCloses); got != 1 {
		t.Fatalf("slow-client closes %v, want 1", got)
	}
}

func TestMetrics_DeliverLive_CountsTheEventsEachClientIsSent(t *testing.T) {
	c, m := meteredClient(t)
	c.locations = map[string]bool{"A": true}
	c.ws.scheduled = true // a write in progress: the frames queue, nothing blocks
	c.deliverLive(testPass("A", "B", "A"))
	c.deliverLive(testPass("B"))
	if got := testutil.ToFloat64(m.live); got != 2 {
		t.Fatalf("events delivered %v, want the 2 the client asked for", got)
	}
}

func TestMetrics_PassWritten_ObservesEventsWithACommitTimeOnly(t *testing.T) {
	m := NewMetrics(prometheus.NewRegistry())
	m.passWritten([]Event{{Offset: 1, committedAt: time.Now().Add(-50 * time.Millisecond)}, {Offset: 2}})
	var got dto.Metric
	if err := m.lag.(prometheus.Metric).Write(&got); err != nil {
		t.Fatal(err)
	}
	if n, sum := got.GetHistogram().GetSampleCount(), got.GetHistogram().GetSampleSum(); n != 1 || sum < 0.05 {
		t.Fatalf("lag: %d observations summing to %vs, want 1 of at least 0.05s", n, sum)
	}
}
