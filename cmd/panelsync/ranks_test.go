package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/panelsync/panelsync/app/apptest"
	"github.com/panelsync/panelsync/auth"
	"github.com/panelsync/panelsync/models"
	"github.com/panelsync/panelsync/panel/sim"
)

// TestTwoNodes_Ranks_EachNodeTakesItsRankAndBothShareRankZero runs two
// serve processes on one MySQL database and one external NATS server,
// node A with --ranks 1 and node B with --ranks 2. Every panel links to
// node A, so node B reaches the panels of its rank over the bus. Each
// location's runs are run by a node of its rank, and an All-Locations
// batch's rank-0 runs are shared by both.
func TestTwoNodes_Ranks_EachNodeTakesItsRankAndBothShareRankZero(t *testing.T) {
	// Two workers a node, and panels that take a while to answer, so that
	// neither node can take the whole of rank 0 alone.
	c := startClusterWith(t, map[string][]string{
		"a": {"PANELSYNC_RANKS=1", "PANELSYNC_WORKERS=2"},
		"b": {"PANELSYNC_RANKS=2", "PANELSYNC_WORKERS=2"},
	})
	ctx := context.Background()
	const password = "two-node-password"
	acct, err := c.store.CreateAccount(ctx, "Dealer Co")
	if err != nil {
		t.Fatal(err)
	}
	hash, _ := auth.HashPassword(password, 4)
	if _, err := c.store.CreateLogin(ctx, models.Login{AccountID: acct.ID, Email: "owner@dealer.test", Name: "Owner", Role: models.RoleOwner, PasswordHash: hash}); err != nil {
		t.Fatal(err)
	}
	token := loginOn(t, c.nodes["a"], "owner@dealer.test", password)

	// Two locations of rank 1 (the North group, ranked as a group), two of
	// rank 2 (ranked one by one, on node B), eight of rank 0.
	rankOf := map[string]int{}
	type site struct {
		cred sim.Credentials
		rank int
	}
	var sites []site
	for i := range 12 {
		rank, group := 0, ""
		switch {
		case i < 2:
			rank, group = 1, "North"
		case i < 4:
			rank = 2
		}
		name, serial := fmt.Sprintf("Site %02d", i), fmt.Sprintf("RANK-%04d", i)
		secret, digest := auth.NewDeviceSecret()
		v, err := c.store.CreateLocation(ctx, models.SystemActor(acct.ID, "test"), models.NewLocation{
			Settings: models.LocationSettings{Name: &name, Group: &group}, PanelSerial: serial, SecretHash: digest,
		})
		if err != nil {
			t.Fatal(err)
		}
		if rank == 2 {
			if status, body := call(t, "PATCH", c.nodes["b"]+"/v1/locations/"+v.Location.ID, token, `{"rank":2}`); status != http.StatusOK {
				t.Fatalf("rank a location: %d %s", status, body)
			}
		}
		rankOf[v.Location.ID] = rank
		sites = append(sites, site{cred: sim.Credentials{Serial: serial, Secret: secret, LocationID: v.Location.ID, Name: name}, rank: rank})
	}
	if status, body := call(t, "PUT", c.nodes["a"]+"/v1/groups/North/rank", token, `{"rank":1}`); status != http.StatusOK || !strings.Contains(body, `"locations":2`) {
		t.Fatalf("rank the North group: %d %s", status, body)
	}

	pctx, stopPanels := context.WithCancel(ctx)
	var done []chan struct{}
	t.Cleanup(func() {
		stopPanels()
		for _, d := range done {
			<-d
		}
	})
	for _, s := range sites {
		p := sim.NewPanel(s.cred, sim.Options{Users: 3, Latency: 150 * time.Millisecond})
		d := make(chan struct{})
		done = append(done, d)
		go func() { defer close(d); _ = p.Run(pctx, c.nodes["a"]) }()
	}

	// Each panel's first link starts a full users sync, run by a node of
	// the location's rank.
	ran := func(runs []models.Run) map[int]map[string]int {
		byRank := map[int]map[string]int{}
		for _, r := range runs {
			if byRank[rankOf[r.LocationID]] == nil {
				byRank[rankOf[r.LocationID]] = map[string]int{}
			}
			byRank[rankOf[r.LocationID]][r.LeaseOwner]++
		}
		return byRank
	}
	var first []models.Run
	apptest.Eventually(t, 30*time.Second, func() (bool, string) {
		first = nil
		err := c.store.DB().Omit("data", "changes", "pending", "codes").
			Where("account_id = ? AND trigger_source = ? AND state = ?", acct.ID, models.TriggerCheckin, models.RunSucceeded).Find(&first).Error
		return err == nil && len(first) == len(sites), fmt.Sprintf("%d of %d first syncs succeeded (%v)", len(first), len(sites), err)
	})
	byRank := ran(first)
	if len(byRank[1]) != 1 || byRank[1]["node-a"] != 2 || len(byRank[2]) != 1 || byRank[2]["node-b"] != 2 {
		t.Fatalf("first syncs by rank and node: %v; want rank 1 on node-a only, rank 2 on node-b only", byRank)
	}

	// An All-Locations batch: ranks 1 and 2 stay with their nodes, rank 0
	// is shared.
	status, body := call(t, "POST", c.nodes["b"]+"/v1/sync", token, `{"kind":"users","scope":"all"}`)
	var accepted struct {
		Batch struct {
			ID string `json:"id"`
		} `json:"batch"`
	}
	if status != http.StatusAccepted || json.Unmarshal([]byte(body), &accepted) != nil {
		t.Fatalf("All Locations: %d %s", status, body)
	}
	apptest.Eventually(t, 30*time.Second, func() (bool, string) {
		_, body := call(t, "GET", c.nodes["a"]+"/v1/batches/"+accepted.Batch.ID, token, "")
		return strings.Contains(body, `"state":"done"`), body
	})
	var batch []models.Run
	if err := c.store.DB().Omit("data", "changes", "pending", "codes").Where("batch_id = ?", accepted.Batch.ID).Find(&batch).Error; err != nil {
		t.Fatal(err)
	}
	for _, r := range batch {
		if r.State != models.RunSucceeded {
			t.Fatalf("batch run at a rank-%d location %s: %s %s", rankOf[r.LocationID], r.State, r.ErrorCode, r.ErrorMessage)
		}
	}
	byRank = ran(batch)
	if len(batch) != len(sites) || len(byRank[1]) != 1 || byRank[1]["node-a"] != 2 || len(byRank[2]) != 1 || byRank[2]["node-b"] != 2 {
		t.Fatalf("batch runs by rank and node: %v; want rank 1 on node-a only, rank 2 on node-b only", byRank)
	}
	t.Logf("batch runs by rank and node: %v", byRank)
	if byRank[0]["node-a"] == 0 || byRank[0]["node-b"] == 0 || byRank[0]["node-a"]+byRank[0]["node-b"] != 8 {
		t.Fatalf("rank-0 batch runs by node: %v; want both nodes to take some", byRank[0])
	}

	// A rank neither node serves: the run waits, both nodes show it on
	// /readyz, and the account is warned once, not once per node.
	stranded := sites[4].cred.LocationID
	if status, body := call(t, "PATCH", c.nodes["a"]+"/v1/locations/"+stranded, token, `{"rank":3}`); status != http.StatusOK {
		t.Fatalf("rank 3: %d %s", status, body)
	}
	runID := requestSync(t, c.nodes["a"], token, stranded)
	for _, on := range []string{"a", "b"} {
		apptest.Eventually(t, 10*time.Second, func() (bool, string) {
			status, body := call(t, "GET", c.nodes[on]+"/readyz", "", "")
			return status == http.StatusOK && strings.Contains(body, `"stranded_ranks":[{"rank":3,"queued":1}]`), body
		})
	}
	_, events := call(t, "GET", c.nodes["b"]+"/v1/events?type=runs.stranded", token, "")
	if n := strings.Count(events, `"type":"runs.stranded"`); n != 1 {
		t.Fatalf("%d runs.stranded events, want 1: %s", n, events)
	}
	if _, body := call(t, "GET", c.nodes["b"]+"/v1/runs/"+runID, token, ""); !strings.Contains(body, `"state":"queued"`) {
		t.Fatalf("the stranded run: %s", body)
	}
}

// call sends a JSON request (body may be empty) and returns the status and
// body.
func call(t *testing.T, method, url, token, body string) (int, string) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}
