package importfile

import (
	"bytes"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/go-json-experiment/json/jsontext"
)

// CodeMask is what a masked code reads in a download.
const CodeMask = "****"

// MaskCodes returns the data file with every code replaced by CodeMask, so
// that an upload can be kept as it was received for a later download
// without keeping the secrets in it. It is meant for files Parse accepted,
// read with the same ctl.
//
// The codes are in whichever columns Parse would take the code from under
// ctl: the standard column code (unless the control file maps it to
// another field, or to "" to ignore it), and any column the control file
// maps to code. A cell or value that holds a code becomes CodeMask; one
// that holds none (an empty or all-space cell, an empty string, null)
// stays as it is, so that a download still tells which users had a code.
// A JSON code that is not a string is masked too: whatever it is, it may
// spell the code.
//
// A CSV file comes back read and written by encoding/csv: the same rows
// (entirely empty lines left out) and cells, the header as the file spells
// it, CRLF line ends when its first line has one and LF otherwise, and no
// byte order mark. A JSON file comes back compact (its whitespace is not
// kept), with its keys in their order and spelling and every other value
// byte for byte as it was, escapes included.
//
// MaskCodes refuses, with a *Problems and no file, anything it cannot mask
// with certainty: text that is not CSV or JSON, a file bigger than
// MaxDataBytes or not UTF-8, a column or key Parse would not place, a CSV
// row whose cells do not line up with the header, a JSON user that is not
// an object, a ctl Parse refuses. It never returns a file with only some of
// its codes masked, and its messages quote nothing of the file.
func MaskCodes(data []byte, format Format, ctl Control) ([]byte, error) {
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
	var masked []byte
	switch {
	case msg != "":
		c.add(0, "", msg)
	case len(bytes.TrimSpace(data)) == 0:
		c.add(0, "", "the data file is empty")
	case format == FormatCSV:
		masked = maskCSV(data, newPlan(ctl), c)
	case format == FormatJSON:
		masked = maskJSON(data, newPlan(ctl), c)
	default:
		c.add(0, "", fmt.Sprintf("unknown data file format %s: use csv or json", quote(string(format))))
	}
	if err := c.err(); err != nil {
		return nil, err
	}
	return masked, nil
}

// holdsCode reports whether a code cell's text is a code to mask. Parse
// trims cells, so one of nothing but spaces gives no code.
func holdsCode(text string) bool { return strings.TrimSpace(text) != "" }

// maskCSV masks the codes of a CSV file, reporting to c what keeps it from
// doing so; it returns nil then.
func maskCSV(data []byte, p *plan, c *collector) []byte {
	rows := newCSVRows(data)
	header, err := rows.next()
	if err != nil {
		c.add(rows.row, "", csvErrorMessage(err))
		return nil
	}
	var codes []int // positions of the columns that give the code
	for i, cell := range header {
		f, known := p.resolve(normalize(cell))
		if !known {
			// An unplaced column could be a code under a name nothing
			// maps, or the header a row of data; Parse refuses both.
			c.add(rows.row, "", fmt.Sprintf("column %d of the header row is neither a standard field nor mapped by the control file", i+1))
			return nil
		}
		if f == fieldCode {
			codes = append(codes, i)
		}
	}
	out := newCSVWriter(len(data), firstLineEndsCRLF(data))
	out.write(header)
	// The reader reuses the header's slice for the rows, so only its
	// length is kept.
	columns := len(header)
	for {
		record, err := rows.next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			c.add(rows.row, "", csvErrorMessage(err))
			return nil
		}
		if len(record) != columns {
			// Which cell holds the code cannot be told, and Parse refuses
			// such a row anyway.
			c.add(rows.row, "", fmt.Sprintf("the row has %s but the header has %d, so its code cannot be found", plural(len(record), "cell", "cells"), columns))
			return nil
		}
		for _, i := range codes {
			if holdsCode(record[i]) {
				record[i] = CodeMask
			}
		}
		out.write(record)
	}
	masked, err := out.finish()
	if err != nil {
		c.add(0, "", "the data file cannot be written back as CSV")
		return nil
	}
	return masked
}

// firstLineEndsCRLF reports whether the first line of a file ends with
// CRLF, which tells the line ends its author's tools use.
func firstLineEndsCRLF(data []byte) bool {
	end := bytes.IndexByte(data, '\n')
	return end > 0 && data[end-1] == '\r'
}

// csvWriter writes records with encoding/csv so that encoding/csv reads
// the very same cells back. encoding/csv's reader turns the CRLF that ends a
// line into a line feed, inside quoted cells too, and its writer in
// CRLF mode drops carriage returns from cells; so the writer stays in LF
// mode and carriage returns are added where the reader will take them off.
type csvWriter struct {
	buf  bytes.Buffer
	w    *csv.Writer
	crlf bool
	// cells is reused to hold a record's cells as written.
	cells []string
}

