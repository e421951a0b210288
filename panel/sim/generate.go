package sim

import (
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"slices"
	"strings"

	"github.com/panelsync/panelsync/panel"
)

// Random streams drawn from one serial and seed. Generation has its own
// stream so that the initial state does not depend on how many runtime
// decisions (errors, keypad changes) were made before it.
const (
	streamGenerate uint64 = 0x67656e6572617465 // "generate"
	streamRuntime  uint64 = 0x72756e74696d6521 // "runtime!"
)

// newRand returns a PCG generator determined by the panel's serial, the
// seed and the stream.
func newRand(serial string, seed int64, stream uint64) *rand.Rand {
	h := fnv.New64a()
	_, _ = h.Write([]byte(serial))
	return rand.New(rand.NewPCG(h.Sum64()^stream, uint64(seed)))
}

// generated is the state a simulated panel starts with.
type generated struct {
	users      []panel.User // with codes
	config     panel.Config
	status     panel.Status
	codeLength int
}

// generate builds the panel's initial users, configuration and status. It
// depends only on its arguments, so a panel restarted with the same serial
// and seed looks the same.
func generate(serial string, opts Options) generated {
	r := newRand(serial, opts.Seed, streamGenerate)
	cfg := generateConfig(r)
	// Panels use one code length for all their users, most often 4.
	codeLength := []int{4, 4, 4, 5, 6, 6}[r.IntN(6)]
	users := generateUsers(r, opts.userCount(), partitionNumbers(cfg), codeLength)
	armed := opts.ArmedState
	if armed == "" {
		armed = panel.ArmDisarmed
	}
	st := panel.Status{ACPower: true, Battery: "ok", ZoneFaults: []int{}, Troubles: []string{}}
	for _, p := range cfg.Partitions {
		st.Partitions = append(st.Partitions, panel.PartitionStatus{Number: p.Number, ArmedState: armed, Ready: true})
	}
	return generated{users: users, config: cfg, status: st, codeLength: codeLength}
}

func partitionNumbers(cfg panel.Config) []int {
	nums := make([]int, len(cfg.Partitions))
	for i, p := range cfg.Partitions {
		nums[i] = p.Number
	}
	return nums
}

func generateConfig(r *rand.Rand) panel.Config {
	var cfg panel.Config

	// Most homes have one partition; a few split off a garage or office.
	partitions := pickWeighted(r, []int{1, 2, 3, 4}, []int{55, 30, 10, 5})
	names := partitionNames()
	for i := range partitions {
		cfg.Partitions = append(cfg.Partitions, panel.Partition{Number: i + 1, Name: names[i]})
	}

	// Eight on-board zones, usually a few expanders' worth more.
	zoneCount := 8 + r.IntN(25)
	if r.IntN(5) == 0 {
		zoneCount = 8 + r.IntN(57)
	}
	cfg.Zones = generateZones(r, zoneCount, partitions)

	cfg.Devices = generateDevices(r, zoneCount, partitions)
	return cfg
}

func generateZones(r *rand.Rand, count, partitions int) []panel.Zone {
	kinds := zoneKinds()
	weights := zoneTypeWeights()
	kindWeights := make([]int, len(kinds))
	for i, k := range kinds {
		kindWeights[i] = weights[k.zoneType]
	}
	// Each place is used once per zone type; after that zones are numbered.
	used := make(map[string]int)
	zones := make([]panel.Zone, 0, count)
	for n := 1; n <= count; n++ {
		var k zoneKind
		if n == 1 {
			// Every installation starts with the front door on zone 1.
			k = kinds[0]
		} else {
			k = kinds[pickIndex(r, kindWeights)]
		}
		var name string
		if n == 1 {
			name = "Front Door"
		} else {
			free := slices.DeleteFunc(slices.Clone(k.places), func(p string) bool {
				return used[p+" "+k.suffix] > 0
			})
			if len(free) > 0 {
				name = free[r.IntN(len(free))] + " " + k.suffix
			} else {
				name = fmt.Sprintf("%s %d", k.suffix, used[k.suffix]+2)
				used[k.suffix]++
			}
		}
		used[name]++
		part := 1
		if partitions > 1 && r.IntN(5) < 2 {
			part = 1 + r.IntN(partitions)
		}
		zones = append(zones, panel.Zone{Number: n, Name: name, Type: k.zoneType, Partition: part})
	}
	// Every partition protects something: give an empty one a zone taken
	// from the first partition.
	for p := 2; p <= partitions; p++ {
		if slices.ContainsFunc(zones, func(z panel.Zone) bool { return z.Partition == p }) {
			continue
		}
		for i := len(zones) - 1; i > 0; i-- {
			if zones[i].Partition == 1 {
				zones[i].Partition = p
				break
			}
		}
	}
	return zones
}

func generateDevices(r *rand.Rand, zoneCount, partitions int) []panel.Device {
	var devices []panel.Device
	add := func(name, typ string) {
		devices = append(devices, panel.Device{Number: len(devices) + 1, Name: name, Type: typ})
	}
	keypads := min(partitions+r.IntN(2), len(keypadPlaces()))
	for i := range keypads {
		add("Keypad - "+keypadPlaces()[i], deviceKeypad)
	}
	add("Interior Siren", deviceSiren)
	if r.IntN(2) == 0 {
		add("Exterior Siren", deviceSiren)
	}
	comms := []string{"Cellular Communicator", "IP Communicator", "Dual-Path Communicator"}
	add(comms[r.IntN(len(comms))], deviceCommunicator)
	for i := 0; 8+i*8 < zoneCount; i++ {
		first := 9 + i*8
		add(fmt.Sprintf("Zone Expander %d (zones %d-%d)", i+1, first, first+7), deviceZoneExpander)
	}
	return devices
}

