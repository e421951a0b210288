// Package panel is the device link: the protocol panels speak over their
// WebSocket, the registry of panels connected to this node, and commands
// routed over the bus to whichever node holds a panel's connection.
package panel

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/panelsync/panelsync/models"
)

// The device protocol is JSON text frames over a WebSocket at
// /device/v1/link. A panel authenticates the upgrade with HTTP Basic
// credentials: its serial and its device secret.
//
// Server to panel:
//
//	{"type":"hello","server_time":…,"checkin_interval_s":1800}
//	{"type":"command","id":"c1","name":"users.get","args":{"full":true}}
//	{"type":"error","code":"bad_frame","message":"…"}
//
// Panel to server:
//
//	{"type":"result","id":"c1","ok":true,"data":{…}}
//	{"type":"result","id":"c1","ok":false,"error":{"code":"busy","message":"…"}}
//	{"type":"result","id":"c2","ok":true,"data":{"watermark":"…","results":[
//	  {"number":4,"status":"ok"},
//	  {"number":1,"status":"refused","code":"protected","message":"…"}]}}
//	{"type":"checkin","status":{…}}
//	{"type":"event","event":{"kind":"armed","partition":1,"user_number":3,"at":…}}
//
// The server closes a link with one of these codes besides those of RFC
// 6455:
//
//	1013  try again later (RFC 6455): the node could not record the link,
//	      or the panel stopped reading its frames; the panel links again
//	      after its own backoff
//	4000  replaced: a newer link of the same panel holds it now
//	4003  revoked: the device credential was revoked or rotated
//	4010  draining: this node is stopping; the reason is exactly
//	      "reconnect_after_ms=N", and the panel links again (to whichever
//	      node it reaches) after N milliseconds, which the server has
//	      already spread over the fleet
//
// A node that is taking links faster than it can, or is draining, answers
// the upgrade 503 with Retry-After (whole seconds) instead: the panel waits
// that long, plus a little jitter of its own, before it dials again.

// Frame types.
const (
	FrameHello     = "hello"
	FrameCommand   = "command"
	FrameResult    = "result"
	FrameCheckin   = "checkin"
	FrameEvent     = "event"
	FrameErrorType = "error"
)

// Command names.
const (
	CmdUsersGet  = "users.get"
	CmdUsersPut  = "users.put"
	CmdConfigGet = "config.get"
	CmdStatusGet = "status.get"
)

// MaxFrameBytes bounds one frame in either direction. A full users.get of
// 9,999 user slots at about 250 bytes each fits.
const MaxFrameBytes = 4 << 20

// Frame is the envelope of every message. Only the fields of its type are
// set.
type Frame struct {
	Type string `json:"type"`
	// ID correlates a command with its result.
	ID   string          `json:"id,omitempty"`
	Name string          `json:"name,omitempty"`
	Args json.RawMessage `json:"args,omitempty"`
	// Result fields.
	OK    *bool           `json:"ok,omitempty"`
	Data  json.RawMessage `json:"data,omitempty"`
	Error *CommandError   `json:"error,omitempty"`
	// Check-in and event fields.
	Status *Status     `json:"status,omitempty"`
	Event  *PanelEvent `json:"event,omitempty"`
	// Hello fields.
	ServerTime       *time.Time `json:"server_time,omitempty"`
	CheckinIntervalS int        `json:"checkin_interval_s,omitempty"`
	// Error frame fields.
	Code    string `json:"code,omitempty"`
	Message string `json:"message,omitempty"`
}

// CommandError is a command's failure as the panel reports it.
type CommandError struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// UsersGetArgs asks for every user (Full) or the changes since Since.
type UsersGetArgs struct {
	Full  bool   `json:"full,omitempty"`
	Since string `json:"since,omitempty"`
}

// UsersGetResult is a panel's users. When Full is true Users is every
// user; otherwise Users holds those changed since the watermark asked for
// and Removed the user numbers deleted since. A panel that no longer knows
// the asked watermark answers in full.
type UsersGetResult struct {
	Full      bool   `json:"full"`
	Watermark string `json:"watermark"`
	Users     []User `json:"users"`
	Removed   []int  `json:"removed,omitempty"`
}

