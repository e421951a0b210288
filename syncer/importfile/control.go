package importfile

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"
)

// Control says how a data file maps onto panel users. The zero Control
// is what an import without a control file uses: standard column names,
// standard authorities, one location, nothing protected, no default
// partitions. See the package documentation for the file's format.
type Control struct {
	// Columns maps a data file column (matched ignoring case and
	// surrounding spaces) to a standard field, or to "" to ignore it.
	Columns map[string]string
	// Authority maps a data file's authority value (matched ignoring case
	// and surrounding spaces) to a panel authority. The key "" gives the
	// authority of rows that leave it empty.
	Authority map[string]string
	// LocationColumn names the column that says which location a row is
	// for, or is "" when every row is for the same location.
	LocationColumn string
	// ProtectedUserNumbers are user slots an import must not touch.
	ProtectedUserNumbers []int
	// DefaultPartitions are the partitions of rows that give none.
	DefaultPartitions []int
}

// controlKeys are the keys a control file may hold, as messages list them.
const controlKeys = "columns, authority, location_column, protected_user_numbers and defaults"

// ParseControl reads and validates a control file. It returns a
// *Problems listing every problem, each with the JSON path of the value at
// fault, and a zero Control when there is any.
func ParseControl(data []byte) (Control, error) {
	c := &collector{file: fileControl}
	ctl := readControl(data, c)
	ctl.check(c)
	if err := c.err(); err != nil {
		return Control{}, err
	}
	return ctl, nil
}

// readControl decodes a control file, reporting every value of the wrong
// shape. Values that pass are kept for check, which judges what they say.
func readControl(data []byte, c *collector) Control {
	var ctl Control
	if len(data) > MaxControlBytes {
		c.add(0, "", fmt.Sprintf("the control file is %d bytes; it may be at most %d (256 KiB)", len(data), MaxControlBytes))
		return ctl
	}
	data, msg := checkEncoding(data, "control file")
	if msg != "" {
		c.add(0, "", msg)
		return ctl
	}
	if len(bytes.TrimSpace(data)) == 0 {
		c.add(0, "", "the control file is empty")
		return ctl
	}
	dec := newJSONDecoder(data)
	root, err := readJSONValue(dec, 0)
	if err != nil {
		c.add(0, "", "the control file is "+jsonErrorMessage(data, err, true))
		return ctl
	}
	if _, err := dec.ReadToken(); !errors.Is(err, io.EOF) {
		c.add(0, "", "the control file must hold one JSON object and nothing after it")
		return ctl
	}
	if root.kind != jsonObject {
		c.add(0, "", "the control file must be a JSON object")
		return ctl
	}
	eachKey(root, "", c, func(key string, v jsonValue, path string) {
		switch key {
		case "columns":
			ctl.Columns = readStringMap(v, path, c)
		case "authority":
			ctl.Authority = readStringMap(v, path, c)
		case "location_column":
			switch {
			case v.kind == jsonNull:
			case v.kind != jsonString:
				c.add(0, path, "location_column must be a string")
			case v.text == "":
				c.add(0, path, "location_column must not be empty: leave it out when the file has no location column")
			default:
				ctl.LocationColumn = v.text
			}
		case "protected_user_numbers":
			ctl.ProtectedUserNumbers = readIntList(v, path, c)
		case "defaults":
			if v.kind == jsonNull {
				return
			}
			if v.kind != jsonObject {
				c.add(0, path, "defaults must be an object")
				return
			}
			eachKey(v, path, c, func(key string, v jsonValue, path string) {
				if key != "partitions" {
					c.add(0, path, "unknown key: defaults takes partitions")
					return
				}
				ctl.DefaultPartitions = readIntList(v, path, c)
				if v.kind == jsonArray && len(v.items) == 0 {
					c.add(0, path, "defaults.partitions must list at least one partition: leave it out for none")
				}
			})
		default:
			c.add(0, path, "unknown key: the control file takes "+controlKeys)
		}
	})
	return ctl
}

