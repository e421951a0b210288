package importfile

import (
	"bytes"
	"fmt"
	"net/mail"
	"slices"
	"strconv"
	"strings"
)

// Parse reads and validates a data file in the given format, mapping it
// through ctl (the zero Control when the import has no control file).
// It returns the records in file order, or a *Problems listing every
// problem and no records. A ctl that does not pass the control file's own
// checks is refused with a *Problems about the control file.
func Parse(data []byte, format Format, ctl Control) ([]Record, error) {
	cc := &collector{file: fileControl}
	ctl.check(cc)
	if err := cc.err(); err != nil {
		return nil, err
	}
	c := &collector{file: fileData}
	if len(data) > MaxDataBytes {
		c.add(0, "", fmt.Sprintf("the data file is %d bytes; it may be at most %d (10 MiB)", len(data), MaxDataBytes))
		return nil, c.err()
	}
	data, msg := checkEncoding(data, "data file")
	switch {
	case msg != "":
		c.add(0, "", msg)
	case len(bytes.TrimSpace(data)) == 0:
		c.add(0, "", "the data file is empty")
	case format == FormatCSV:
		v := newValidator(newPlan(ctl), c, bytes.Count(data, newline))
		v.readCSV(data)
		return v.result()
	case format == FormatJSON:
		v := newValidator(newPlan(ctl), c, bytes.Count(data, openBrace))
		v.readJSON(data)
		return v.result()
	default:
		c.add(0, "", fmt.Sprintf("unknown data file format %s: use csv or json", quote(string(format))))
	}
	return nil, c.err()
}

// validator turns rows into records, checking each field and the rows
// against each other.
type validator struct {
	plan    *plan
	c       *collector
	rows    int // data rows read so far
	records []Record
	// locations numbers each location in order of appearance, so that
	// the repeat checks hash integers rather than names; rows come grouped
	// by location, so the last one is kept at hand.
	locations    map[string]int
	lastLocation string
	lastIndex    int
	// numbers and ids hold the first row of each user number and external
	// id, per location.
	numbers map[numberKey]int
	ids     map[idKey]int
	// scratch is reused to parse each row's partitions.
	scratch []int
}

type numberKey struct {
	location, number int
}

type idKey struct {
	location int
	id       string
}

// newValidator returns a validator with room for about estimate rows: a
// count of the file's lines (CSV) or objects (JSON), which sizing the maps
// up front spares many rehashes.
func newValidator(p *plan, c *collector, estimate int) *validator {
	estimate = min(estimate+1, MaxDataRows)
	return &validator{
		plan:      p,
		c:         c,
		records:   make([]Record, 0, estimate),
		locations: map[string]int{"": 0}, // the location last seen is "", number 0
		numbers:   make(map[numberKey]int, estimate),
		ids:       make(map[idKey]int, estimate),
	}
}

// locationIndex returns the number of a location.
func (v *validator) locationIndex(location string) int {
	if location == v.lastLocation {
		return v.lastIndex
	}
	i, seen := v.locations[location]
	if !seen {
		i = len(v.locations)
		v.locations[location] = i
	}
	v.lastLocation, v.lastIndex = location, i
	return i
}

// countRow counts one more data row and reports false, with a problem,
// when the file has more than MaxDataRows.
func (v *validator) countRow() bool {
	v.rows++
	if v.rows > MaxDataRows {
		v.c.add(0, "", fmt.Sprintf("the data file has more than %d rows: split it into files of at most %d", MaxDataRows, MaxDataRows))
		return false
	}
	return true
}

func (v *validator) result() ([]Record, error) {
	if v.c.empty() && len(v.records) == 0 {
		v.c.add(0, "", "the data file lists no users")
	}
	if err := v.c.err(); err != nil {
		return nil, err
	}
	return v.records, nil
}

// row is one data row as a reader hands it over.
type row struct {
	// n is the row's number as Record.Row has it.
	n int
	// text is each field's value, trimmed; "" when the row has none.
	text [numFields]string
	// column is the file's name for each field's column, or "" when the
	// row has no such column.
	column [numFields]string
	// done marks fields whose problem is already reported: a JSON value of
	// the wrong type, or a required column the CSV header lacks.
	done [numFields]bool
	// partitions holds a JSON row's partitions, already checked, when
	// partitionList is set; a CSV row's are in text.
	partitions    []int
	partitionList bool
}

// problem reports a problem with field f of row r, naming the column as
// the file does, or as the control file does when the row has none.
func (v *validator) problem(r *row, f field, message string) {
	column := r.column[f]
	if column == "" {
		column = v.plan.named[f]
	}
	v.c.add(r.n, columnLabel(column), message)
}

