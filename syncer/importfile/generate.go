package importfile

import (
	"bytes"
	"encoding/csv"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
)

// GenerateCSV returns a realistic data file of rows users spread over
// locations, for benchmarks and load tests. Its header is
//
//	site,external_id,name,email,user_number,authority,partitions,schedule,code
//
// where site is the location column: parse it with
// Control{LocationColumn: "site"}. Rows come sorted by site, as exports
// usually are. Names mix accents and commas (so some cells are quoted),
// most rows have an e-mail and a code of 4 to 6 digits, and every row is
// valid. User numbers count up from 2 in each location, leaving 1 to the
// panel's master code, which control files usually protect; locations is
// raised as needed so that no location has more users than fit. The same
// arguments always give the same file.
func GenerateCSV(rows, locations int, seed int64) []byte {
	rows = max(rows, 0)
	const perLocation = maxUserNumber - 1
	locations = max(min(locations, rows), 1, (rows+perLocation-1)/perLocation)
	rng := rand.New(rand.NewPCG(uint64(seed), 0x696d706f727466))
	firsts, lasts, domains, sites := generatedFirstNames(), generatedLastNames(), generatedDomains(), generatedSites()

	var buf bytes.Buffer
	buf.Grow(64 + rows*112)
	w := csv.NewWriter(&buf)
	cells := []string{"site", "external_id", "name", "email", "user_number", "authority", "partitions", "schedule", "code"}
	_ = w.Write(cells) // A bytes.Buffer does not fail.
	number, location := 1, -1
	for i := range rows {
		if l := i * locations / rows; l != location {
			location, number = l, 1
		}
		number++
		first, last := firsts[rng.IntN(len(firsts))], lasts[rng.IntN(len(lasts))]

		cells[0] = sites[location%len(sites)] + " " + strconv.Itoa(location/len(sites)+1)
		cells[1] = fmt.Sprintf("EMP-%06d", i+1)
		if rng.IntN(20) == 0 {
			cells[2] = last.name + ", " + first.name
		} else {
			cells[2] = first.name + " " + last.name
		}
		cells[3] = ""
		if rng.IntN(5) != 0 {
			cells[3] = first.mail + "." + last.mail + "@" + domains[rng.IntN(len(domains))]
		}
		cells[4] = strconv.Itoa(number)
		cells[5] = generatedAuthority(rng)
		cells[6] = []string{"1", "1", "1", "1", "1;2", "1;2", "1;2;3", "2"}[rng.IntN(8)]
		cells[7] = []string{"", "", "", "", "", "", "Mon-Fri 07:00-19:00", "Mon-Fri 07:00-19:00", "Weekends", "Always"}[rng.IntN(10)]
		cells[8] = ""
		if rng.IntN(4) != 0 {
			digits := 4 + rng.IntN(3)
			cells[8] = fmt.Sprintf("%0*d", digits, rng.IntN(pow10(digits)))
		}
		_ = w.Write(cells)
	}
	w.Flush()
	return buf.Bytes()
}

func pow10(n int) int {
	p := 1
	for range n {
		p *= 10
	}
	return p
}

func generatedAuthority(rng *rand.Rand) string {
	switch n := rng.IntN(100); {
	case n < 5:
		return "master"
	case n < 75:
		return "standard"
	case n < 87:
		return "arm_only"
	case n < 97:
		return "guest"
	}
	return "duress"
}

// generatedName is a name as written and as an e-mail address spells it.
type generatedName struct{ name, mail string }

func generatedFirstNames() []generatedName {
	names := []generatedName{
		{"José", "jose"}, {"Zoë", "zoe"}, {"Chloé", "chloe"}, {"Søren", "soren"}, {"Łukasz", "lukasz"},
		{"Anne-Marie", "anne-marie"}, {"Siobhán", "siobhan"}, {"Björn", "bjorn"},
	}
	for _, n := range strings.Fields("Maria James Olivia Noah Emma Liam Ava Lucas Sophia Mason Isabella Ethan Mia Logan Amelia Jacob Harper Aiden Ella Daniel Grace Samuel Nora Henry Leah Omar Fatima Wei Priya Kenji Yuki Ahmed Ines Pavel Olga Tomasz Aisha Diego Lucia Marco") {
		names = append(names, generatedName{n, strings.ToLower(n)})
	}
	return names
}

func generatedLastNames() []generatedName {
	names := []generatedName{
		{"O'Brien", "obrien"}, {"Müller", "mueller"}, {"García", "garcia"}, {"Nuñez", "nunez"}, {"Kowalczyk", "kowalczyk"},
		{"van der Berg", "vanderberg"}, {"Dubois-Martin", "dubois-martin"}, {"Ødegård", "odegard"},
	}
	for _, n := range strings.Fields("Smith Johnson Williams Brown Jones Miller Davis Wilson Anderson Taylor Thomas Moore Martin Jackson Thompson White Harris Clark Lewis Robinson Walker Young Allen King Wright Scott Hill Green Adams Baker Nelson Carter Mitchell Roberts Turner Phillips Campbell Parker Evans Edwards Collins Stewart Chen Wang Singh Patel Kim Nguyen Tanaka Rossi Novak") {
		names = append(names, generatedName{n, strings.ToLower(n)})
	}
	return names
}

func generatedDomains() []string {
	return []string{"example.com", "example.org", "example.net", "mail.example.com", "corp.example.org"}
}

func generatedSites() []string {
	return []string{"Harbour Office", "Riverside Clinic", "North Depot", "Main Street Store", "Airport Hangar", "Westfield Warehouse", "City Library", "Hillcrest School"}
}