// eachKey calls fn with each key of an object and its value and path,
// reporting a key given twice instead of passing it on again.
func eachKey(obj jsonValue, prefix string, c *collector, fn func(key string, v jsonValue, path string)) {
	seen := make(map[string]bool, len(obj.keys))
	for i, key := range obj.keys {
		path := keyPath(prefix, key)
		if seen[key] {
			c.add(0, path, "this key is given twice")
			continue
		}
		seen[key] = true
		fn(key, obj.items[i], path)
	}
}

// readStringMap reads an object of strings; null stands for no object.
func readStringMap(v jsonValue, path string, c *collector) map[string]string {
	switch v.kind {
	case jsonNull:
		return nil
	case jsonObject:
	default:
		c.add(0, path, path+" must be an object of strings")
		return nil
	}
	m := make(map[string]string, len(v.keys))
	eachKey(v, path, c, func(key string, v jsonValue, path string) {
		if v.kind != jsonString {
			c.add(0, path, "the value must be a string")
			return
		}
		m[key] = v.text
	})
	return m
}

// readIntList reads an array of whole numbers; null stands for none.
func readIntList(v jsonValue, path string, c *collector) []int {
	switch v.kind {
	case jsonNull:
		return nil
	case jsonArray:
	default:
		c.add(0, path, path+" must be an array of whole numbers")
		return nil
	}
	list := make([]int, 0, len(v.items))
	for i, item := range v.items {
		at := path + "[" + strconv.Itoa(i) + "]"
		if item.kind != jsonNumber || strings.ContainsAny(item.text, ".eE") {
			c.add(0, at, "must be a whole number")
			continue
		}
		n, err := strconv.Atoi(item.text)
		if err != nil {
			c.add(0, at, "is far out of range")
			continue
		}
		list = append(list, n)
	}
	return list
}

// check judges what a control says, whether it came from a file or was
// built in code, reporting every problem with its path.
func (ctl Control) check(c *collector) {
	targets := make(map[string]string, len(ctl.Columns)) // field → key as given
	columns := checkKeys(c, "columns", ctl.Columns, "a column name", "column", true, func(key, path string) {
		target := ctl.Columns[key]
		if target == "" {
			return
		}
		if _, ok := standardField(target); !ok {
			c.add(0, path, fmt.Sprintf("%s is not a field: map the column to one of %s, or to \"\" to ignore it", quote(target), fieldList()))
			return
		}
		if prev, dup := targets[target]; dup {
			c.add(0, path, fmt.Sprintf("columns %s and %s both map to %s", quote(prev), quote(key), target))
			return
		}
		targets[target] = key
	})

	if lc := ctl.LocationColumn; lc != "" {
		norm := normalize(lc)
		_, standard := standardField(norm)
		if msg := label("location_column", lc, maxColumnName, true); msg != "" {
			c.add(0, "location_column", msg)
		} else if key, mapped := columns[norm]; mapped {
			c.add(0, "location_column", fmt.Sprintf("%s is also mapped by %s: a column gives either the location or a field", quote(lc), keyPath("columns", key)))
		} else if standard {
			c.add(0, "location_column", fmt.Sprintf("%s is the name of a standard field: the location needs a column of its own", quote(lc)))
		}
	}

	checkKeys(c, "authority", ctl.Authority, "an authority value", "authority value", false, func(key, path string) {
		if target := ctl.Authority[key]; !isAuthority(target) {
			c.add(0, path, fmt.Sprintf("%s is not an authority: use %s", quote(target), authorityList()))
		}
	})

	checkNumbers(c, "protected_user_numbers", ctl.ProtectedUserNumbers, "user number", minUserNumber, maxUserNumber)
	checkNumbers(c, "defaults.partitions", ctl.DefaultPartitions, "partition", minPartition, maxPartition)
}

