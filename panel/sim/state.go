package sim

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/panelsync/panelsync/panel"
)

// Limits a real panel enforces on user slots.
const (
	minUserNumber = 1
	maxUserNumber = 9999
	minCodeLength = 4
	maxCodeLength = 8
)

// userRecord is one user slot with the revision it last changed at.
type userRecord struct {
	user panel.User // with its code, if the panel knows it
	rev  uint64
}

// state is everything a simulated panel remembers: its users with their
// change history, its configuration and its live status. All methods are
// safe for concurrent use.
//
// Users are versioned the way panels that support incremental reads do it:
// one revision counter for the whole panel, bumped by every user change;
// each user remembers the revision it last changed at, and deleted users
// leave a tombstone with the revision of their deletion. A watermark is
// "<epoch>:<revision>"; the epoch changes on every start, so that a
// watermark handed out by an earlier run of the simulator is recognised as
// foreign and answered in full.
type state struct {
	mu         sync.Mutex
	rng        *rand.Rand // runtime decisions; guarded by mu
	epoch      string
	rev        uint64
	users      map[int]*userRecord
	tombstones map[int]uint64 // user number → revision of its deletion
	config     panel.Config
	status     panel.Status
	codeLength int
	// protected are the user numbers a users.put may not touch.
	protected map[int]bool
	// putFailureRate is the chance that a users.put fails to store one
	// user.
	putFailureRate float64
}

func newState(serial string, opts Options, epoch string) *state {
	g := generate(serial, opts)
	s := &state{
		rng:        newRand(serial, opts.Seed, streamRuntime),
		epoch:      epoch,
		users:      make(map[int]*userRecord, len(g.users)),
		tombstones: make(map[int]uint64),
		config:     g.config,
		status:     g.status,
		codeLength: g.codeLength,

		protected:      opts.protectedUsers(),
		putFailureRate: opts.PutFailureRate,
	}
	for _, u := range g.users {
		s.rev++
		s.users[u.Number] = &userRecord{user: u, rev: s.rev}
	}
	return s
}

// newEpoch returns a value that differs between runs of the simulator, so
// that watermarks from an earlier run never match.
func newEpoch() string {
	return strconv.FormatInt(time.Now().UnixNano(), 36) + strconv.FormatUint(rand.Uint64()%1296, 36)
}

func (s *state) watermarkLocked() string {
	return s.epoch + ":" + strconv.FormatUint(s.rev, 10)
}

// parseWatermark returns the revision a watermark of this panel stands
// for, and false for a watermark of another epoch, from the future, or
// malformed.
func (s *state) parseWatermarkLocked(w string) (uint64, bool) {
	epoch, revText, ok := strings.Cut(w, ":")
	if !ok || epoch != s.epoch {
		return 0, false
	}
	rev, err := strconv.ParseUint(revText, 10, 64)
	if err != nil || rev > s.rev {
		return 0, false
	}
	return rev, true
}

// usersGet answers users.get.
func (s *state) usersGet(args panel.UsersGetArgs) panel.UsersGetResult {
	s.mu.Lock()
	defer s.mu.Unlock()
	res := panel.UsersGetResult{Watermark: s.watermarkLocked(), Users: []panel.User{}}
	since, known := uint64(0), false
	if !args.Full && args.Since != "" {
		since, known = s.parseWatermarkLocked(args.Since)
	}
	if !known {
		res.Full = true
		for _, rec := range s.users {
			res.Users = append(res.Users, cloneUser(rec.user))
		}
	} else {
		for _, rec := range s.users {
			if rec.rev > since {
				res.Users = append(res.Users, cloneUser(rec.user))
			}
		}
		for number, rev := range s.tombstones {
			if rev > since {
				res.Removed = append(res.Removed, number)
			}
		}
		slices.Sort(res.Removed)
	}
	slices.SortFunc(res.Users, func(a, b panel.User) int { return a.Number - b.Number })
	return res
}

