package importfile

import (
	"bytes"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"strings"
)

// csvRows reads the records of a CSV file and numbers them as a
// spreadsheet numbers its rows. encoding/csv skips empty lines, which a
// spreadsheet shows as rows, and a quoted cell may span lines, which a
// spreadsheet shows as one row; so a record's row is one more than the
// last record's plus the empty lines between them.
type csvRows struct {
	r    *csv.Reader
	data []byte
	// read is how many bytes of data the records so far took, and
	// nextLine the line the next record starts on unless empty lines come
	// first.
	read     int64
	nextLine int
	// row is the row of the record last read.
	row int
}

func newCSVRows(data []byte) *csvRows {
	r := csv.NewReader(bytes.NewReader(data))
	// Rows of the wrong length are reported one by one, not as the end of
	// the file.
	r.FieldsPerRecord = -1
	// The slice is reused, not the strings in it: encoding/csv builds each
	// record's cells from one new string, which records may keep.
	r.ReuseRecord = true
	return &csvRows{r: r, data: data, nextLine: 1}
}

// next returns the next record, io.EOF after the last, or a *csv.ParseError
// for text that is not CSV; the row of either is then in s.row.
func (s *csvRows) next() ([]string, error) {
	record, err := s.r.Read()
	if errors.Is(err, io.EOF) {
		return nil, io.EOF
	}
	var line int
	if err == nil {
		line, _ = s.r.FieldPos(0)
	} else if parseErr := (*csv.ParseError)(nil); errors.As(err, &parseErr) {
		line = parseErr.StartLine
	} else {
		return nil, err
	}
	s.row += 1 + max(line-s.nextLine, 0)
	offset := s.r.InputOffset()
	s.nextLine += bytes.Count(s.data[s.read:offset], newline)
	s.read = offset
	return record, err
}

// readCSV reads a CSV data file: its header, then each row.
func (v *validator) readCSV(data []byte) {
	rows := newCSVRows(data)
	header, err := rows.next()
	if err != nil {
		v.c.add(rows.row, "", csvErrorMessage(err))
		return
	}
	var r row
	index, ok := v.readHeader(header, rows.row, &r)
	if !ok {
		return
	}
	// The reader reuses the header's slice for the rows, so only its
	// length is kept.
	columns := len(header)
	for {
		record, err := rows.next()
		if errors.Is(err, io.EOF) {
			return
		}
		if err != nil {
			v.c.add(rows.row, "", csvErrorMessage(err))
			return
		}
		if !v.countRow() {
			return
		}
		if len(record) != columns {
			// The cells cannot be trusted to be in their columns, so none
			// is judged (or quoted: one may be a code).
			v.c.add(rows.row, "", fmt.Sprintf("the row has %s but the header has %d: a cell holding a comma must be in quotes", plural(len(record), "cell", "cells"), columns))
			continue
		}
		r.n = rows.row
		for f, i := range index {
			if i >= 0 {
				r.text[f] = strings.TrimSpace(record[i])
			}
		}
		v.validate(&r)
	}
}

// readHeader places the columns of the header row: for each field, the
// index of the column that gives it, or -1. It fills in the column names
// and the required fields the header lacks in r, and returns false when the
// rows cannot be read at all.
func (v *validator) readHeader(header []string, headerRow int, r *row) ([numFields]int, bool) {
	var index [numFields]int
	for f := range index {
		index[f] = -1
	}
	if len(header) == 1 && strings.ContainsAny(header[0], ";\t") {
		v.c.add(headerRow, "", "the header row is a single column: columns must be separated by commas, and this file seems to use semicolons or tabs")
		return index, false
	}
	positions := make(map[string]int, len(header)) // normalised name → 1-based position
	for i, cell := range header {
		name := strings.TrimSpace(cell)
		position := i + 1
		if name == "" {
			v.c.add(headerRow, "", fmt.Sprintf("column %d has no name in the header row", position))
			continue
		}
		if msg := label("a column name", name, maxColumnName, true); msg != "" {
			v.c.add(headerRow, columnLabel(name), msg)
			continue
		}
		norm := normalize(name)
		f, known := v.plan.resolve(norm)
		switch {
		case !known && isDigits(name):
			// A header of numbers nothing maps is most likely a data row in
			// the header's place; its cells are not quoted, as one may be a
			// code.
			v.c.add(headerRow, "", fmt.Sprintf("column %d is named with a number: the first row must name the columns", position))
			continue
		case !known:
			v.c.add(headerRow, columnLabel(name), unknownColumn(name))
			continue
		}
		if first, dup := positions[norm]; dup {
			v.c.add(headerRow, columnLabel(name), fmt.Sprintf("column %s appears twice in the header row (columns %d and %d)", quote(name), first, position))
			continue
		}
		positions[norm] = position
		switch {
		case f == fieldIgnore:
		case index[f] >= 0:
			v.c.add(headerRow, columnLabel(name), fmt.Sprintf("columns %s and %s both give %s", quote(r.column[f]), quote(name), f.name()))
		default:
			index[f] = i
			r.column[f] = name
		}
	}
	for _, f := range [...]field{fieldName, fieldUserNumber, fieldLocation} {
		if index[f] >= 0 || (f == fieldLocation && v.plan.location == "") {
			continue
		}
		r.done[f] = true
		named := v.plan.named[f]
		switch {
		case f == fieldLocation:
			v.c.add(headerRow, columnLabel(named), fmt.Sprintf("the file has no column %s, which the control file names as the location column", quote(named)))
		case named != standardFields[f]:
			v.c.add(headerRow, columnLabel(named), fmt.Sprintf("the file has no column %s, which the control file maps to %s, a required field", quote(named), f.name()))
		default:
			v.c.add(headerRow, named, fmt.Sprintf("the file has no %s column, which is required", named))
		}
	}
	return index, true
}

// csvErrorMessage describes a CSV syntax error in words of the file. It
// quotes no text: the line may hold a code.
func csvErrorMessage(err error) string {
	var parseErr *csv.ParseError
	if !errors.As(err, &parseErr) {
		return "the data file cannot be read as CSV"
	}
	switch {
	case errors.Is(parseErr.Err, csv.ErrBareQuote):
		return fmt.Sprintf("line %d, position %d: a quote (\") inside a cell that does not start with one: put the whole cell in quotes and double each quote in it", parseErr.Line, parseErr.Column)
	case errors.Is(parseErr.Err, csv.ErrQuote):
		return fmt.Sprintf("line %d, position %d: a quoted cell is not closed, or has text after its closing quote", parseErr.Line, parseErr.Column)
	}
	return fmt.Sprintf("line %d: the data file is not valid CSV", parseErr.Line)
}
