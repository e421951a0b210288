package chaos

import "testing"

// TestCheckDelivery_CountsLostDuplicatedAndOutOfOrder keeps the chaos
// test's delivery figures exact: each kind of fault counts once, where it
// happened.
func TestCheckDelivery_CountsLostDuplicatedAndOutOfOrder(t *testing.T) {
	log := []int64{1, 2, 3, 4, 5}
	for _, tc := range []struct {
		name                         string
		log, received                []int64
		lost, duplicated, outOfOrder int
		logGaps                      int
	}{
		{name: "every offset once in order", log: log, received: []int64{1, 2, 3, 4, 5}},
		{name: "one lost", log: log, received: []int64{1, 2, 4, 5}, lost: 1},
		{name: "one again after a resume", log: log, received: []int64{1, 2, 3, 3, 4, 5}, duplicated: 1},
		{name: "two swapped", log: log, received: []int64{1, 3, 2, 4, 5}, outOfOrder: 1},
		{name: "the log misses one", log: []int64{1, 2, 4}, received: []int64{1, 2, 4}, logGaps: 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := checkDelivery(tc.log, tc.received)
			if r.lost != tc.lost || r.duplicated != tc.duplicated || r.outOfOrder != tc.outOfOrder || len(r.logGaps) != tc.logGaps {
				t.Errorf("lost %d, duplicated %d, out of order %d, log gaps %v; want %d, %d, %d, %d gaps (%v)",
					r.lost, r.duplicated, r.outOfOrder, r.logGaps, tc.lost, tc.duplicated, tc.outOfOrder, tc.logGaps, r.firstProblems)
			}
		})
	}
}