func newCSVWriter(size int, crlf bool) *csvWriter {
	cw := &csvWriter{crlf: crlf}
	// Room for the file as it came and a little more: a masked code can be
	// longer than the code, and a cell the file left bare may be quoted.
	cw.buf.Grow(size + size/16)
	cw.w = csv.NewWriter(&cw.buf)
	return cw
}

// write writes one record with the file's line end.
func (cw *csvWriter) write(record []string) {
	if len(record) == 1 && record[0] == "" {
		// encoding/csv writes a lone empty cell as an empty line, which
		// readers skip: quoted, the row stays a row.
		cw.w.Flush()
		cw.buf.WriteString(`""`)
		cw.buf.WriteString(cw.lineEnd())
		return
	}
	cw.cells = cw.cells[:0]
	for _, cell := range record {
		cw.cells = append(cw.cells, cw.lineBreaks(cell))
	}
	// Writing to a bytes.Buffer does not fail; finish reports any error
	// all the same.
	_ = cw.w.Write(cw.cells)
	if cw.crlf {
		// In LF mode every record ends with one "\n".
		cw.w.Flush()
		cw.buf.Truncate(cw.buf.Len() - 1)
		cw.buf.WriteString("\r\n")
	}
}

// lineBreaks returns a cell as it must be written for encoding/csv to read
// it back. The reader takes the carriage return off each CRLF, so one more
// goes before each line feed that follows a carriage return; in a CRLF file
// one goes before every line feed, so that the line breaks in cells match
// the file's own.
func (cw *csvWriter) lineBreaks(cell string) string {
	if strings.IndexByte(cell, '\n') < 0 {
		return cell
	}
	if cw.crlf {
		return strings.ReplaceAll(cell, "\n", "\r\n")
	}
	return strings.ReplaceAll(cell, "\r\n", "\r\r\n")
}

func (cw *csvWriter) lineEnd() string {
	if cw.crlf {
		return "\r\n"
	}
	return "\n"
}

// finish returns what was written.
func (cw *csvWriter) finish() ([]byte, error) {
	cw.w.Flush()
	if err := cw.w.Error(); err != nil {
		return nil, err
	}
	return cw.buf.Bytes(), nil
}

// jsonMasker copies a JSON data file token by token, masking the values of
// the keys that give the code.
type jsonMasker struct {
	plan *plan
	c    *collector
	data []byte
	dec  *jsontext.Decoder
	enc  *jsontext.Encoder
	// keys remembers what each key, as spelt in the file, gives.
	keys map[string]jsonKey
	// unquoted is reused to unescape keys written with escapes.
	unquoted []byte
}

// maskJSON masks the codes of a JSON file, reporting to c what keeps it
// from doing so; it returns nil then.
func maskJSON(data []byte, p *plan, c *collector) []byte {
	var out bytes.Buffer
	out.Grow(len(data))
	m := &jsonMasker{
		plan: p,
		c:    c,
		data: data,
		dec:  newJSONDecoder(data),
		// A key given twice is copied as it is, like any other: the
		// encoder must not refuse what the decoder let through. Strings
		// keep their escapes, so that values are copied byte for byte.
		enc:  jsontext.NewEncoder(&out, jsontext.AllowDuplicateNames(true), jsontext.PreserveRawStrings(true)),
		keys: make(map[string]jsonKey),
	}
	if !m.maskFile() {
		return nil
	}
	return out.Bytes()
}

// jsonShape is the message for a file of neither JSON shape.
const jsonShape = `the data file must be a JSON array of users, or an object whose only key is "users"`

// maskFile copies the whole file: an array of users, or an object whose
// only key is "users", holding that array. It returns false once it has
// reported a problem.
func (m *jsonMasker) maskFile() bool {
	tok, err := m.dec.ReadToken()
	if err != nil {
		return m.readFailed(0, err)
	}
	wrapped := tok.Kind() == '{'
	if wrapped {
		if tok, err = m.dec.ReadToken(); err != nil {
			return m.readFailed(0, err)
		}
		if tok.Kind() != '"' || tok.String() != "users" {
			return m.refuse(0, jsonShape)
		}
		if !m.wrote(m.enc.WriteToken(jsontext.BeginObject)) || !m.wrote(m.enc.WriteToken(jsontext.String("users"))) {
			return false
		}
		if tok, err = m.dec.ReadToken(); err != nil {
			return m.readFailed(0, err)
		}
	}
	if tok.Kind() != '[' {
		return m.refuse(0, jsonShape)
	}
	if !m.wrote(m.enc.WriteToken(jsontext.BeginArray)) {
		return false
	}
	for n := 1; m.dec.PeekKind() != ']'; n++ {
		if m.dec.PeekKind() != '{' {
			// Either broken text, whose error reading it gives, or a value
			// that cannot be a user.
			if _, err := m.dec.ReadValue(); err != nil {
				return m.readFailed(n, err)
			}
			return m.refuse(n, "each user must be a JSON object")
		}
		if !m.maskUser(n) {
			return false
		}
	}
	// The closing delimiters; the decoder checks that they match.
	if _, err := m.dec.ReadToken(); err != nil {
		return m.readFailed(0, err)
	}
	if !m.wrote(m.enc.WriteToken(jsontext.EndArray)) {
		return false
	}
	if wrapped {
		if tok, err = m.dec.ReadToken(); err != nil {
			return m.readFailed(0, err)
		}
		if tok.Kind() != '}' {
			return m.refuse(0, jsonShape)
		}
		if !m.wrote(m.enc.WriteToken(jsontext.EndObject)) {
			return false
		}
	}
	if _, err := m.dec.ReadToken(); !errors.Is(err, io.EOF) {
		return m.refuse(0, "the data file must hold one JSON value and nothing after it")
	}
	return true
}