// validate checks one row and keeps its record while the file has no
// problem so far.
func (v *validator) validate(r *row) {
	p := v.plan
	rec := Record{Row: r.n}
	locationOK := true
	if p.location != "" && !r.done[fieldLocation] {
		if msg := label("the location", r.text[fieldLocation], maxLocation, true); msg != "" {
			v.problem(r, fieldLocation, msg)
			locationOK = false
		}
		rec.Location = r.text[fieldLocation]
	}

	if s := r.text[fieldName]; !r.done[fieldName] {
		if s == "" {
			v.problem(r, fieldName, "name is required")
		} else if msg := label("name", s, maxNameLength, true); msg != "" {
			v.problem(r, fieldName, msg)
		}
		rec.Name = s
	}

	if s := r.text[fieldUserNumber]; !r.done[fieldUserNumber] {
		n := smallInt(s)
		switch {
		case s == "":
			v.problem(r, fieldUserNumber, "user_number is required")
		case n < minUserNumber || n > maxUserNumber:
			v.problem(r, fieldUserNumber, fmt.Sprintf("user_number must be a whole number from %d to %d, got %s", minUserNumber, maxUserNumber, quote(s)))
		case p.protected[n]:
			v.problem(r, fieldUserNumber, fmt.Sprintf("user number %d is protected by the control file", n))
		default:
			rec.UserNumber = n
		}
	}

	if s := r.text[fieldEmail]; s != "" && !r.done[fieldEmail] {
		if msg := checkEmail(s); msg != "" {
			v.problem(r, fieldEmail, msg)
		}
		rec.Email = s
	}

	if !r.done[fieldAuthority] {
		authority, msg := p.authorityOf(r.text[fieldAuthority])
		if msg != "" {
			v.problem(r, fieldAuthority, msg)
		}
		rec.Authority = authority
	}

	if !r.done[fieldPartitions] {
		list := r.partitions
		if !r.partitionList {
			var msg string
			list, msg = parsePartitions(r.text[fieldPartitions], v.scratch[:0])
			v.scratch = list
			if msg != "" {
				v.problem(r, fieldPartitions, msg)
			}
		}
		rec.Partitions = finishPartitions(list, p.defaults)
	}

	if s := r.text[fieldSchedule]; s != "" && !r.done[fieldSchedule] {
		if msg := label("schedule", s, maxSchedule, false); msg != "" {
			v.problem(r, fieldSchedule, msg)
		}
		rec.Schedule = s
	}

	if s := r.text[fieldCode]; s != "" && !r.done[fieldCode] {
		// The message never repeats the code: codes are secrets.
		if len(s) < minCodeLength || len(s) > maxCodeLength || !isDigits(s) {
			v.problem(r, fieldCode, fmt.Sprintf("code must be %d to %d digits", minCodeLength, maxCodeLength))
		}
		rec.Code = s
	}

	idOK := true
	if s := r.text[fieldExternalID]; s != "" && !r.done[fieldExternalID] {
		if msg := label("external_id", s, maxExternalID, false); msg != "" {
			v.problem(r, fieldExternalID, msg)
			idOK = false
		}
		rec.ExternalID = s
	}

	if locationOK {
		v.checkRepeats(r, rec, idOK)
	}
	if v.c.empty() {
		v.records = append(v.records, rec)
	}
}

// checkRepeats reports a user number or external id that an earlier row
// of the same location already has.
func (v *validator) checkRepeats(r *row, rec Record, idOK bool) {
	location := v.locationIndex(rec.Location)
	if rec.UserNumber != 0 {
		key := numberKey{location, rec.UserNumber}
		if first, seen := v.numbers[key]; seen {
			v.problem(r, fieldUserNumber, fmt.Sprintf("user number %d appears on rows %d and %d%s", rec.UserNumber, first, r.n, v.forLocation(rec)))
		} else {
			v.numbers[key] = r.n
		}
	}
	if rec.ExternalID != "" && idOK {
		key := idKey{location, rec.ExternalID}
		if first, seen := v.ids[key]; seen {
			v.problem(r, fieldExternalID, fmt.Sprintf("external_id %s appears on rows %d and %d%s", quote(rec.ExternalID), first, r.n, v.forLocation(rec)))
		} else {
			v.ids[key] = r.n
		}
	}
}

// forLocation ends a message about a repeat with the location it is in,
// when the file has several.
func (v *validator) forLocation(rec Record) string {
	if v.plan.location == "" {
		return ""
	}
	return " for location " + quote(rec.Location)
}