// MaxUsersPerPut bounds the users one users.put may carry, written and
// removed together. Panels refuse a larger command as a whole, so the
// server sends a longer list in chunks of at most this many. At about 250
// bytes a user, a full chunk stays far below MaxFrameBytes, and a panel
// answers it well within a command's timeout.
const MaxUsersPerPut = 500

// UsersPutArgs replaces the given users on the panel and deletes Removed.
// A user sent with has_code true and no code keeps the code it has; with
// has_code false its code is cleared. Together Users and Removed hold at
// most MaxUsersPerPut entries, and a user number appears at most once
// across both.
type UsersPutArgs struct {
	Users   []User `json:"users"`
	Removed []int  `json:"removed,omitempty"`
}

// UsersPutResult answers a users.put: the panel's watermark after it, and
// what became of each user.
//
// A users.put fails as a whole, with ok:false and nothing applied, only
// when the command itself is wrong: malformed arguments, more than
// MaxUsersPerPut users, a user number listed twice, or a number both
// written and removed. Otherwise the panel answers ok:true and judges each
// user on its own: Results holds one entry per user written and then one
// per user removed, in the order of UsersPutArgs.Users followed by
// UsersPutArgs.Removed. An entry with status "ok" was applied, whether or
// not it changed anything; one with status "refused" was not, and its Code
// says why, while the other users were still applied. Panels that predate
// per-user results send no Results: they applied every user or, failing,
// none.
//
// Watermark moves only when the put changed something, so a put that was
// refused for every user leaves it as it was.
type UsersPutResult struct {
	Watermark string          `json:"watermark"`
	Results   []UserPutResult `json:"results,omitempty"`
}

// Statuses of one user in a users.put.
const (
	UserPutOK      = "ok"
	UserPutRefused = "refused"
)

// Codes with which a panel refuses one user in a users.put. Vendors' panels
// may send others; the server treats a code it does not know as a refusal
// it cannot explain rather than as a broken answer.
const (
	// RefusedProtected: the user number is one the panel never lets the
	// server write or remove, such as its master or installer code.
	RefusedProtected = "protected"
	// RefusedInvalid: the panel's firmware rejects the user's fields, for
	// example an unknown authority, a partition it lacks, or a code of the
	// wrong length.
	RefusedInvalid = "invalid"
	// RefusedFull: every user slot is taken, so a new user does not fit.
	RefusedFull = "full"
	// RefusedDeviceError: the panel failed to store or erase the user; the
	// same request may succeed later.
	RefusedDeviceError = "device_error"
)

// UserPutResult is the outcome of one user in a users.put.
type UserPutResult struct {
	Number int `json:"number"`
	// Status is UserPutOK or UserPutRefused.
	Status string `json:"status"`
	// Code says why a user was refused, one of the Refused* constants or
	// a vendor's own; it is empty for a user applied. Unlike User.Code it
	// is never a PIN.
	Code string `json:"code,omitempty"`
	// Message explains a refusal to people. It never repeats a user's
	// PIN.
	Message string `json:"message,omitempty"`
}

// Refused returns the entries of users the panel did not apply, in the
// order the panel sent them, or nil when it applied every user. An entry
// with a status other than "ok" counts as refused, so that a status the
// server does not know is never taken for success.
func (r UsersPutResult) Refused() []UserPutResult {
	var refused []UserPutResult
	for _, res := range r.Results {
		if res.Status != UserPutOK {
			refused = append(refused, res)
		}
	}
	return refused
}

