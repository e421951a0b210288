package panel

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
)

func TestMetrics_CommandOutcomes_LatencyForAnswersTimeoutsApartTheRestIgnored(t *testing.T) {
	m := NewMetrics(prometheus.NewRegistry())
	m.commandDone(CmdUsersGet, 40*time.Millisecond, nil)
	m.commandDone(CmdUsersGet, 40*time.Millisecond, failure(FailPanelError, "refused"))
	m.commandDone(CmdUsersGet, time.Second, failure(FailTimeout, "the panel did not answer in time"))
	m.commandDone(CmdUsersGet, 0, failure(FailDisconnected, "the panel is not connected"))
	m.commandDone(CmdUsersGet, 0, failure(FailBusy, "busy"))
	m.commandDone(CmdUsersGet, 0, context.Canceled)
	m.commandDone(CmdUsersGet, 0, errors.New("send users.get over the bus: nats: connection closed"))
	m.commandDone("firmware.flash", 10*time.Millisecond, nil)

	users := m.commands[CmdUsersGet]
	if got := testutil.ToFloat64(users.timeouts); got != 1 {
		t.Errorf("users.get timeouts %v, want 1", got)
	}
	if got, other := sampleCount(t, users.duration), sampleCount(t, m.other.duration); got != 2 || other != 1 {
		t.Errorf("latencies measured: users.get %d, other %d; want 2 (the answer and the refusal) and 1", got, other)
	}
}

func sampleCount(t *testing.T, o prometheus.Observer) uint64 {
	t.Helper()
	var m dto.Metric
	if err := o.(prometheus.Metric).Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetHistogram().GetSampleCount()
}

func TestMetrics_Heartbeats_CountsRecordedAndFailedApart(t *testing.T) {
	m := NewMetrics(prometheus.NewRegistry())
	m.heartbeat(nil)
	m.heartbeat(nil)
	m.heartbeat(errors.New("database is locked"))
	if ok, failed := testutil.ToFloat64(m.beats), testutil.ToFloat64(m.beatsError); ok != 2 || failed != 1 {
		t.Fatalf("heartbeats %v recorded, %v failed; want 2 and 1", ok, failed)
	}
	var none *Metrics
	none.heartbeat(nil)
	none.commandDone(CmdUsersGet, time.Second, nil)
}
