package importfile

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/go-json-experiment/json/jsontext"
)

// jsonRows reads the users of a JSON data file one token at a time, so
// that a key given twice, a key no column matches and a value of the wrong
// type are each reported at their row, and a 10 MiB file is never held
// twice in memory.
type jsonRows struct {
	v    *validator
	dec  *jsontext.Decoder
	data []byte
	// keys remembers what each key, as spelt in the file, gives. Keys are
	// looked up by their raw bytes, which costs no allocation; the string
	// is made once per spelling.
	keys map[string]jsonKey
	// unknown holds the unknown keys (normalised) reported already: once
	// per file, as a CSV header would report them.
	unknown map[string]bool
	// unquoted is reused to unescape keys written with escapes.
	unquoted []byte
}

type jsonKey struct {
	name  string
	f     field
	known bool
}

// readJSON reads a JSON data file: an array of users, or an object whose
// only key is "users", holding that array.
func (v *validator) readJSON(data []byte) {
	s := &jsonRows{v: v, dec: newJSONDecoder(data), data: data, keys: make(map[string]jsonKey), unknown: make(map[string]bool)}
	const shape = `the data file must be a JSON array of users, or an object whose only key is "users"`
	tok, err := s.dec.ReadToken()
	if err != nil {
		s.fail(0, err)
		return
	}
	wrapped := tok.Kind() == '{'
	if wrapped {
		if tok, err = s.dec.ReadToken(); err != nil {
			s.fail(0, err)
			return
		}
		if tok.Kind() != '"' || tok.String() != "users" {
			v.c.add(0, "", shape)
			return
		}
		if tok, err = s.dec.ReadToken(); err != nil {
			s.fail(0, err)
			return
		}
	}
	if tok.Kind() != '[' {
		v.c.add(0, "", shape)
		return
	}
	var r row
	for s.more() {
		if s.dec.PeekKind() == jsontext.KindInvalid {
			// The text between two users is broken: no one row is at fault.
			_, err := s.dec.ReadToken()
			s.fail(0, err)
			return
		}
		if !v.countRow() {
			return
		}
		if !s.readRow(v.rows, &r) {
			return
		}
	}
	// The closing delimiters; the decoder checks that they match.
	if _, err := s.dec.ReadToken(); err != nil {
		s.fail(0, err)
		return
	}
	if wrapped {
		if tok, err = s.dec.ReadToken(); err != nil {
			s.fail(0, err)
			return
		}
		if tok.Kind() != '}' {
			v.c.add(0, "", shape)
			return
		}
	}
	if _, err := s.dec.ReadToken(); !errors.Is(err, io.EOF) {
		v.c.add(0, "", "the data file must hold one JSON value and nothing after it")
	}
}

// more reports whether the array or object being read has another value.
// On an error it reports true, so that the next read returns the error.
func (s *jsonRows) more() bool {
	k := s.dec.PeekKind()
	return k != ']' && k != '}'
}

// fail reports a JSON syntax error, which ends the reading.
func (s *jsonRows) fail(n int, err error) {
	s.v.c.add(n, "", "the data file is "+jsonErrorMessage(s.data, err, false))
}

// readRow reads user n into r and validates it. It returns false when the
// file cannot be read further.
func (s *jsonRows) readRow(n int, r *row) bool {
	if s.dec.PeekKind() != '{' {
		s.v.c.add(n, "", "each user must be a JSON object")
		if err := s.dec.SkipValue(); err != nil {
			s.fail(n, err)
			return false
		}
		return true
	}
	if _, err := s.dec.ReadToken(); err != nil {
		s.fail(n, err)
		return false
	}
	*r = row{n: n, partitions: r.partitions[:0]}
	for s.more() {
		key, err := s.readKey(n)
		if err != nil {
			s.fail(n, err)
			return false
		}
		f, ok := key.f, key.known && key.f != fieldIgnore
		if ok && r.column[f] != "" {
			if r.column[f] == key.name {
				s.v.c.add(n, columnLabel(key.name), fmt.Sprintf("key %s appears twice in this user", quote(key.name)))
			} else {
				s.v.c.add(n, columnLabel(key.name), fmt.Sprintf("keys %s and %s both give %s", quote(r.column[f]), quote(key.name), f.name()))
			}
			ok = false
		}
		if !ok {
			if err := s.dec.SkipValue(); err != nil {
				s.fail(n, err)
				return false
			}
			continue
		}
		r.column[f] = key.name
		if err := s.readValue(r, f); err != nil {
			s.fail(n, err)
			return false
		}
	}
	if _, err := s.dec.ReadToken(); err != nil {
		s.fail(n, err)
		return false
	}
	s.v.validate(r)
	return true
}