// Validate checks a users.put result a panel sent against the command it
// answers: Results must be empty, from a panel that predates per-user
// results, or hold one entry per user of args in order, each either ok or
// refused with a code, and with text a person can safely be shown.
func (r UsersPutResult) Validate(args UsersPutArgs) error {
	if len(r.Results) == 0 {
		return nil
	}
	if want := len(args.Users) + len(args.Removed); len(r.Results) != want {
		return fmt.Errorf("users.put answered %d results for %d users", len(r.Results), want)
	}
	for i, res := range r.Results {
		want := 0
		if i < len(args.Users) {
			want = args.Users[i].Number
		} else {
			want = args.Removed[i-len(args.Users)]
		}
		if res.Number != want {
			return fmt.Errorf("results[%d] is for user %d, want user %d", i, res.Number, want)
		}
		switch res.Status {
		case UserPutOK:
			if res.Code != "" {
				return fmt.Errorf("results[%d]: user %d is ok but has code %.32q", i, res.Number, res.Code)
			}
		case UserPutRefused:
			if res.Code == "" {
				return fmt.Errorf("results[%d]: user %d is refused without a code", i, res.Number)
			}
		default:
			return fmt.Errorf("results[%d]: user %d has unknown status %.32q", i, res.Number, res.Status)
		}
		if err := CheckText("code", res.Code, 32); err != nil {
			return fmt.Errorf("results[%d]: %w", i, err)
		}
		if err := CheckText("message", res.Message, MaxTextRunes); err != nil {
			return fmt.Errorf("results[%d]: %w", i, err)
		}
	}
	return nil
}

// Authority levels of panel users.
const (
	AuthorityMaster   = "master"
	AuthorityStandard = "standard"
	AuthorityArmOnly  = "arm_only"
	AuthorityGuest    = "guest"
	AuthorityDuress   = "duress"
)

// User is one user code slot on a panel. Code is the PIN itself: a panel
// may send it, the server turns it into a keyed digest at once and never
// stores, logs or returns it.
type User struct {
	Number         int    `json:"number"`
	Name           string `json:"name"`
	Email          string `json:"email,omitempty"`
	Authority      string `json:"authority"`
	Partitions     []int  `json:"partitions"`
	AccessSchedule string `json:"access_schedule,omitempty"`
	HasCode        bool   `json:"has_code"`
	Code           string `json:"code,omitempty"`
}

// Config is a panel's configuration.
type Config struct {
	Partitions []Partition `json:"partitions"`
	Zones      []Zone      `json:"zones"`
	Devices    []Device    `json:"devices"`
}

// Partition is an independently armed area.
type Partition struct {
	Number int    `json:"number"`
	Name   string `json:"name"`
}

// Zone is one sensor input.
type Zone struct {
	Number    int    `json:"number"`
	Name      string `json:"name"`
	Type      string `json:"type"`
	Partition int    `json:"partition"`
}

// Device is a keypad, siren, communicator or expander.
type Device struct {
	Number int    `json:"number"`
	Name   string `json:"name"`
	Type   string `json:"type"`
}

// Arm states of a partition, and of a location as a whole.
const (
	ArmDisarmed  = "disarmed"
	ArmStay      = "armed_stay"
	ArmAway      = "armed_away"
	ArmNight     = "armed_night"
	ArmPartially = "partially_armed"
	ArmUnknown   = "unknown"
)

// Status is a panel's live state.
type Status struct {
	Partitions []PartitionStatus `json:"partitions"`
	ZoneFaults []int             `json:"zone_faults"`
	Troubles   []string          `json:"troubles"`
	ACPower    bool              `json:"ac_power"`
	Battery    string            `json:"battery"`
}

// MaxTextRunes bounds a name, label or trouble a panel sends.
const MaxTextRunes = 200

// CheckText refuses a text a panel sent that is longer than maxRunes or
// holds control characters, which would let a panel forge lines in the
// Event Log, CSV downloads and report mails. field names it in the error.
func CheckText(field, value string, maxRunes int) error {
	// models.Label trims the white space around a value before it looks,
	// since what a person typed is stored trimmed; a panel's text is kept
	// as sent, so a control character anywhere in it is refused.
	if i := strings.IndexFunc(value, func(r rune) bool { return r < 0x20 || r == 0x7f }); i >= 0 {
		return fmt.Errorf("%s must not contain control characters (found U+%04X)", field, value[i])
	}
	if _, err := models.Label(field, value, maxRunes, false); err != nil {
		var e *models.Error
		if errors.As(err, &e) {
			return errors.New(e.Message)
		}
		return err
	}
	return nil
}

