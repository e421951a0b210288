package sim

// The word lists below feed the generated panel state. They are functions
// returning fresh slices rather than package-level variables so that no
// caller can change what another panel generates.

func firstNames() []string {
	return []string{
		"James", "Mary", "Robert", "Patricia", "John", "Jennifer", "Michael",
		"Linda", "David", "Elizabeth", "William", "Barbara", "Richard", "Susan",
		"Joseph", "Jessica", "Thomas", "Sarah", "Charles", "Karen", "Daniel",
		"Lisa", "Matthew", "Nancy", "Anthony", "Betty", "Mark", "Sandra",
		"Steven", "Ashley", "Paul", "Emily", "Andrew", "Donna", "Joshua",
		"Michelle", "Kevin", "Carol", "Brian", "Amanda", "George", "Melissa",
		"Timothy", "Deborah", "Ronald", "Stephanie", "Jason", "Rebecca",
		"Edward", "Laura", "Ryan", "Sharon", "Jacob", "Cynthia", "Gary",
		"Kathleen", "Nicholas", "Amy", "Eric", "Angela", "Olivia", "Liam",
		"Sofia", "Noah", "Chloe", "Lucas", "Maya", "Ethan", "Hannah", "Omar",
		"Priya", "Mateo", "Aisha", "Kenji", "Ingrid", "Tomas", "Elena",
	}
}

func lastNames() []string {
	return []string{
		"Smith", "Johnson", "Williams", "Brown", "Jones", "Garcia", "Miller",
		"Davis", "Rodriguez", "Martinez", "Hernandez", "Lopez", "Gonzalez",
		"Wilson", "Anderson", "Thomas", "Taylor", "Moore", "Jackson", "Martin",
		"Lee", "Perez", "Thompson", "White", "Harris", "Sanchez", "Clark",
		"Ramirez", "Lewis", "Robinson", "Walker", "Young", "Allen", "King",
		"Wright", "Scott", "Torres", "Nguyen", "Hill", "Flores", "Green",
		"Adams", "Nelson", "Baker", "Hall", "Rivera", "Campbell", "Mitchell",
		"Carter", "Roberts", "Patel", "Kim", "Schmidt", "Novak", "Rossi",
		"Okafor", "Larsen", "Dubois", "Yamamoto", "Kowalski", "Silva",
	}
}

// guestRoles are how panel owners commonly label temporary codes.
func guestRoles() []string {
	return []string{"Cleaner", "Dog Walker", "Babysitter", "Contractor", "House Sitter", "Guest"}
}

func partitionNames() []string {
	return []string{"Main House", "Garage", "Office", "Guest House", "Workshop", "Basement"}
}

// zoneKinds lists each zone type with the places such a sensor is usually
// fitted, and how it is suffixed in the zone name.
func zoneKinds() []zoneKind {
	return []zoneKind{
		{"door", "Door", []string{"Front", "Back", "Garage", "Patio", "Side", "Basement", "Office", "Laundry"}},
		{"window", "Window", []string{"Kitchen", "Living Room", "Dining Room", "Bedroom 1", "Bedroom 2", "Bedroom 3", "Bathroom", "Office", "Den", "Basement"}},
		{"motion", "Motion", []string{"Kitchen", "Hallway", "Living Room", "Stairway", "Garage", "Basement", "Office", "Family Room"}},
		{"smoke", "Smoke", []string{"Upstairs", "Downstairs", "Hallway", "Kitchen", "Basement"}},
		{"glassbreak", "Glass Break", []string{"Living Room", "Dining Room", "Sunroom", "Office"}},
		{"co", "CO", []string{"Upstairs", "Basement", "Furnace Room"}},
		{"water", "Water", []string{"Laundry", "Basement", "Water Heater", "Kitchen Sink"}},
		{"panic", "Panic", []string{"Master Bedroom", "Front Hall", "Office"}},
	}
}

type zoneKind struct {
	zoneType string
	suffix   string
	places   []string
}

// zoneTypeWeights biases generated zones the way real installations are
// wired: mostly doors, windows and motion detectors.
func zoneTypeWeights() map[string]int {
	return map[string]int{
		"door": 22, "window": 30, "motion": 20, "smoke": 10,
		"glassbreak": 7, "co": 4, "water": 5, "panic": 2,
	}
}

func keypadPlaces() []string {
	return []string{"Front Hall", "Garage Entry", "Master Bedroom", "Back Door"}
}

// Device types reported in Config.Devices.
const (
	deviceKeypad       = "keypad"
	deviceSiren        = "siren"
	deviceCommunicator = "communicator"
	deviceZoneExpander = "zone_expander"
)

// Troubles a panel may report in Status.Troubles.
const (
	troubleACFailure     = "ac_failure"
	troubleLowBattery    = "low_battery"
	troubleTamper        = "tamper"
	troubleCommunication = "communication"
)

func troubleKinds() []string {
	return []string{troubleACFailure, troubleLowBattery, troubleTamper, troubleCommunication}
}

// Access schedules by how the code is typically used.
func residentSchedules() []string {
	return []string{"always", "always", "always", "always", "daily 06:00-23:00"}
}

func guestSchedules() []string {
	return []string{"weekdays 08:00-18:00", "weekends 09:00-17:00", "mon,wed,fri 09:00-12:00", "daily 07:00-19:00"}
}