// usersPut answers users.put. A command that is wrong as a whole (too
// many users, a number listed twice, or both written and removed) is an
// error and changes nothing. Otherwise each user is judged on its own: the
// panel applies those it accepts and reports each refusal in the result,
// in the order of the request.
//
// Removals are applied before writes, so that the slots they free can take
// users written by the same command, as a server replacing one user with
// another expects of a full panel.
func (s *state) usersPut(args panel.UsersPutArgs) (panel.UsersPutResult, error) {
	if n := len(args.Users) + len(args.Removed); n > panel.MaxUsersPerPut {
		return panel.UsersPutResult{}, fmt.Errorf("a users.put carries at most %d users, this one has %d", panel.MaxUsersPerPut, n)
	}
	seen := make(map[int]bool, len(args.Users)+len(args.Removed))
	for i, u := range args.Users {
		if seen[u.Number] {
			return panel.UsersPutResult{}, fmt.Errorf("users[%d]: user %d is listed twice", i, u.Number)
		}
		seen[u.Number] = true
	}
	for i, n := range args.Removed {
		if seen[n] {
			return panel.UsersPutResult{}, fmt.Errorf("removed[%d]: user %d is both written and removed", i, n)
		}
		seen[n] = true
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	results := make([]panel.UserPutResult, len(args.Users)+len(args.Removed))
	for i, n := range args.Removed {
		results[len(args.Users)+i] = s.putRemoveLocked(n)
	}
	for i, u := range args.Users {
		results[i] = s.putWriteLocked(u)
	}
	return panel.UsersPutResult{Watermark: s.watermarkLocked(), Results: results}, nil
}

// putWriteLocked writes one user of a users.put, or says why it does not.
func (s *state) putWriteLocked(u panel.User) panel.UserPutResult {
	if s.protected[u.Number] {
		return refusedProtected(u.Number)
	}
	if err := s.validateUserLocked(u); err != nil {
		return refused(u.Number, panel.RefusedInvalid, err.Error())
	}
	if s.users[u.Number] == nil && len(s.users) >= MaxUsers {
		return refused(u.Number, panel.RefusedFull, fmt.Sprintf("the panel holds at most %d users", MaxUsers))
	}
	if s.chanceLocked(s.putFailureRate) {
		return refusedDeviceError(u.Number)
	}
	s.upsertLocked(u)
	return panel.UserPutResult{Number: u.Number, Status: panel.UserPutOK}
}

// putRemoveLocked removes one user of a users.put, or says why it does
// not. Removing an empty slot succeeds: the user is gone either way.
func (s *state) putRemoveLocked(number int) panel.UserPutResult {
	if s.protected[number] {
		return refusedProtected(number)
	}
	if number < minUserNumber || number > maxUserNumber {
		return refused(number, panel.RefusedInvalid,
			fmt.Sprintf("user number must be between %d and %d, got %d", minUserNumber, maxUserNumber, number))
	}
	if s.chanceLocked(s.putFailureRate) {
		return refusedDeviceError(number)
	}
	s.removeLocked(number)
	return panel.UserPutResult{Number: number, Status: panel.UserPutOK}
}

func refused(number int, code, message string) panel.UserPutResult {
	return panel.UserPutResult{Number: number, Status: panel.UserPutRefused, Code: code, Message: message}
}

func refusedProtected(number int) panel.UserPutResult {
	return refused(number, panel.RefusedProtected, fmt.Sprintf("user %d is protected on the panel", number))
}

func refusedDeviceError(number int) panel.UserPutResult {
	return refused(number, panel.RefusedDeviceError, "the panel did not store the user")
}

// validateUserLocked checks one user as a panel's firmware would.
func (s *state) validateUserLocked(u panel.User) error {
	if u.Number < minUserNumber || u.Number > maxUserNumber {
		return fmt.Errorf("user number must be between %d and %d, got %d", minUserNumber, maxUserNumber, u.Number)
	}
	if !isAuthority(u.Authority) {
		return fmt.Errorf("user %d: authority must be one of %s, %s, %s, %s or %s, got %.32q", u.Number,
			panel.AuthorityMaster, panel.AuthorityStandard, panel.AuthorityArmOnly, panel.AuthorityGuest, panel.AuthorityDuress, u.Authority)
	}
	for _, p := range u.Partitions {
		if !slices.ContainsFunc(s.config.Partitions, func(cp panel.Partition) bool { return cp.Number == p }) {
			return fmt.Errorf("user %d: partition %d does not exist on this panel", u.Number, p)
		}
	}
	if u.Code != "" {
		// The message never repeats the code itself.
		if len(u.Code) < minCodeLength || len(u.Code) > maxCodeLength || strings.Trim(u.Code, "0123456789") != "" {
			return fmt.Errorf("user %d: code must be %d to %d digits", u.Number, minCodeLength, maxCodeLength)
		}
	}
	return nil
}

// upsertLocked writes one valid user and reports whether anything changed.
// The server never knows a user's code, so a user sent with has_code and
// no code keeps the code the panel has.
func (s *state) upsertLocked(u panel.User) bool {
	u = cloneUser(u)
	slices.Sort(u.Partitions)
	u.Partitions = slices.Compact(u.Partitions)
	old := s.users[u.Number]
	switch {
	case u.Code != "":
		u.HasCode = true
	case u.HasCode && old != nil:
		u.Code, u.HasCode = old.user.Code, old.user.HasCode
	case u.HasCode:
		// A new user sent to keep its code has none to keep.
		u.HasCode = false
	}
	if old != nil && usersEqual(old.user, u) {
		return false
	}
	s.rev++
	s.users[u.Number] = &userRecord{user: u, rev: s.rev}
	delete(s.tombstones, u.Number)
	return true
}

// removeLocked deletes a user, leaving a tombstone, and reports whether
// the user existed.
func (s *state) removeLocked(number int) bool {
	if s.users[number] == nil {
		return false
	}
	s.rev++
	delete(s.users, number)
	s.tombstones[number] = s.rev
	return true
}

// putUser writes one user as if entered at the keypad.
func (s *state) putUser(u panel.User) (changed bool, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.validateUserLocked(u); err != nil {
		return false, err
	}
	if s.users[u.Number] == nil && len(s.users) >= MaxUsers {
		return false, fmt.Errorf("the panel holds at most %d users", MaxUsers)
	}
	return s.upsertLocked(u), nil
}

func (s *state) removeUser(number int) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.removeLocked(number) {
		return fmt.Errorf("user %d: %w", number, ErrNoSuchUser)
	}
	return nil
}

