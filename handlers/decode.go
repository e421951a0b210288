package handlers

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"reflect"
	"slices"
	"strings"

	"github.com/gofiber/fiber/v2"

	"github.com/panelsync/panelsync/models"
)

// decodeJSON reads the request body into dst strictly: the content type
// must be JSON, unknown fields are refused, and the body must hold exactly
// one JSON value. Each failure names what is wrong.
func decodeJSON(c *fiber.Ctx, dst any) error {
	ct := c.Get(fiber.HeaderContentType)
	mediaType, _, err := mime.ParseMediaType(ct)
	if ct == "" || err != nil || mediaType != fiber.MIMEApplicationJSON {
		return models.Errorf(models.CodeUnsupportedMediaType, "Content-Type must be application/json")
	}
	body := c.Body()
	if len(bytes.TrimSpace(body)) == 0 {
		return models.Errorf(models.CodeInvalidRequest, "request body is required")
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(dst); err != nil {
		if strings.HasPrefix(err.Error(), "json: unknown field ") {
			return unknownField(body, reflect.TypeOf(dst))
		}
		return jsonError(err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return models.Errorf(models.CodeInvalidRequest, "request body must hold a single JSON object")
	}
	return nil
}

func jsonError(err error) error {
	var syntax *json.SyntaxError
	var typeErr *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syntax):
		return models.Errorf(models.CodeInvalidRequest, "malformed JSON at byte %d: %s", syntax.Offset, syntax.Error())
	case errors.Is(err, io.ErrUnexpectedEOF):
		return models.Errorf(models.CodeInvalidRequest, "malformed JSON: the body ends too early")
	case errors.As(err, &typeErr):
		if typeErr.Field == "" {
			return models.Errorf(models.CodeInvalidRequest, "request body must be a JSON object")
		}
		return models.FieldError(typeErr.Field, "%s must be %s", typeErr.Field, jsonTypeName(typeErr.Type.Kind().String()))
	}
	return models.Errorf(models.CodeInvalidRequest, "request body is not valid JSON: %s", err.Error())
}

func jsonTypeName(kind string) string {
	switch kind {
	case "string":
		return "a string"
	case "bool":
		return "true or false"
	case "int", "int8", "int16", "int32", "int64", "uint", "uint8", "uint16", "uint32", "uint64":
		return "an integer"
	case "float32", "float64":
		return "a number"
	case "slice", "array":
		return "an array"
	case "map", "struct", "ptr":
		return "an object"
	}
	return fmt.Sprintf("of type %s", kind)
}

// unknownField names the first field of body that typ does not declare,
// with its full path (settings.colour), which encoding/json does not give.
func unknownField(body []byte, typ reflect.Type) error {
	var raw any
	if err := json.Unmarshal(body, &raw); err == nil {
		if path := findUnknown(raw, typ, ""); path != "" {
			return models.FieldError(path, "unknown field %q", path)
		}
	}
	return models.Errorf(models.CodeInvalidRequest, "request body has an unknown field")
}

func findUnknown(raw any, typ reflect.Type, prefix string) string {
	for typ.Kind() == reflect.Pointer {
		typ = typ.Elem()
	}
	switch v := raw.(type) {
	case map[string]any:
		if typ.Kind() != reflect.Struct {
			return ""
		}
		fields := map[string]reflect.Type{}
		for i := range typ.NumField() {
			f := typ.Field(i)
			name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
			if name == "" {
				name = f.Name
			}
			fields[strings.ToLower(name)] = f.Type
		}
		keys := make([]string, 0, len(v))
		for k := range v {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			ft, ok := fields[strings.ToLower(k)]
			if !ok {
				return prefix + k
			}
			if p := findUnknown(v[k], ft, prefix+k+"."); p != "" {
				return p
			}
		}
	case []any:
		if typ.Kind() != reflect.Slice && typ.Kind() != reflect.Array {
			return ""
		}
		for i, item := range v {
			if p := findUnknown(item, typ.Elem(), fmt.Sprintf("%s%d.", strings.TrimSuffix(prefix, "."), i)); p != "" {
				return p
			}
		}
	}
	return ""
}

// allowQuery refuses a query parameter the route does not know, and a
// known one given twice, so a misspelt filter (?stat=failed) is a clear
// 400 instead of a silently unfiltered answer.
func allowQuery(c *fiber.Ctx, known ...string) error {
	var bad error
	seen := map[string]bool{}
	c.Request().URI().QueryArgs().VisitAll(func(k, _ []byte) {
		if bad != nil {
			return
		}
		name := string(k)
		switch {
		case !slices.Contains(known, name):
			if len(known) == 0 {
				bad = models.FieldError(name, "unknown query parameter %q: this route takes none", name)
			} else {
				bad = models.FieldError(name, "unknown query parameter %q: this route takes %s", name, strings.Join(known, ", "))
			}
		case seen[name]:
			bad = models.FieldError(name, "query parameter %q is given more than once", name)
		}
		seen[name] = true
	})
	return bad
}