// authorityOf maps a row's authority value through the control file, then
// to the authority it names; it returns a problem's message for a value
// that is neither.
func (p *plan) authorityOf(s string) (string, string) {
	norm := strings.ToLower(s)
	if a, ok := p.authority[norm]; ok {
		return a, ""
	}
	if s == "" {
		return defaultAuthority, ""
	}
	if isAuthority(norm) {
		return norm, ""
	}
	return "", fmt.Sprintf("authority %s is not one of %s, and the control file does not map it", quote(s), authorityList())
}

// checkEmail returns a problem's message for anything but a bare address.
func checkEmail(s string) string {
	if msg := label("email", s, maxEmailLength, false); msg != "" {
		return msg
	}
	if isPlainAddress(s) {
		return ""
	}
	a, err := mail.ParseAddress(s)
	if err != nil {
		return "email is not a valid address: " + quote(s)
	}
	if a.Name != "" || a.Address != s {
		return "email must be a bare address such as name@example.com, without a name or a comment: " + quote(s)
	}
	return ""
}

// isPlainAddress reports whether s is an address of the everyday kind,
// name.part@host.example, which net/mail accepts as it is. It spares most
// rows net/mail's allocations; anything else goes to net/mail.
func isPlainAddress(s string) bool {
	at := strings.IndexByte(s, '@')
	if at <= 0 {
		return false
	}
	return isDotAtom(s[:at], "._%+-'") && isDotAtom(s[at+1:], ".-")
}

// isDotAtom reports whether s is labels of ASCII letters, digits and the
// given punctuation, joined by single dots.
func isDotAtom(s, punctuation string) bool {
	if s == "" || s[0] == '.' || s[len(s)-1] == '.' || strings.Contains(s, "..") {
		return false
	}
	for i := 0; i < len(s); i++ {
		b := s[i]
		if !(b >= 'a' && b <= 'z' || b >= 'A' && b <= 'Z' || b >= '0' && b <= '9' || strings.IndexByte(punctuation, b) >= 0) {
			return false
		}
	}
	return true
}

// parsePartitions reads partitions written "1;2", "1,2" or "1 2" (or with
// the separators mixed, or repeated), appending
// them to dst. It returns a problem's message for anything else, and for a
// partition outside the panel's range.
func parsePartitions(s string, dst []int) ([]int, string) {
	rest := s
	for {
		rest = strings.TrimLeft(rest, partitionSeparators)
		if rest == "" {
			return dst, ""
		}
		end := strings.IndexAny(rest, partitionSeparators)
		if end < 0 {
			end = len(rest)
		}
		token := rest[:end]
		rest = rest[end:]
		n := smallInt(token)
		switch {
		case n < 0:
			return dst, fmt.Sprintf("partitions must be numbers separated by \";\", \",\" or spaces, got %s", quote(s))
		case n < minPartition || n > maxPartition:
			return dst, fmt.Sprintf("partition %d is outside %d to %d", n, minPartition, maxPartition)
		}
		dst = append(dst, n)
	}
}

// partitionSeparators separate partitions in a CSV cell. Line breaks are
// among them because spreadsheets put one in a cell where people press
// Alt+Enter.
const partitionSeparators = ";, \t\r\n"

// finishPartitions returns a record's own sorted copy of list without
// repeats, or of the defaults when list is empty.
func finishPartitions(list, defaults []int) []int {
	if len(list) == 0 {
		return slices.Clone(defaults)
	}
	slices.Sort(list)
	return slices.Clone(slices.Compact(list))
}

// name returns the name a message uses for what a field gives.
func (f field) name() string {
	if f < fieldLocation {
		return standardFields[f]
	}
	return "the location"
}

// unknownColumn is the message for a column the import cannot place.
func unknownColumn(name string) string {
	return fmt.Sprintf("unknown column %s: it is not a standard field (%s) and the control file does not map it", quote(name), fieldList())
}

// typeMessage is the message for a JSON value of the wrong type.
func typeMessage(f field) string {
	switch f {
	case fieldPartitions:
		return "partitions must be an array of whole numbers, such as [1, 2]"
	case fieldCode:
		return fmt.Sprintf("code must be a string of %d to %d digits", minCodeLength, maxCodeLength)
	case fieldUserNumber:
		return "user_number must be a whole number from " + strconv.Itoa(minUserNumber) + " to " + strconv.Itoa(maxUserNumber)
	}
	return f.name() + " must be a string"
}