// Validate checks a status a panel sent, in a check-in or an answer.
func (s Status) Validate() error {
	if len(s.Partitions) > 64 || len(s.ZoneFaults) > 1024 || len(s.Troubles) > 64 {
		return fmt.Errorf("too many entries")
	}
	for _, p := range s.Partitions {
		switch p.ArmedState {
		case ArmDisarmed, ArmStay, ArmAway, ArmNight:
		default:
			return fmt.Errorf("partition %d has unknown armed_state %.32q", p.Number, p.ArmedState)
		}
	}
	for _, t := range s.Troubles {
		if err := CheckText("trouble", t, MaxTextRunes); err != nil {
			return err
		}
	}
	return CheckText("battery", s.Battery, 32)
}

// Normalize turns lists a panel left out into empty lists, so clients
// always read arrays.
func (s *Status) Normalize() {
	if s.Partitions == nil {
		s.Partitions = []PartitionStatus{}
	}
	if s.ZoneFaults == nil {
		s.ZoneFaults = []int{}
	}
	if s.Troubles == nil {
		s.Troubles = []string{}
	}
}

// Normalize turns lists a panel left out into empty lists.
func (c *Config) Normalize() {
	if c.Partitions == nil {
		c.Partitions = []Partition{}
	}
	if c.Zones == nil {
		c.Zones = []Zone{}
	}
	if c.Devices == nil {
		c.Devices = []Device{}
	}
}

// PartitionStatus is one partition's arm state.
type PartitionStatus struct {
	Number     int    `json:"number"`
	ArmedState string `json:"armed_state"`
	Ready      bool   `json:"ready"`
}

// ArmedState summarises the partitions: disarmed when all are, the common
// armed state when all armed ones agree and none is disarmed, partially
// armed otherwise.
func (s Status) ArmedState() string {
	if len(s.Partitions) == 0 {
		return ArmUnknown
	}
	armed := ""
	disarmed := 0
	for _, p := range s.Partitions {
		switch {
		case p.ArmedState == ArmDisarmed:
			disarmed++
		case armed == "":
			armed = p.ArmedState
		case armed != p.ArmedState:
			return ArmPartially
		}
	}
	switch {
	case disarmed == len(s.Partitions):
		return ArmDisarmed
	case disarmed > 0:
		return ArmPartially
	}
	return armed
}

// IsArmed reports whether any partition is armed.
func IsArmed(armedState string) bool {
	return armedState != ArmDisarmed && armedState != ArmUnknown && armedState != ""
}

// Panel event kinds sent unsolicited.
const (
	EventArmed       = "armed"
	EventDisarmed    = "disarmed"
	EventAlarm       = "alarm"
	EventTrouble     = "trouble"
	EventUserChanged = "user_changed"
)

// PanelEvent is something that happened at the panel. Partition 0 means
// the whole panel (every partition).
type PanelEvent struct {
	Kind       string    `json:"kind"`
	Partition  int       `json:"partition,omitempty"`
	Zone       int       `json:"zone,omitempty"`
	UserNumber int       `json:"user_number,omitempty"`
	ArmedState string    `json:"armed_state,omitempty"`
	Trouble    string    `json:"trouble,omitempty"`
	At         time.Time `json:"at"`
}

// Validate checks a panel event's fields.
func (e PanelEvent) Validate() error {
	switch e.Kind {
	case EventArmed:
		if e.ArmedState != ArmStay && e.ArmedState != ArmAway && e.ArmedState != ArmNight {
			return fmt.Errorf("armed event needs armed_state armed_stay, armed_away or armed_night")
		}
	case EventDisarmed, EventAlarm, EventUserChanged:
	case EventTrouble:
		if e.Trouble == "" {
			return fmt.Errorf("trouble event needs trouble")
		}
	default:
		return fmt.Errorf("unknown event kind %.32q", e.Kind)
	}
	if err := CheckText("trouble", e.Trouble, MaxTextRunes); err != nil {
		return err
	}
	if e.Partition < 0 || e.Zone < 0 || e.UserNumber < 0 {
		return fmt.Errorf("partition, zone and user_number must not be negative")
	}
	return nil
}
