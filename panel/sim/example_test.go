package sim_test

import (
	"context"
	"log"
	"time"

	"github.com/panelsync/panelsync/panel"
	"github.com/panelsync/panelsync/panel/sim"
)

// A test links one panel to the server under test, waits for it, and then
// plays the household: arming the panel and changing a user at the keypad.
func ExamplePanel() {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	p := sim.NewPanel(sim.Credentials{Serial: "SN-0001", Secret: "device-secret"}, sim.Options{Users: 10, Seed: 1})
	go func() {
		if err := p.Run(ctx, "http://127.0.0.1:8080"); err != nil {
			log.Print(err)
		}
	}()

	waitCtx, waitCancel := context.WithTimeout(ctx, 5*time.Second)
	defer waitCancel()
	if err := p.WaitConnected(waitCtx); err != nil {
		log.Print(err)
		return
	}
	_ = p.SetArmed(0, panel.ArmAway)
	u := p.Users()[1]
	u.Name = "Renamed At Keypad"
	_ = p.PutUser(u)
}

// A load test runs a fleet of panels with injected faults.
func ExampleRunFleet() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	file, err := sim.LoadCredentialsFile("panels.json")
	if err != nil {
		log.Print(err)
		return
	}
	fleet, err := sim.RunFleet(ctx, file.Server, file.Panels, sim.Options{
		Latency:     50 * time.Millisecond,
		ErrorRate:   0.01,
		TimeoutRate: 0.005,
	})
	if err != nil {
		log.Print(err)
		return
	}
	fleet.Wait()
	log.Printf("answered %d commands", fleet.Stats().Answered())
}
