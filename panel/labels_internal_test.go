package panel

import "testing"

func TestDescribe_OnePartitionPanel_LeavesThePartitionOut(t *testing.T) {
	names := eventNames{user: map[int]string{6: "Anna Berg"}, partition: map[int]string{1: "House"}, zone: map[int]string{}, partitions: 1}
	for _, tc := range []struct {
		e    PanelEvent
		want string
	}{
		{PanelEvent{Kind: EventArmed, Partition: 1, UserNumber: 6, ArmedState: ArmAway}, "Armed away by Anna Berg (user 6)"},
		{PanelEvent{Kind: EventArmed, Partition: 1, ArmedState: ArmStay}, "Armed stay"},
		{PanelEvent{Kind: EventDisarmed, Partition: 1, UserNumber: 7}, "Disarmed by user 7"},
		{PanelEvent{Kind: EventAlarm, Partition: 1, Zone: 4}, "Alarm in zone 4"},
		{PanelEvent{Kind: EventTrouble, Trouble: "low_battery"}, "Trouble at the panel: low battery"},
		{PanelEvent{Kind: EventTrouble, Trouble: "Siren cut"}, "Trouble at the panel: Siren cut"},
	} {
		if got := names.describe(tc.e); got != tc.want {
			t.Errorf("%+v: %q, want %q", tc.e, got, tc.want)
		}
	}
	names.partitions = 2
	if got, want := names.describe(PanelEvent{Kind: EventArmed, UserNumber: 6, ArmedState: ArmNight}), "All partitions armed night by Anna Berg (user 6)"; got != want {
		t.Errorf("whole panel of two partitions: %q, want %q", got, want)
	}
}

func TestStatusSummary_WordsStatesAndTroubles(t *testing.T) {
	st := Status{Partitions: []PartitionStatus{{Number: 1, ArmedState: ArmAway}}, Troubles: []string{"ac_failure"}, ZoneFaults: []int{3, 5}}
	if got, want := StatusSummary(st), "armed away, 1 trouble: AC power failure, 2 zones faulted"; got != want {
		t.Errorf("%q, want %q", got, want)
	}
	st = Status{Partitions: []PartitionStatus{{Number: 1, ArmedState: ArmDisarmed}, {Number: 2, ArmedState: ArmStay}}}
	if got, want := StatusSummary(st), "partly armed, no troubles"; got != want {
		t.Errorf("%q, want %q", got, want)
	}
}
