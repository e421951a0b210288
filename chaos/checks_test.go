package chaos

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"time"
)

// deliveryReport compares the offsets a client received, in arrival
// order, with the offsets the Event Log holds.
type deliveryReport struct {
	// checked is how many events the log holds; logGaps lists offsets
	// missing from the log itself between 1 and its newest.
	checked int
	logGaps []int64
	// received counts every delivery; lost, duplicated and outOfOrder
	// count the log's offsets never received, the deliveries of an
	// offset already received, and the deliveries of an offset below one
	// received before it.
	received, lost, duplicated, outOfOrder int
	// firstProblems describes the first few problems.
	firstProblems []string
}

func checkDelivery(logOffsets, received []int64) deliveryReport {
	r := deliveryReport{checked: len(logOffsets), received: len(received)}
	note := func(format string, args ...any) {
		if len(r.firstProblems) < 8 {
			r.firstProblems = append(r.firstProblems, fmt.Sprintf(format, args...))
		}
	}
	inLog := make(map[int64]bool, len(logOffsets))
	for i, off := range logOffsets {
		inLog[off] = true
		if want := int64(i + 1); off != want && len(r.logGaps) < 8 {
			r.logGaps = append(r.logGaps, want)
		}
	}
	seen := make(map[int64]bool, len(received))
	var highest int64
	for i, off := range received {
		switch {
		case seen[off]:
			r.duplicated++
			note("delivery %d: offset %d again", i+1, off)
		case off < highest:
			r.outOfOrder++
			note("delivery %d: offset %d after %d", i+1, off, highest)
		case !inLog[off]:
			note("delivery %d: offset %d is not in the log", i+1, off)
		}
		seen[off] = true
		highest = max(highest, off)
	}
	for _, off := range logOffsets {
		if !seen[off] {
			r.lost++
			note("offset %d never arrived", off)
		}
	}
	return r
}

// runReport says whether every run ended, and ended once: its state is
// final and the log holds exactly one finishing event for it, of the type
// its state calls for.
type runReport struct {
	runs, ended int
	// notEnded counts runs queued, running or held; endedTwice runs with
	// more than one finishing event; noEnd ended runs with none;
	// mismatched runs whose finishing event disagrees with their state;
	// strayEnds finishing events of runs that do not exist.
	notEnded, endedTwice, noEnd, mismatched, strayEnds int
	byState                                            map[string]int
	firstProblems                                      []string
}

// finishing names the event that says a run ended in state, and reports
// whether state is final at all.
func finishing(state string) (string, bool) {
	switch state {
	case "succeeded", "failed", "cancelled":
		return "sync." + state, true
	}
	return "", false
}

func checkRuns(ctx context.Context, db *sql.DB, accountID string) (runReport, error) {
	r := runReport{byState: map[string]int{}}
	note := func(format string, args ...any) {
		if len(r.firstProblems) < 8 {
			r.firstProblems = append(r.firstProblems, fmt.Sprintf(format, args...))
		}
	}
	ends := map[string][]string{}
	var id, typ, state string
	err := eachRow(ctx, db, `SELECT run_id, type FROM events WHERE account_id = ? AND run_id IS NOT NULL
		AND type IN ('sync.succeeded', 'sync.failed', 'sync.cancelled') ORDER BY log_offset`, []any{accountID}, []any{&id, &typ}, func() {
		ends[id] = append(ends[id], typ)
	})
	if err != nil {
		return r, err
	}
	known := map[string]bool{}
	err = eachRow(ctx, db, `SELECT id, state FROM runs WHERE account_id = ?`, []any{accountID}, []any{&id, &state}, func() {
		known[id] = true
		r.runs++
		r.byState[state]++
		want, final := finishing(state)
		got := ends[id]
		switch {
		case !final:
			r.notEnded++
			note("run %s is %s", id, state)
		case len(got) == 0:
			r.noEnd++
			note("run %s is %s, but the log never said it ended", id, state)
		case len(got) > 1:
			r.endedTwice++
			note("run %s ended %d times: %v", id, len(got), got)
		case got[0] != want:
			r.mismatched++
			note("run %s is %s, but the log says %s", id, state, got[0])
		default:
			r.ended++
		}
	})
	if err != nil {
		return r, err
	}
	for id := range ends {
		if !known[id] {
			r.strayEnds++
			note("the log ends run %s, which does not exist", id)
		}
	}
	return r, nil
}

// batchReport says whether every batch finished once.
type batchReport struct {
	batches, finished int
	firstProblems     []string
}

func checkBatches(ctx context.Context, db *sql.DB, accountID string) (batchReport, error) {
	var r batchReport
	finishedEvents := map[string]int{}
	var data sql.NullString
	err := eachRow(ctx, db, `SELECT data FROM events WHERE account_id = ? AND type = 'batch.finished'`, []any{accountID}, []any{&data}, func() {
		var d struct {
			BatchID string `json:"batch_id"`
		}
		_ = json.Unmarshal([]byte(data.String), &d)
		finishedEvents[d.BatchID]++
	})
	if err != nil {
		return r, err
	}
	var id, state string
	err = eachRow(ctx, db, `SELECT id, state FROM batches WHERE account_id = ?`, []any{accountID}, []any{&id, &state}, func() {
		r.batches++
		n := finishedEvents[id]
		if state == "done" && n == 1 {
			r.finished++
			return
		}
		if len(r.firstProblems) < 8 {
			r.firstProblems = append(r.firstProblems, fmt.Sprintf("batch %s is %s with %d batch.finished events", id, state, n))
		}
	})
	return r, err
}

// logOffsets lists the account's Event Log offsets in order.
func logOffsets(ctx context.Context, db *sql.DB, accountID string) ([]int64, error) {
	var out []int64
	var off int64
	err := eachRow(ctx, db, `SELECT log_offset FROM events WHERE account_id = ? ORDER BY log_offset`, []any{accountID}, []any{&off}, func() {
		out = append(out, off)
	})
	return out, err
}

// lostPanelEvent is a panel.disconnected event that blames a lost node.
type lostPanelEvent struct {
	offset     int64
	locationID string
	at         time.Time
}

func nodeLostEvents(ctx context.Context, db *sql.DB, accountID string) ([]lostPanelEvent, error) {
	var out []lostPanelEvent
	var e lostPanelEvent
	var data sql.NullString
	err := eachRow(ctx, db, `SELECT log_offset, COALESCE(location_id, ''), occurred_at, data FROM events
		WHERE account_id = ? AND type = 'panel.disconnected' ORDER BY log_offset`, []any{accountID}, []any{&e.offset, &e.locationID, &e.at, &data}, func() {
		var d struct {
			Reason string `json:"reason"`
		}
		_ = json.Unmarshal([]byte(data.String), &d)
		if d.Reason == "node_lost" {
			out = append(out, e)
		}
	})
	return out, err
}

// eachRow runs query and calls fn after scanning each row into dest.
func eachRow(ctx context.Context, db *sql.DB, query string, args, dest []any, fn func()) error {
	rows, err := db.QueryContext(ctx, query, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		if err := rows.Scan(dest...); err != nil {
			return err
		}
		fn()
	}
	return rows.Err()
}