func (s *state) usersCopy() []panel.User {
	s.mu.Lock()
	defer s.mu.Unlock()
	users := make([]panel.User, 0, len(s.users))
	for _, rec := range s.users {
		users = append(users, cloneUser(rec.user))
	}
	slices.SortFunc(users, func(a, b panel.User) int { return a.Number - b.Number })
	return users
}

func (s *state) configCopy() panel.Config {
	s.mu.Lock()
	defer s.mu.Unlock()
	return cloneConfig(s.config)
}

func (s *state) statusCopy() panel.Status {
	s.mu.Lock()
	defer s.mu.Unlock()
	return cloneStatus(s.status)
}

func (s *state) watermark() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.watermarkLocked()
}

// chance reports true with probability p.
func (s *state) chance(p float64) bool {
	if p <= 0 {
		return false
	}
	if p >= 1 {
		return true
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.chanceLocked(p)
}

// chanceLocked reports true with probability p, drawing from the panel's
// seeded runtime stream. Certainties draw nothing, so that a rate of 0 or
// 1 leaves the stream as it was.
func (s *state) chanceLocked(p float64) bool {
	switch {
	case p <= 0:
		return false
	case p >= 1:
		return true
	}
	return s.rng.Float64() < p
}

// setArmed sets one partition, or all of them for partition 0, and returns
// an event for every partition whose state changed.
func (s *state) setArmed(partition int, armedState string, userNumber int, at time.Time) ([]panel.PanelEvent, error) {
	if !isSettableArmState(armedState) {
		return nil, fmt.Errorf("armed state must be one of %s, %s, %s or %s, got %q",
			panel.ArmDisarmed, panel.ArmStay, panel.ArmAway, panel.ArmNight, armedState)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if partition != 0 && !slices.ContainsFunc(s.status.Partitions, func(p panel.PartitionStatus) bool { return p.Number == partition }) {
		return nil, fmt.Errorf("partition %d does not exist on this panel", partition)
	}
	var events []panel.PanelEvent
	for i := range s.status.Partitions {
		ps := &s.status.Partitions[i]
		if (partition != 0 && ps.Number != partition) || ps.ArmedState == armedState {
			continue
		}
		ps.ArmedState = armedState
		kind := panel.EventArmed
		if armedState == panel.ArmDisarmed {
			kind = panel.EventDisarmed
		}
		events = append(events, panel.PanelEvent{Kind: kind, Partition: ps.Number, UserNumber: userNumber, ArmedState: armedState, At: at})
	}
	return events, nil
}

// keypadChange changes one random user the way people do at a keypad:
// a new code, a corrected name, a new user or a deleted one. It returns
// the number of the user changed.
func (s *state) keypadChange() (int, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	numbers := make([]int, 0, len(s.users))
	for n := range s.users {
		numbers = append(numbers, n)
	}
	slices.Sort(numbers)
	op := pickIndex(s.rng, []int{35, 25, 20, 20})
	switch {
	case op == 2 || len(numbers) == 0:
		return s.keypadAddLocked()
	case op == 3 && len(numbers) > 1:
		// The master code cannot be deleted from a keypad.
		victim := numbers[1+s.rng.IntN(len(numbers)-1)]
		s.removeLocked(victim)
		return victim, true
	}
	u := cloneUser(s.users[numbers[s.rng.IntN(len(numbers))]].user)
	// A duress code is named for its purpose, not a person: change its code.
	if op == 0 || u.Authority == panel.AuthorityDuress {
		u.Code = s.newCodeLocked()
		u.HasCode = true
	} else {
		s.renameLocked(&u)
	}
	s.upsertLocked(u)
	return u.Number, true
}

// renameLocked gives u a different name the way people correct one: a new
// family name, or a new person behind a role such as "Cleaner - Maria".
func (s *state) renameLocked(u *panel.User) {
	old := u.Name
	for u.Name == old {
		if role, _, isRole := strings.Cut(old, " - "); isRole {
			firsts := firstNames()
			u.Name = role + " - " + firsts[s.rng.IntN(len(firsts))]
			continue
		}
		first, _, _ := strings.Cut(old, " ")
		if first == "" {
			firsts := firstNames()
			first = firsts[s.rng.IntN(len(firsts))]
		}
		lasts := lastNames()
		last := lasts[s.rng.IntN(len(lasts))]
		u.Name = first + " " + last
		if u.Email != "" {
			u.Email = strings.ToLower(first+"."+last) + "@example.com"
		}
	}
}

func (s *state) keypadAddLocked() (int, bool) {
	if len(s.users) >= MaxUsers {
		return 0, false
	}
	number := 0
	for n := minUserNumber; n <= maxUserNumber; n++ {
		if s.users[n] == nil {
			number = n
			break
		}
	}
	if number == 0 {
		return 0, false
	}
	firsts, lasts := firstNames(), lastNames()
	first, last := firsts[s.rng.IntN(len(firsts))], lasts[s.rng.IntN(len(lasts))]
	authority := panel.AuthorityStandard
	if number == 1 {
		authority = panel.AuthorityMaster
	}
	u := panel.User{
		Number:         number,
		Name:           first + " " + last,
		Authority:      authority,
		Partitions:     partitionNumbers(s.config),
		AccessSchedule: "always",
		HasCode:        true,
		Code:           s.newCodeLocked(),
	}
	s.upsertLocked(u)
	return number, true
}

// newCodeLocked returns a code of the panel's length that no user has.
func (s *state) newCodeLocked() string {
	used := make(map[string]bool, len(s.users))
	for _, rec := range s.users {
		used[rec.user.Code] = true
	}
	return uniqueCode(s.rng, s.codeLength, used)
}

// randomActivity makes the panel do something a household would: arm or
// disarm a partition, open or close a door, or raise or clear a trouble.
// It returns the event to report, if the change is one panels report.
func (s *state) randomActivity(at time.Time) (panel.PanelEvent, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch pickIndex(s.rng, []int{60, 25, 15}) {
	case 0:
		return s.randomArmingLocked(at)
	case 1:
		s.toggleZoneFaultLocked()
		return panel.PanelEvent{}, false
	default:
		return s.toggleTroubleLocked(at)
	}
}

func (s *state) randomArmingLocked(at time.Time) (panel.PanelEvent, bool) {
	if len(s.status.Partitions) == 0 {
		return panel.PanelEvent{}, false
	}
	ps := &s.status.Partitions[s.rng.IntN(len(s.status.Partitions))]
	ev := panel.PanelEvent{Partition: ps.Number, UserNumber: s.randomCodeHolderLocked(), At: at}
	if ps.ArmedState != panel.ArmDisarmed {
		ps.ArmedState = panel.ArmDisarmed
		ev.Kind, ev.ArmedState = panel.EventDisarmed, panel.ArmDisarmed
		return ev, true
	}
	ps.ArmedState = []string{panel.ArmStay, panel.ArmAway, panel.ArmNight}[pickIndex(s.rng, []int{50, 35, 15})]
	ev.Kind, ev.ArmedState = panel.EventArmed, ps.ArmedState
	return ev, true
}

// randomCodeHolderLocked returns a user who could have armed or disarmed
// the panel, or 0 when no one has a code.
func (s *state) randomCodeHolderLocked() int {
	var holders []int
	for n, rec := range s.users {
		if rec.user.HasCode && rec.user.Authority != panel.AuthorityDuress {
			holders = append(holders, n)
		}
	}
	if len(holders) == 0 {
		return 0
	}
	slices.Sort(holders)
	return holders[s.rng.IntN(len(holders))]
}

// toggleZoneFaultLocked opens or closes a door or window, which makes its
// partition not ready to arm.
func (s *state) toggleZoneFaultLocked() {
	var candidates []panel.Zone
	for _, z := range s.config.Zones {
		if z.Type == "door" || z.Type == "window" || z.Type == "motion" {
			candidates = append(candidates, z)
		}
	}
	if len(candidates) == 0 {
		return
	}
	z := candidates[s.rng.IntN(len(candidates))]
	if i := slices.Index(s.status.ZoneFaults, z.Number); i >= 0 {
		s.status.ZoneFaults = slices.Delete(s.status.ZoneFaults, i, i+1)
	} else {
		s.status.ZoneFaults = append(s.status.ZoneFaults, z.Number)
		slices.Sort(s.status.ZoneFaults)
	}
	s.updateReadyLocked()
}

func (s *state) updateReadyLocked() {
	faulted := make(map[int]bool)
	for _, n := range s.status.ZoneFaults {
		for _, z := range s.config.Zones {
			if z.Number == n {
				faulted[z.Partition] = true
			}
		}
	}
	for i := range s.status.Partitions {
		s.status.Partitions[i].Ready = !faulted[s.status.Partitions[i].Number]
	}
}

// toggleTroubleLocked raises a trouble on a healthy panel, or clears the
// one it has. Only raising is reported: the protocol has no event for a
// trouble restored, so the server learns of it from the next status.
func (s *state) toggleTroubleLocked(at time.Time) (panel.PanelEvent, bool) {
	if len(s.status.Troubles) > 0 {
		s.status.Troubles = s.status.Troubles[:0]
		s.status.ACPower = true
		s.status.Battery = "ok"
		return panel.PanelEvent{}, false
	}
	kinds := troubleKinds()
	trouble := kinds[s.rng.IntN(len(kinds))]
	s.status.Troubles = append(s.status.Troubles, trouble)
	switch trouble {
	case troubleACFailure:
		s.status.ACPower = false
	case troubleLowBattery:
		s.status.Battery = "low"
	}
	return panel.PanelEvent{Kind: panel.EventTrouble, Trouble: trouble, At: at}, true
}

func usersEqual(a, b panel.User) bool {
	return a.Number == b.Number && a.Name == b.Name && a.Email == b.Email &&
		a.Authority == b.Authority && slices.Equal(a.Partitions, b.Partitions) &&
		a.AccessSchedule == b.AccessSchedule && a.HasCode == b.HasCode && a.Code == b.Code
}

func cloneUser(u panel.User) panel.User {
	u.Partitions = slices.Clone(u.Partitions)
	if u.Partitions == nil {
		u.Partitions = []int{}
	}
	return u
}

func cloneConfig(c panel.Config) panel.Config {
	return panel.Config{
		Partitions: slices.Clone(c.Partitions),
		Zones:      slices.Clone(c.Zones),
		Devices:    slices.Clone(c.Devices),
	}
}

func cloneStatus(st panel.Status) panel.Status {
	st.Partitions = slices.Clone(st.Partitions)
	st.ZoneFaults = append([]int{}, st.ZoneFaults...)
	st.Troubles = append([]string{}, st.Troubles...)
	return st
}