func generateUsers(r *rand.Rand, count int, partitions []int, codeLength int) []panel.User {
	roles := userRoles(r, count)
	firsts, lasts := firstNames(), lastNames()
	household := lasts[r.IntN(len(lasts))]
	codes := make(map[string]bool, count)
	emails := make(map[string]bool, count)
	names := make(map[string]bool, count)
	users := make([]panel.User, 0, count)
	number := 0
	for i, authority := range roles {
		// Slots are mostly consecutive; deleted slots leave a few gaps.
		number++
		if i > 0 && r.IntN(10) == 0 {
			number += 1 + r.IntN(3)
		}
		u := panel.User{Number: number, Authority: authority, HasCode: true, AccessSchedule: "always"}
		first, last := pickName(r, firsts, lasts, household, count, names)
		switch authority {
		case panel.AuthorityDuress:
			u.Name = "Duress"
		case panel.AuthorityGuest:
			if r.IntN(2) == 0 {
				roles := guestRoles()
				u.Name = roles[r.IntN(len(roles))] + " - " + first
			} else {
				u.Name = first + " " + last
			}
			u.AccessSchedule = guestSchedules()[r.IntN(len(guestSchedules()))]
		default:
			u.Name = first + " " + last
			if authority != panel.AuthorityMaster {
				u.AccessSchedule = residentSchedules()[r.IntN(len(residentSchedules()))]
			}
		}
		if authority != panel.AuthorityDuress && (authority == panel.AuthorityMaster || r.IntN(10) < 6) {
			u.Email = uniqueEmail(first, last, emails)
		}
		u.Partitions = userPartitions(r, authority, partitions)
		if authority != panel.AuthorityMaster && authority != panel.AuthorityDuress && r.IntN(10) == 0 {
			u.HasCode = false
		}
		if u.HasCode {
			u.Code = uniqueCode(r, codeLength, codes)
		}
		users = append(users, u)
	}
	return users
}

// userRoles returns the authority of each user slot in order: the master
// first, then a mix of residents with a couple of guests and, on larger
// panels, a duress code.
func userRoles(r *rand.Rand, count int) []string {
	roles := make([]string, 0, count)
	roles = append(roles, panel.AuthorityMaster)
	rest := count - 1
	special := []string{}
	switch {
	case rest >= 4:
		special = append(special, panel.AuthorityGuest, panel.AuthorityGuest)
	case rest >= 2:
		special = append(special, panel.AuthorityGuest)
	}
	if rest >= 7 && r.IntN(2) == 0 {
		special = append(special, panel.AuthorityDuress)
	}
	others := make([]string, 0, rest)
	others = append(others, special...)
	for len(others) < rest {
		if r.IntN(100) < 65 {
			others = append(others, panel.AuthorityStandard)
		} else {
			others = append(others, panel.AuthorityArmOnly)
		}
	}
	r.Shuffle(len(others), func(i, j int) { others[i], others[j] = others[j], others[i] })
	return append(roles, others...)
}

// pickName chooses a name not yet used on the panel. On small panels most
// users share the household's family name, as they do in a home.
func pickName(r *rand.Rand, firsts, lasts []string, household string, count int, used map[string]bool) (first, last string) {
	for range 20 {
		first = firsts[r.IntN(len(firsts))]
		last = lasts[r.IntN(len(lasts))]
		if count <= 12 && r.IntN(3) > 0 {
			last = household
		}
		if !used[first+" "+last] {
			break
		}
	}
	used[first+" "+last] = true
	return first, last
}

func uniqueEmail(first, last string, used map[string]bool) string {
	local := strings.ToLower(strings.ReplaceAll(first, " ", "") + "." + strings.ReplaceAll(last, " ", ""))
	email := local + "@example.com"
	for n := 2; used[email]; n++ {
		email = fmt.Sprintf("%s%d@example.com", local, n)
	}
	used[email] = true
	return email
}

func userPartitions(r *rand.Rand, authority string, partitions []int) []int {
	if authority == panel.AuthorityMaster || len(partitions) == 1 || r.IntN(10) < 7 {
		return slices.Clone(partitions)
	}
	var subset []int
	for _, p := range partitions {
		if r.IntN(2) == 0 {
			subset = append(subset, p)
		}
	}
	if len(subset) == 0 {
		subset = []int{partitions[r.IntN(len(partitions))]}
	}
	return subset
}

// uniqueCode returns a code of the given length that no other user on the
// panel has, as panels require.
func uniqueCode(r *rand.Rand, length int, used map[string]bool) string {
	for {
		var b strings.Builder
		for range length {
			b.WriteByte(byte('0' + r.IntN(10)))
		}
		code := b.String()
		if !used[code] {
			used[code] = true
			return code
		}
	}
}

func pickWeighted(r *rand.Rand, values, weights []int) int {
	return values[pickIndex(r, weights)]
}

func pickIndex(r *rand.Rand, weights []int) int {
	total := 0
	for _, w := range weights {
		total += w
	}
	n := r.IntN(total)
	for i, w := range weights {
		if n < w {
			return i
		}
		n -= w
	}
	return len(weights) - 1
}
