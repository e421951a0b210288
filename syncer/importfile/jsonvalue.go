package importfile

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"
	"unicode/utf8"

	"github.com/go-json-experiment/json/jsontext"
)

// jsonKind is the kind of a JSON value.
type jsonKind uint8

const (
	jsonNull jsonKind = iota
	jsonBool
	jsonNumber
	jsonString
	jsonArray
	jsonObject
)

// jsonValue is a JSON value that keeps what encoding/json's maps lose: the
// order of an object's keys and any key given twice, so that a strict
// reader can report each problem with its path.
type jsonValue struct {
	kind jsonKind
	// text is a string's value or a number's literal.
	text string
	// keys are an object's keys in file order; items are its values, or an
	// array's items.
	keys  []string
	items []jsonValue
}

// maxControlDepth bounds the nesting of a control file, whose deepest
// valid value is two levels down; it keeps hostile input from recursing.
const maxControlDepth = 16

var errTooDeep = errors.New("nested too deeply")

// newJSONDecoder returns a decoder that leaves keys given twice to the
// caller, who reports each with its path rather than stopping at the first.
func newJSONDecoder(data []byte) *jsontext.Decoder {
	return jsontext.NewDecoder(bytes.NewReader(data), jsontext.AllowDuplicateNames(true))
}

// readJSONValue reads the next value from dec.
func readJSONValue(dec *jsontext.Decoder, depth int) (jsonValue, error) {
	tok, err := dec.ReadToken()
	if err != nil {
		return jsonValue{}, err
	}
	switch kind := tok.Kind(); kind {
	case 'n':
		return jsonValue{kind: jsonNull}, nil
	case 't', 'f':
		return jsonValue{kind: jsonBool}, nil
	case '0':
		return jsonValue{kind: jsonNumber, text: tok.String()}, nil
	case '"':
		return jsonValue{kind: jsonString, text: tok.String()}, nil
	case '{', '[':
		if depth >= maxControlDepth {
			return jsonValue{}, errTooDeep
		}
		v := jsonValue{kind: jsonArray}
		if kind == '{' {
			v.kind = jsonObject
		}
		for {
			if next := dec.PeekKind(); next == '}' || next == ']' || next == jsontext.KindInvalid {
				break
			}
			if v.kind == jsonObject {
				name, err := dec.ReadToken()
				if err != nil {
					return jsonValue{}, err
				}
				v.keys = append(v.keys, name.String())
			}
			item, err := readJSONValue(dec, depth+1)
			if err != nil {
				return jsonValue{}, err
			}
			v.items = append(v.items, item)
		}
		// The closing delimiter, or the error that kept it from coming.
		if _, err := dec.ReadToken(); err != nil {
			return jsonValue{}, err
		}
		return v, nil
	}
	return jsonValue{}, fmt.Errorf("unexpected JSON token %v", tok.Kind())
}

// jsonErrorMessage describes a decoding error of data for a person. With
// detail false it leaves out the decoder's own text, which quotes the
// offending character: in a data file that could be a digit of a code.
func jsonErrorMessage(data []byte, err error, detail bool) string {
	var syntax *jsontext.SyntacticError
	switch {
	case errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		return "not valid JSON: it ends before its last value is complete"
	case errors.Is(err, errTooDeep):
		return fmt.Sprintf("nested more than %d levels deep", maxControlDepth)
	case errors.As(err, &syntax):
		line, column := position(data, syntax.ByteOffset)
		if detail {
			return fmt.Sprintf("not valid JSON at line %d, column %d: %s", line, column, strings.TrimPrefix(syntax.Err.Error(), "jsontext: "))
		}
		return fmt.Sprintf("not valid JSON at line %d, column %d", line, column)
	}
	return "not valid JSON"
}

// position returns the 1-based line and column (in characters) of a byte
// offset in data.
func position(data []byte, offset int64) (line, column int) {
	offset = min(max(offset, 0), int64(len(data)))
	before := data[:offset]
	line = 1 + bytes.Count(before, []byte{'\n'})
	lineStart := bytes.LastIndexByte(before, '\n') + 1
	return line, 1 + utf8.RuneCount(before[lineStart:])
}

// byteOrderMark is UTF-8's; spreadsheet programs start CSV files with it.
var byteOrderMark = []byte{0xEF, 0xBB, 0xBF}

// checkEncoding strips a UTF-8 byte order mark and returns a problem's
// message when the text is not UTF-8.
func checkEncoding(data []byte, what string) ([]byte, string) {
	data = bytes.TrimPrefix(data, byteOrderMark)
	if bytes.HasPrefix(data, []byte{0xFF, 0xFE}) || bytes.HasPrefix(data, []byte{0xFE, 0xFF}) {
		return data, "the " + what + " is UTF-16: save it as UTF-8"
	}
	if !utf8.Valid(data) {
		bad := 0
		for bad < len(data) {
			r, size := utf8.DecodeRune(data[bad:])
			if r == utf8.RuneError && size <= 1 {
				break
			}
			bad += size
		}
		line, _ := position(data, int64(bad))
		return data, fmt.Sprintf("the %s is not UTF-8 (the first byte that is not is on line %d): save it as UTF-8", what, line)
	}
	return data, ""
}
