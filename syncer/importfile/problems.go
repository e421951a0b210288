package importfile

import (
	"errors"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/panelsync/panelsync/models"
)

// Problem is one thing wrong with a file.
type Problem struct {
	// Row is the data row at fault (see Record.Row), or 0 for the file as a
	// whole. Problems of the header row of a CSV file are on the header's
	// row, which is 1 unless empty lines come before it.
	Row int
	// Column is the data file's column at fault, spelt as the file spells
	// it (not the field it maps to), or "" when no one column is. For the
	// control file it is the JSON path of the value at fault, such as
	// columns.PIN or protected_user_numbers[2].
	Column string
	// Message says what is wrong in words a person can act on. It never
	// holds a user code.
	Message string
}

// Problems is the error Parse and ParseControl return: every problem
// found in one file, in row order, file-wide problems first.
type Problems struct {
	// File is "data" or "control".
	File string
	// List holds at most 1,000 problems.
	List []Problem
	// Omitted counts the problems beyond those in List.
	Omitted int
}

// Error summarises the problems with the first of them, as in
// "data file: 3 problems; row 2, column PIN: code must be 4 to 8 digits".
func (p *Problems) Error() string {
	var b strings.Builder
	n := len(p.List) + p.Omitted
	b.WriteString(p.File)
	b.WriteString(" file: ")
	b.WriteString(plural(n, "problem", "problems"))
	if len(p.List) == 0 {
		return b.String()
	}
	first := p.List[0]
	b.WriteString("; ")
	if first.Row > 0 {
		b.WriteString("row ")
		b.WriteString(strconv.Itoa(first.Row))
		if first.Column != "" {
			b.WriteString(", ")
		}
	}
	if first.Column != "" {
		if p.File != fileControl {
			b.WriteString("column ")
		}
		b.WriteString(first.Column)
	}
	if first.Row > 0 || first.Column != "" {
		b.WriteString(": ")
	}
	b.WriteString(first.Message)
	return b.String()
}

// Names of the files, as Problems.File holds them.
const (
	fileData    = "data"
	fileControl = "control"
)

// collector gathers the problems of one file, keeping at most maxProblems
// and counting the rest.
type collector struct {
	file    string
	list    []Problem
	omitted int
}

func (c *collector) add(row int, column, message string) {
	p := Problem{Row: row, Column: column, Message: message}
	if len(c.list) < maxProblems {
		c.list = append(c.list, p)
		return
	}
	c.omitted++
	// A problem with the file as a whole explains the rest, so it takes
	// the place of the last row problem rather than being the one left out.
	if row == 0 {
		for i := len(c.list) - 1; i >= 0; i-- {
			if c.list[i].Row != 0 {
				c.list[i] = p
				return
			}
		}
	}
}

func (c *collector) empty() bool { return len(c.list) == 0 }

// err returns the problems as a *Problems, or nil when there are none.
func (c *collector) err() error {
	if c.empty() {
		return nil
	}
	slices.SortStableFunc(c.list, func(a, b Problem) int { return a.Row - b.Row })
	return &Problems{File: c.file, List: c.list, Omitted: c.omitted}
}

// quote quotes a value for a message, escaping control characters and
// cutting it to about maxQuotedRunes characters. Never pass it a code.
func quote(s string) string {
	n := 0
	for i := range s {
		if n == maxQuotedRunes {
			return strconv.Quote(s[:i]) + "…"
		}
		n++
	}
	return strconv.Quote(s)
}

// columnLabel is how a problem names a column: as the file spells it when
// that is printable and short, quoted and cut otherwise, so that a hostile
// header cannot forge lines in a log or a mail.
func columnLabel(name string) string {
	if utf8.ValidString(name) && utf8.RuneCountInString(name) <= maxQuotedRunes && strings.IndexFunc(name, isControl) < 0 {
		return name
	}
	return quote(name)
}

// isControl matches the characters models.Label refuses.
func isControl(r rune) bool { return r < 0x20 || r == 0x7f }

// label checks a text value with models.Label and returns the problem's
// message, or "" when the value is fine.
func label(name, value string, maxRunes int, required bool) string {
	_, err := models.Label(name, value, maxRunes, required)
	if err == nil {
		return ""
	}
	var e *models.Error
	if errors.As(err, &e) {
		return e.Message
	}
	return err.Error()
}

// isDigits reports whether s is one or more ASCII digits.
func isDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// smallInt parses a string of ASCII digits that stands for a user number
// or a partition; it returns -1 for anything else, or for a value too large
// to be either.
func smallInt(s string) int {
	if !isDigits(s) {
		return -1
	}
	s = strings.TrimLeft(s, "0")
	if len(s) > 6 {
		return -1
	}
	n := 0
	for i := 0; i < len(s); i++ {
		n = n*10 + int(s[i]-'0')
	}
	return n
}

// plural returns "1 problem" or "2 problems" style counts.
func plural(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return strconv.Itoa(n) + " " + many
}