// maskUser copies user n, an object, masking its code.
func (m *jsonMasker) maskUser(n int) bool {
	if _, err := m.dec.ReadToken(); err != nil {
		return m.readFailed(n, err)
	}
	if !m.wrote(m.enc.WriteToken(jsontext.BeginObject)) {
		return false
	}
	for m.dec.PeekKind() != '}' {
		// A broken key makes ReadValue fail, as it does at the end of a
		// truncated file, where PeekKind reports no kind.
		raw, err := m.dec.ReadValue()
		if err != nil {
			return m.readFailed(n, err)
		}
		key, err := m.key(raw)
		if err != nil {
			return m.readFailed(n, err)
		}
		if !key.known {
			return m.refuse(n, "the user has a key that is neither a standard field nor mapped by the control file")
		}
		if !m.wrote(m.enc.WriteValue(raw)) {
			return false
		}
		if key.f == fieldCode {
			if !m.maskCode(n) {
				return false
			}
		} else if !m.copyValue(n) {
			return false
		}
	}
	if _, err := m.dec.ReadToken(); err != nil {
		return m.readFailed(n, err)
	}
	return m.wrote(m.enc.WriteToken(jsontext.EndObject))
}

// key returns what an object key, raw as the file has it, gives.
func (m *jsonMasker) key(raw jsontext.Value) (jsonKey, error) {
	// The decoder has checked the key's syntax: it is quoted, and any
	// escape in it is valid.
	text := raw[1 : len(raw)-1]
	if bytes.IndexByte(text, '\\') >= 0 {
		var err error
		if m.unquoted, err = jsontext.AppendUnquote(m.unquoted[:0], raw); err != nil {
			return jsonKey{}, err
		}
		text = m.unquoted
	}
	if key, cached := m.keys[string(text)]; cached {
		return key, nil
	}
	key := jsonKey{name: string(text)}
	key.f, key.known = m.plan.resolve(normalize(key.name))
	m.keys[key.name] = key
	return key, nil
}

// maskCode copies the value of a code key: null and strings that hold no
// code as they are, CodeMask for anything else.
func (m *jsonMasker) maskCode(n int) bool {
	switch m.dec.PeekKind() {
	case 'n':
		return m.copyValue(n)
	case '"':
		raw, err := m.dec.ReadValue()
		if err != nil {
			return m.readFailed(n, err)
		}
		text := raw[1 : len(raw)-1]
		if bytes.IndexByte(text, '\\') >= 0 {
			// Escapes can spell spaces, or hide digits.
			if m.unquoted, err = jsontext.AppendUnquote(m.unquoted[:0], raw); err != nil {
				return m.readFailed(n, err)
			}
			text = m.unquoted
		}
		if !holdsCode(string(text)) {
			return m.wrote(m.enc.WriteValue(raw))
		}
	default:
		if err := m.dec.SkipValue(); err != nil {
			return m.readFailed(n, err)
		}
	}
	return m.wrote(m.enc.WriteToken(jsontext.String(CodeMask)))
}

// copyValue copies the next value as it is.
func (m *jsonMasker) copyValue(n int) bool {
	raw, err := m.dec.ReadValue()
	if err != nil {
		return m.readFailed(n, err)
	}
	return m.wrote(m.enc.WriteValue(raw))
}

// readFailed reports a JSON syntax error at user n (0 for the file as a
// whole), without the decoder's text, which could quote a code.
func (m *jsonMasker) readFailed(n int, err error) bool {
	return m.refuse(n, "the data file is "+jsonErrorMessage(m.data, err, false))
}

// wrote reports whether a write succeeded, reporting a problem when not.
// The encoder's error is left out of it, as it could quote the value.
func (m *jsonMasker) wrote(err error) bool {
	if err != nil {
		return m.refuse(0, "the data file cannot be written back as JSON")
	}
	return true
}

// refuse reports a problem with user n (0 for the file as a whole), which
// ends the masking.
func (m *jsonMasker) refuse(n int, message string) bool {
	m.c.add(n, "", message)
	return false
}
