package handlers

import (
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"strings"

	"github.com/gofiber/fiber/v2"

	"github.com/panelsync/panelsync/auth"
	"github.com/panelsync/panelsync/models"
	"github.com/panelsync/panelsync/syncer"
	"github.com/panelsync/panelsync/syncer/importfile"
)

// importBodyLimit is the largest upload body: a full data file and control
// file with room for the form's own framing.
const importBodyLimit = importfile.MaxDataBytes + importfile.MaxControlBytes + 64<<10

// importPath is the one route whose body may exceed the server's usual
// limit.
const importPath = "/v1/imports"

type importHandlers struct {
	engine *syncer.Engine
}

// upload takes a user import: the data file and optional control file as
// multipart parts, and the locations as form fields.
func (h importHandlers) upload(c *fiber.Ctx) error {
	if err := allowQuery(c); err != nil {
		return err
	}
	mediaType, _, err := mime.ParseMediaType(c.Get(fiber.HeaderContentType))
	if err != nil || mediaType != fiber.MIMEMultipartForm {
		return models.Errorf(models.CodeUnsupportedMediaType, "Content-Type must be multipart/form-data, with the data file in a part named data")
	}
	form, err := c.MultipartForm()
	if err != nil {
		return models.Errorf(models.CodeInvalidRequest, "the multipart body cannot be read: %s", strings.TrimPrefix(err.Error(), "multipart: "))
	}
	for name := range form.File {
		if name != "data" && name != "control" {
			return models.FieldError(name, "unknown file part %q: an import takes the parts data and control", name)
		}
	}
	for name, values := range form.Value {
		switch name {
		case "data", "control":
			return models.FieldError(name, "%s must be sent as a file part (with a filename), not a plain field", name)
		case "scope", "group":
			if len(values) > 1 {
				return models.FieldError(name, "%s is given %d times; give it once", name, len(values))
			}
		case "location_ids":
		default:
			return models.FieldError(name, "unknown field %q: an import takes the fields scope, group and location_ids", name)
		}
	}
	req := syncer.ImportRequest{Trigger: trigger(c), LocationIDs: form.Value["location_ids"]}
	if v := form.Value["scope"]; len(v) == 1 {
		req.Scope = v[0]
	}
	if v := form.Value["group"]; len(v) == 1 {
		group, err := models.Label("group", v[0], models.MaxGroupRunes, false)
		if err != nil {
			return err
		}
		req.Group = group
	}
	if req.Scope != "" && req.Scope != models.ScopeLocations && len(req.LocationIDs) > 0 {
		return models.FieldError("location_ids", "location_ids only go with scope locations")
	}
	data, err := onePart(form, "data", importfile.MaxDataBytes, true)
	if err != nil {
		return err
	}
	req.Data, req.DataName, req.DataType = data.body, data.name, data.contentType
	control, err := onePart(form, "control", importfile.MaxControlBytes, false)
	if err != nil {
		return err
	}
	if control.present {
		req.Control = control.body
	}
	st, err := h.engine.StartImport(c.UserContext(), actor(c), req)
	if err != nil {
		return err
	}
	return c.Status(fiber.StatusAccepted).JSON(BatchStartResponse{Batch: toBatchResponse(st), Message: "User import received"})
}

// filePart is one file of an upload.
type filePart struct {
	present     bool
	name        string
	contentType string
	body        []byte
}

// onePart reads the file part called name: at most one, at most limit
// bytes.
func onePart(form *multipart.Form, name string, limit int, required bool) (filePart, error) {
	files := form.File[name]
	switch {
	case len(files) == 0 && required:
		return filePart{}, models.FieldError(name, "the %s file is required: send it as a multipart file part named %s", name, name)
	case len(files) == 0:
		return filePart{}, nil
	case len(files) > 1:
		return filePart{}, models.FieldError(name, "%d %s files were sent; send one", len(files), name)
	}
	fh := files[0]
	if fh.Size > int64(limit) {
		return filePart{}, &models.Error{Code: models.CodePayloadTooLarge, Field: name,
			Message: fmt.Sprintf("the %s file is %d bytes; it may be at most %d", name, fh.Size, limit)}
	}
	f, err := fh.Open()
	if err != nil {
		return filePart{}, err
	}
	defer f.Close()
	body, err := io.ReadAll(io.LimitReader(f, int64(limit)+1))
	if err != nil {
		return filePart{}, err
	}
	if len(body) > limit {
		return filePart{}, &models.Error{Code: models.CodePayloadTooLarge, Field: name,
			Message: fmt.Sprintf("the %s file is larger than %d bytes", name, limit)}
	}
	return filePart{present: true, name: fh.Filename, contentType: fh.Header.Get(fiber.HeaderContentType), body: body}, nil
}

// requireImporter refuses the request unless the caller may upload user
// lists: an owner or admin, or an API key with the import scope.
func requireImporter(c *fiber.Ctx) error {
	p := principal(c)
	if p.IsAPIKey() {
		if err := requireScope(p, auth.ScopeImport); err != nil {
			return err
		}
		return c.Next()
	}
	if !p.Role.CanAdminister() {
		return models.Errorf(models.CodeForbidden, "imports need the owner or admin role, or an API key with the import scope")
	}
	return c.Next()
}

// limitBody keeps every route but the upload to the server's usual body
// limit; the server itself admits bodies as large as an upload.
func limitBody(limit int) fiber.Handler {
	return func(c *fiber.Ctx) error {
		if len(c.Request().Body()) > limit && !(c.Method() == fiber.MethodPost && c.Path() == importPath) {
			return models.Errorf(models.CodePayloadTooLarge, "request body is larger than this server accepts (%d bytes)", limit)
		}
		return c.Next()
	}
}
