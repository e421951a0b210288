package importfile_test

import (
	"encoding/json"
	"testing"

	"github.com/panelsync/panelsync/syncer/importfile"
)

// siteControl is the control file GenerateCSV's files need.
var siteControl = importfile.Control{LocationColumn: "site"}

// generateJSON returns GenerateCSV's users as a JSON data file, keys and
// values as an integrator's script would write them.
func generateJSON(tb testing.TB, rows, locations int, seed int64) []byte {
	tb.Helper()
	records, err := importfile.Parse(importfile.GenerateCSV(rows, locations, seed), importfile.FormatCSV, siteControl)
	if err != nil {
		tb.Fatal(err)
	}
	type user struct {
		Site       string `json:"site"`
		ExternalID string `json:"external_id"`
		Name       string `json:"name"`
		Email      string `json:"email,omitempty"`
		UserNumber int    `json:"user_number"`
		Authority  string `json:"authority"`
		Partitions []int  `json:"partitions"`
		Schedule   string `json:"schedule,omitempty"`
		Code       string `json:"code,omitempty"`
	}
	users := make([]user, len(records))
	for i, r := range records {
		users[i] = user{r.Location, r.ExternalID, r.Name, r.Email, r.UserNumber, r.Authority, r.Partitions, r.Schedule, r.Code}
	}
	data, err := json.Marshal(map[string]any{"users": users})
	if err != nil {
		tb.Fatal(err)
	}
	return data
}

func benchmarkParse(b *testing.B, data []byte, format importfile.Format) {
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		records, err := importfile.Parse(data, format, siteControl)
		if err != nil || len(records) != 50_000 {
			b.Fatalf("got %d records, %v", len(records), err)
		}
	}
}

func BenchmarkParse50000CSV(b *testing.B) {
	benchmarkParse(b, importfile.GenerateCSV(50_000, 200, 1), importfile.FormatCSV)
}

func BenchmarkParse50000JSON(b *testing.B) {
	benchmarkParse(b, generateJSON(b, 50_000, 200, 1), importfile.FormatJSON)
}
