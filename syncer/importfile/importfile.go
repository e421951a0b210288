// Package importfile parses and validates the two files of a user import:
// the data file an integrator uploads (CSV or JSON), which lists panel
// users, and the optional control file (JSON), which says how the data
// file maps onto panel users. It is pure: no database, no network, no
// clock. Parse and ParseControl either accept a file whole or refuse it
// with every problem found, each placed at the row and column a person
// can find in the file; nothing is half-accepted.
//
// # Data file
//
// A data file lists one user per row (CSV) or per object (JSON). Its
// standard fields are:
//
//	external_id  the integrator's own id for the person, at most 64 characters
//	name         required, at most 200 characters
//	email        a bare address (name@example.com), optional
//	user_number  required, the user slot on the panel: 1 to 9999
//	authority    master, standard, arm_only, duress or guest; empty means standard
//	partitions   the partitions the user may operate, each 1 to 32
//	schedule     the panel's access schedule, at most 200 characters
//	code         the user's PIN, 4 to 8 digits; optional and write-only
//
// A CSV file is RFC 4180 (encoding/csv, strict quotes), UTF-8 with or
// without a byte order mark, with CRLF or LF line ends. Its first row names
// the columns. An entirely empty line is skipped; any other line is a row.
// Partitions are written "1;2", "1,2" or "1 2" (the separators may be
// mixed, and line breaks in the cell count as spaces). Row numbers are
// those a spreadsheet shows: the header is row 1 (unless empty lines come
// before it), and skipped empty lines still count.
//
// A JSON file is either an array of user objects or an object whose only
// key is "users", holding that array. Keys are the column names. Values
// are strings; user_number may also be a JSON number, external_id and the
// location column may be numbers too, partitions is an array of numbers,
// and null is the same as leaving the key out. Code must be a string,
// because a number cannot carry a leading zero. The row of a JSON user is
// its 1-based index in the array.
//
// Column names and JSON keys are matched ignoring case and surrounding
// spaces, and so are authority values. Every column must be a standard
// field, be mapped by the control file, or be its location column; any
// other column is a problem. Cell values are trimmed of surrounding
// spaces. Cells that look like spreadsheet formulas are plain data here:
// downloads escape them.
//
// Within one location (the rows with the same value in the location
// column, or the whole file without one) a user number may appear once,
// and so may a non-empty external_id; a repeat is a problem that names
// both rows. A file that lists no users is refused: an import that would
// empty a panel is far likelier a broken export than a wish.
//
// # Control file
//
// The control file is one JSON object, read strictly (unknown keys are
// problems, reported with their path):
//
//	{
//	  "columns": {"PIN": "code", "Full Name": "name", "Notes": ""},
//	  "authority": {"Manager": "master", "": "guest"},
//	  "location_column": "site",
//	  "protected_user_numbers": [1],
//	  "defaults": {"partitions": [1]}
//	}
//
// columns maps a file column to a standard field; mapping a column to ""
// tells the import to ignore it. authority maps the file's authority
// values (ignoring case) to panel authorities; the key "" sets the
// authority of rows that leave it empty, which is otherwise standard.
// location_column names the column that says which location a row is for;
// without it, every row is for the one location the import is made for.
// protected_user_numbers are user slots an import must never touch: a row
// that addresses one is a problem. defaults.partitions are the partitions
// of rows that give none; without it such rows have no partitions.
//
// # Secrecy
//
// User codes are secrets. No problem message ever holds a code's value,
// nor a JSON syntax error's text, which could quote one of its digits.
// Other values may be quoted in messages, cut to about 40 characters.
package importfile

import (
	"github.com/panelsync/panelsync/panel"
)

// Limits of the files an import takes.
const (
	// MaxDataBytes is the largest data file: 10 MiB.
	MaxDataBytes = 10 << 20
	// MaxDataRows is the most users one data file may list.
	MaxDataRows = 50_000
	// MaxControlBytes is the largest control file: 256 KiB.
	MaxControlBytes = 256 << 10
)

// Bounds of a panel user's fields. User numbers and code lengths are those
// of real panels (panel/sim takes the same numbers, and codes of 4 to 8
// digits). Partitions stop at 32 as the import's contract has it: the
// panel protocol sets no bound of its own, and the 64 the sync engine
// allows is a sanity bound on what panels send, not what a user may get.
const (
	minUserNumber  = 1
	maxUserNumber  = 9999
	minPartition   = 1
	maxPartition   = 32
	minCodeLength  = 4
	maxCodeLength  = 8
	maxNameLength  = 200
	maxSchedule    = 200
	maxExternalID  = 64
	maxEmailLength = 254
	maxLocation    = 200
	maxColumnName  = 200
)

// Limits of problem reports: how many a Problems lists, and how much of a
// value a message quotes.
const (
	maxProblems    = 1000
	maxQuotedRunes = 40
)

// defaultAuthority is the authority of a row that gives none, unless the
// control file maps "" to another.
const defaultAuthority = panel.AuthorityStandard

// Bytes the readers look for.
var (
	newline   = []byte{'\n'}
	openBrace = []byte{'{'}
)

// Format is the format of a data file.
type Format string

// Data file formats.
const (
	FormatCSV  Format = "csv"
	FormatJSON Format = "json"
)

// Record is one valid row of a data file.
type Record struct {
	// Row is where the record is in the file: its spreadsheet row for CSV
	// (the header is row 1), its 1-based index for JSON.
	Row int
	// Location is the trimmed value of the control file's location column,
	// or "" when the control file names none. Rows whose location cells
	// differ in any way, case included, are for different locations as far
	// as the duplicate checks here go.
	Location   string
	ExternalID string
	Name       string
	Email      string
	UserNumber int
	// Authority is one of the panel.Authority constants.
	Authority string
	// Partitions are sorted and free of repeats. They are the row's own,
	// else the control file's defaults, else empty.
	Partitions []int
	Schedule   string
	// Code is the user's PIN, 4 to 8 digits, or "" when the row gives none.
	// It is a secret: never log it or send it back.
	Code string
}

// field is one thing a column can give a record: a standard field, the
// location, or nothing (an ignored column).
type field uint8

const (
	fieldExternalID field = iota
	fieldName
	fieldEmail
	fieldUserNumber
	fieldAuthority
	fieldPartitions
	fieldSchedule
	fieldCode
	// fieldLocation is not a standard field: the control file's
	// location_column gives it.
	fieldLocation
	// numFields counts the fields a row holds cells for.
	numFields
	// fieldIgnore is what a column mapped to "" gives.
	fieldIgnore = numFields
)

// standardFields are the names of the standard fields, in field order.
var standardFields = [...]string{
	fieldExternalID: "external_id",
	fieldName:       "name",
	fieldEmail:      "email",
	fieldUserNumber: "user_number",
	fieldAuthority:  "authority",
	fieldPartitions: "partitions",
	fieldSchedule:   "schedule",
	fieldCode:       "code",
}

// standardField returns the field a standard name stands for.
func standardField(name string) (field, bool) {
	for f, n := range standardFields {
		if n == name {
			return field(f), true
		}
	}
	return 0, false
}

// authorities are the panel's authority levels, in the order messages
// list them.
var authorities = [...]string{
	panel.AuthorityMaster,
	panel.AuthorityStandard,
	panel.AuthorityArmOnly,
	panel.AuthorityDuress,
	panel.AuthorityGuest,
}

func isAuthority(s string) bool {
	for _, a := range authorities {
		if a == s {
			return true
		}
	}
	return false
}