// checkKeys checks the keys of one of the control's maps, in sorted order
// so that the problems come in the same order every time: each must be
// printable text of at most maxColumnName characters (and not empty when
// required), and no two may be the same once case and surrounding spaces
// are set aside, as the data file's values are matched. It calls check
// with each key that passes, and returns those keys by normalised form.
func checkKeys(c *collector, name string, m map[string]string, asText, asWhat string, required bool, check func(key, path string)) map[string]string {
	keys := make(map[string]string, len(m))
	for _, key := range slices.Sorted(maps.Keys(m)) {
		path := keyPath(name, key)
		if msg := label(asText, key, maxColumnName, required); msg != "" {
			c.add(0, path, msg)
			continue
		}
		norm := normalize(key)
		if prev, dup := keys[norm]; dup {
			c.add(0, path, fmt.Sprintf("%s and %s are the same %s: %ss are matched ignoring case and surrounding spaces", quote(prev), quote(key), asWhat, asWhat))
			continue
		}
		keys[norm] = key
		check(key, path)
	}
	return keys
}

// checkNumbers reports each number of a list outside lo..hi or repeated.
func checkNumbers(c *collector, path string, list []int, what string, lo, hi int) {
	first := make(map[int]int, len(list))
	for i, n := range list {
		at := path + "[" + strconv.Itoa(i) + "]"
		if n < lo || n > hi {
			c.add(0, at, fmt.Sprintf("%s %d is outside %d to %d", what, n, lo, hi))
			continue
		}
		if j, dup := first[n]; dup {
			c.add(0, at, fmt.Sprintf("%s %d is listed twice (also at [%d])", what, n, j))
			continue
		}
		first[n] = i
	}
}

// normalize is how column names and authority values are compared.
func normalize(s string) string { return strings.ToLower(strings.TrimSpace(s)) }

// keyPath extends a JSON path by an object key: prefix.key for keys made
// of letters, digits, "_" and "-", prefix["key"] (quoted, and cut when
// long) for any other.
func keyPath(prefix, key string) string {
	simple := key != "" && len(key) <= maxQuotedRunes
	for i := 0; simple && i < len(key); i++ {
		b := key[i]
		simple = b == '_' || b == '-' || (b >= '0' && b <= '9') || (b|0x20 >= 'a' && b|0x20 <= 'z')
	}
	switch {
	case !simple:
		return prefix + "[" + quote(key) + "]"
	case prefix == "":
		return key
	}
	return prefix + "." + key
}

// fieldList lists the standard fields for a message.
func fieldList() string { return strings.Join(standardFields[:], ", ") }

// authorityList lists the authorities for a message: "master, standard,
// arm_only, duress or guest".
func authorityList() string {
	return strings.Join(authorities[:len(authorities)-1], ", ") + " or " + authorities[len(authorities)-1]
}

// plan is a checked Control compiled for reading one data file.
type plan struct {
	// columns maps normalised column names the control file maps to what
	// they give.
	columns map[string]field
	// location is the normalised location column, or "".
	location string
	// authority maps normalised file values to authorities.
	authority map[string]string
	protected [maxUserNumber + 1]bool
	defaults  []int
	// named is what each field's column is called in the file as the
	// control file sees it: the column mapped to it, or its own name. A
	// problem about a field no column gives names this.
	named [numFields]string
}

func newPlan(ctl Control) *plan {
	p := &plan{
		columns:   make(map[string]field, len(ctl.Columns)),
		location:  normalize(ctl.LocationColumn),
		authority: make(map[string]string, len(ctl.Authority)),
	}
	copy(p.named[:], standardFields[:])
	p.named[fieldLocation] = strings.TrimSpace(ctl.LocationColumn)
	for key, target := range ctl.Columns {
		f := fieldIgnore
		if target != "" {
			f, _ = standardField(target)
			p.named[f] = strings.TrimSpace(key)
		}
		p.columns[normalize(key)] = f
	}
	for key, authority := range ctl.Authority {
		p.authority[normalize(key)] = authority
	}
	for _, n := range ctl.ProtectedUserNumbers {
		p.protected[n] = true
	}
	p.defaults = slices.Compact(slices.Sorted(slices.Values(ctl.DefaultPartitions)))
	return p
}

// resolve returns what a column gives, by its normalised name.
func (p *plan) resolve(norm string) (field, bool) {
	if f, ok := p.columns[norm]; ok {
		return f, true
	}
	if p.location != "" && norm == p.location {
		return fieldLocation, true
	}
	return standardField(norm)
}
