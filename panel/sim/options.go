package sim

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/panelsync/panelsync/panel"
)

// Default values used when an Options field is left zero.
const (
	// DefaultUsers is how many users a simulated panel starts with.
	DefaultUsers = 20
	// MaxUsers bounds Options.Users so that a full users.get answer stays
	// under panel.MaxFrameBytes.
	MaxUsers = 3000
	// DefaultCheckinInterval is used when neither the options nor the
	// server's hello say how often to check in.
	DefaultCheckinInterval = 30 * time.Minute
	// DefaultProtectedUser is the user number a panel protects when
	// Options.ProtectedUsers is nil. Many real panels keep user 1, the
	// master code, out of the server's reach, and the generated user 1 is
	// always the master.
	DefaultProtectedUser = 1
)

// Options shape a simulated panel. The zero value is a healthy panel that
// answers at once, with DefaultUsers users, disarmed, checking in at the
// interval the server asks for, and refusing remote writes to user 1 only.
type Options struct {
	// Users is how many users the panel starts with; 0 means DefaultUsers.
	Users int
	// Seed, with the panel's serial, makes the generated users, config and
	// status reproducible.
	Seed int64

	// Latency delays every answer; LatencyJitter adds up to that much more,
	// uniformly at random.
	Latency       time.Duration
	LatencyJitter time.Duration
	// ErrorRate is the fraction of commands answered with a panel_error.
	ErrorRate float64
	// TimeoutRate is the fraction of commands never answered at all.
	TimeoutRate float64
	// PutFailureRate is the fraction of users in a users.put that the panel
	// refuses with device_error, each drawn on its own, while it applies
	// the others. It tests how the server handles partial failures.
	PutFailureRate float64
	// FlapEvery drops the connection about this often (±25%), after which
	// the panel reconnects; 0 never drops it.
	FlapEvery time.Duration

	// ArmedState is the initial state of every partition: one of the
	// panel.Arm* constants for a single partition; "" means disarmed.
	ArmedState string
	// KeypadChangeEvery changes a random user about this often, as if at
	// the keypad, and reports it with a user_changed event; 0 never does.
	KeypadChangeEvery time.Duration
	// EventEvery arms, disarms or raises a trouble about this often and
	// reports it with an event; 0 never does.
	EventEvery time.Duration
	// CheckinInterval overrides the interval the server's hello asks for.
	CheckinInterval time.Duration
	// ProtectedUsers are user numbers a users.put may neither write nor
	// remove: the panel refuses each such user with the code protected and
	// applies the rest, as real panels do for their master and installer
	// codes. Nil means DefaultProtectedUser alone; an empty, non-nil list
	// protects no one. Changes at the keypad (Panel.PutUser, RemoveUser and
	// KeypadChangeEvery) are not remote writes and are not limited.
	ProtectedUsers []int

	// Logger receives connection-level logs. It never receives user codes
	// or secrets. Nil discards logs.
	Logger *slog.Logger
}

// Validate reports every option that is out of range, or nil.
func (o Options) Validate() error {
	var errs []error
	if o.Users < 0 || o.Users > MaxUsers {
		errs = append(errs, fmt.Errorf("users must be between 1 and %d (0 means %d), got %d", MaxUsers, DefaultUsers, o.Users))
	}
	if o.Latency < 0 || o.LatencyJitter < 0 {
		errs = append(errs, errors.New("latency and latency jitter must not be negative"))
	}
	if o.ErrorRate < 0 || o.ErrorRate > 1 {
		errs = append(errs, fmt.Errorf("error rate must be between 0 and 1, got %v", o.ErrorRate))
	}
	if o.TimeoutRate < 0 || o.TimeoutRate > 1 {
		errs = append(errs, fmt.Errorf("timeout rate must be between 0 and 1, got %v", o.TimeoutRate))
	}
	if o.PutFailureRate < 0 || o.PutFailureRate > 1 {
		errs = append(errs, fmt.Errorf("put failure rate must be between 0 and 1, got %v", o.PutFailureRate))
	}
	seen := make(map[int]bool, len(o.ProtectedUsers))
	for _, n := range o.ProtectedUsers {
		switch {
		case n < minUserNumber || n > maxUserNumber:
			errs = append(errs, fmt.Errorf("protected users must be between %d and %d, got %d", minUserNumber, maxUserNumber, n))
		case seen[n]:
			errs = append(errs, fmt.Errorf("protected user %d is listed twice", n))
		}
		seen[n] = true
	}
	if o.FlapEvery < 0 || o.KeypadChangeEvery < 0 || o.EventEvery < 0 || o.CheckinInterval < 0 {
		errs = append(errs, errors.New("flap, keypad change, event and check-in intervals must not be negative"))
	}
	if o.ArmedState != "" && !isSettableArmState(o.ArmedState) {
		errs = append(errs, fmt.Errorf("armed state must be one of %s, %s, %s or %s, got %q",
			panel.ArmDisarmed, panel.ArmStay, panel.ArmAway, panel.ArmNight, o.ArmedState))
	}
	return errors.Join(errs...)
}

// userCount is the number of users to generate.
func (o Options) userCount() int {
	switch {
	case o.Users <= 0:
		return DefaultUsers
	case o.Users > MaxUsers:
		return MaxUsers
	}
	return o.Users
}

// protectedUsers returns the set of user numbers a users.put may not
// touch.
func (o Options) protectedUsers() map[int]bool {
	if o.ProtectedUsers == nil {
		return map[int]bool{DefaultProtectedUser: true}
	}
	set := make(map[int]bool, len(o.ProtectedUsers))
	for _, n := range o.ProtectedUsers {
		set[n] = true
	}
	return set
}

func (o Options) logger() *slog.Logger {
	if o.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return o.Logger
}

// isSettableArmState reports whether one partition can be in state s.
// Partially armed and unknown describe a whole panel, never a partition.
func isSettableArmState(s string) bool {
	switch s {
	case panel.ArmDisarmed, panel.ArmStay, panel.ArmAway, panel.ArmNight:
		return true
	}
	return false
}

func isAuthority(a string) bool {
	switch a {
	case panel.AuthorityMaster, panel.AuthorityStandard, panel.AuthorityArmOnly,
		panel.AuthorityGuest, panel.AuthorityDuress:
		return true
	}
	return false
}