// readKey reads an object key and returns what it gives, reporting an
// unknown key the first time it is seen.
func (s *jsonRows) readKey(n int) (jsonKey, error) {
	raw, err := s.dec.ReadValue()
	if err != nil {
		return jsonKey{}, err
	}
	// The decoder has checked the key's syntax: it is quoted, and any
	// escape in it is valid.
	text := raw[1 : len(raw)-1]
	if bytes.IndexByte(text, '\\') >= 0 {
		if s.unquoted, err = jsontext.AppendUnquote(s.unquoted[:0], raw); err != nil {
			return jsonKey{}, err
		}
		text = s.unquoted
	}
	if key, cached := s.keys[string(text)]; cached {
		return key, nil
	}
	key := jsonKey{name: string(text)}
	norm := normalize(key.name)
	key.f, key.known = s.v.plan.resolve(norm)
	if !key.known && !s.unknown[norm] {
		s.unknown[norm] = true
		s.v.c.add(n, columnLabel(key.name), unknownColumn(key.name))
	}
	s.keys[key.name] = key
	return key, nil
}

// readValue reads the value of field f into r.
func (s *jsonRows) readValue(r *row, f field) error {
	switch kind := s.dec.PeekKind(); {
	case kind == '"' && f != fieldPartitions,
		kind == '0' && (f == fieldUserNumber || f == fieldExternalID || f == fieldLocation):
		tok, err := s.dec.ReadToken()
		if err != nil {
			return err
		}
		r.text[f] = strings.TrimSpace(tok.String())
		return nil
	case kind == 'n':
		// null is the same as leaving the key out.
		_, err := s.dec.ReadToken()
		return err
	case kind == '[' && f == fieldPartitions:
		return s.readPartitions(r)
	}
	if err := s.dec.SkipValue(); err != nil {
		return err
	}
	s.v.problem(r, f, typeMessage(f))
	r.done[f] = true
	return nil
}

// readPartitions reads a partitions array, reporting its first bad item.
func (s *jsonRows) readPartitions(r *row) error {
	if _, err := s.dec.ReadToken(); err != nil {
		return err
	}
	r.partitionList = true
	for s.more() {
		kind := s.dec.PeekKind()
		if kind == '[' || kind == '{' {
			if err := s.dec.SkipValue(); err != nil {
				return err
			}
			s.badPartition(r, "an array or object")
			continue
		}
		tok, err := s.dec.ReadToken()
		if err != nil {
			return err
		}
		n := -1
		if kind == '0' {
			n = smallInt(tok.String())
		}
		if n < minPartition || n > maxPartition {
			got := tok.String()
			if kind == '"' || kind == '0' {
				got = quote(got)
			}
			s.badPartition(r, got)
			continue
		}
		r.partitions = append(r.partitions, n)
	}
	_, err := s.dec.ReadToken()
	return err
}

// badPartition reports the first bad item of a partitions array.
func (s *jsonRows) badPartition(r *row, got string) {
	if r.done[fieldPartitions] {
		return
	}
	s.v.problem(r, fieldPartitions, fmt.Sprintf("partitions must be whole numbers from %d to %d, got %s", minPartition, maxPartition, got))
	r.done[fieldPartitions] = true
}
